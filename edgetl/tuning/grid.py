"""What `edgetl tune` searches: every registered backbone at each width it has and each input size
of a grid, as each artifact kind. A backbone added to :data:`edgetl.models.backbones.BACKBONES`
joins the search with no change here."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.models.backbones import BACKBONES, Pretrained, check_backbone, imagenet_cached


class Quant(StrEnum):
    """The artifact a candidate ships as: its name is the export format's."""

    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"


DEFAULT_SIZES = (96, 128, 160, 192, 224)


@dataclass(frozen=True, order=True)
class Architecture:
    """A backbone at a width and an input size: what is trained (the artifact kind is not)."""

    backbone: str
    alpha: float
    size: int

    @property
    def key(self) -> str:
        """A stable name, used for run folders and the caches: ``mobilenet_v2-a0.75-160``."""
        return f"{self.backbone}-a{self.alpha:g}-{self.size}"

    def describe(self) -> str:
        """``mobilenet_v2 alpha 0.75 at 160`` (the width only where the backbone has several)."""
        width = f" alpha {self.alpha:g}" if len(BACKBONES[self.backbone].alphas) > 1 else ""
        return f"{self.backbone}{width} at {self.size}"


@dataclass(frozen=True, order=True)
class Candidate:
    """An architecture shipped as one artifact kind: what is benched and, if it fits, chosen."""

    arch: Architecture
    quant: Quant

    @property
    def key(self) -> str:
        return f"{self.arch.key}-{self.quant}"

    def describe(self) -> str:
        """``mobilenet_v2 alpha 0.75 at 160, int8``."""
        return f"{self.arch.describe()}, {self.quant}"


@dataclass
class Grid:
    """The search space; None means every value the registry has."""

    backbones: tuple[str, ...] | None = None
    alphas: tuple[float, ...] | None = None
    """Widths to try, where a backbone has them (a backbone with one width keeps it)."""
    sizes: tuple[int, ...] = DEFAULT_SIZES
    quants: tuple[Quant, ...] = (Quant.INT8, Quant.FP16)

    def check(self) -> None:
        """Names and numbers known, before anything is built."""
        for name in self.backbones or ():
            if name not in BACKBONES:
                raise EdgetlError(f"unknown backbone '{name}' in --backbones", fix=f"choose from {', '.join(BACKBONES)}")
        if self.alphas is not None:
            known = {a for name in (self.backbones or BACKBONES) for a in BACKBONES[name].alphas}
            missing = [a for a in self.alphas if a not in known]
            if missing:
                raise EdgetlError(f"--alphas {', '.join(map(str, missing))}: no chosen backbone has that width",
                                  fix=f"choose from {', '.join(map(str, sorted(known)))}")
        if not self.sizes or any(s < 32 or s > 1024 for s in self.sizes):
            raise EdgetlError("--sizes must be input sizes between 32 and 1024", fix="e.g. --sizes 96,128,160,192,224")
        if not self.quants:
            raise EdgetlError("--formats needs at least one of " + ", ".join(Quant))

    def architectures(self) -> list[Architecture]:
        """Every backbone x width x size, in registry order, smallest first within a backbone."""
        archs = []
        for name in self.backbones or tuple(BACKBONES):
            spec = BACKBONES[name]
            widths = spec.alphas if len(spec.alphas) == 1 or self.alphas is None else \
                tuple(a for a in spec.alphas if a in self.alphas)
            for alpha in widths:
                for size in sorted(set(self.sizes)):
                    if size >= spec.min_size:
                        archs.append(Architecture(name, alpha, size))
        return archs

    def candidates(self, archs: list[Architecture] | None = None) -> list[Candidate]:
        """Every architecture as every artifact kind."""
        return [Candidate(a, q) for a in (archs if archs is not None else self.architectures()) for q in self.quants]


@dataclass
class Skipped:
    """An architecture tune cannot train here, and why (listed, never silently dropped)."""

    arch: Architecture
    reason: str
    fix: str = ""


@dataclass
class Trainable:
    """The architectures that have weights to start from, and the ones that have not."""

    archs: list[Architecture] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _file_fits(path: str, backbone: str, alpha: float) -> bool:
    """Whether a backbone weights file loads into this backbone at this width (built small: the
    weights of these convolutional backbones do not depend on the input size)."""
    from edgetl.models.backbones import build_base

    try:
        build_base(BACKBONES[backbone], max(32, BACKBONES[backbone].min_size), alpha, path)
    except EdgetlError:
        return False
    return True


def trainable(archs: list[Architecture], weights: str) -> Trainable:
    """Split ``archs`` by whether their starting weights are here: "none" trains every one from
    scratch; a weights file fits one backbone and width (the others are skipped); "imagenet" uses
    Keras's cache and never downloads during a search (a missing file is skipped, with the
    download to make)."""
    result = Trainable()
    fits: dict[tuple[str, float], bool] = {}
    for arch in archs:
        check_backbone(arch.backbone, arch.size, arch.alpha)
        spec = BACKBONES[arch.backbone]
        if weights == Pretrained.NONE:
            result.archs.append(arch)
        elif weights == Pretrained.IMAGENET:
            if imagenet_cached(spec, arch.alpha, arch.size):
                result.archs.append(arch)
            else:
                name = spec.weight_file(arch.alpha, arch.size)
                result.skipped.append(Skipped(arch, "no ImageNet weights in Keras's cache",
                                              f"download {spec.weight_url}{name} into ~/.keras/models/"))
        else:
            shape = (arch.backbone, arch.alpha)
            if shape not in fits:
                fits[shape] = _file_fits(weights, *shape)
            if fits[shape]:
                result.archs.append(arch)
            else:
                result.skipped.append(Skipped(arch, f"{Path(weights).name} does not fit it",
                                              "give weights of that backbone and width, or --weights none"))
    return result
