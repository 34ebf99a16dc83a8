"""Training settings: one dataclass whose fields are the CLI options and the YAML config keys."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path

import yaml

from edgetl.errors import EdgetlError
from edgetl.yamlfile import load_yaml
from edgetl.image import RESIZE_METHODS
from edgetl.label_metrics import ThresholdRule
from edgetl.runtime.spec import PixelSpec

# The choices of the settings that have a fixed set of values. StrEnum members are the strings
# themselves, so config.yaml and the command line stay plain words.
Resize = StrEnum("Resize", {m.upper(): m for m in RESIZE_METHODS})
"""How photos become model input, here and on devices: squash ("resize") or "center_crop"."""


class Strategy(StrEnum):
    """tf.distribute: mirrored over several GPUs when there are (auto), or as named."""

    AUTO = "auto"
    MIRRORED = "mirrored"
    MULTIWORKER = "multiworker"
    NONE = "none"


class Schedule(StrEnum):
    """Learning rate over a stage."""

    COSINE = "cosine"
    CONSTANT = "constant"


class ClassWeight(StrEnum):
    """Loss weights per class: none, or inverse class frequency (auto)."""

    NONE = "none"
    AUTO = "auto"


def choices(enum: type[StrEnum]) -> str:
    """"a, b or c": an Enum's values for help texts and error messages."""
    values = [str(v) for v in enum]
    return ", ".join(values[:-1]) + " or " + values[-1]


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults are the ones that reach the quality bar
    on hymenoptera with MobileNetV2 (see README)."""

    data: str = ""
    """Dataset: DATA/<class>/*, DATA/{train,validation[,test]}/<class>/* or a CSV of path,label[,split]."""
    class_depth: int = 1
    """1: classes are DATA's (or each split's) sub-folders; 2: their sub-folders, merged across batch folders."""
    backbone: str = "mobilenet_v2"
    alpha: float = 1.0
    """MobileNetV2 width multiplier (0.35, 0.5, 0.75, 1.0)."""
    size: int = 224
    """Square input size in pixels."""
    weights: str = "imagenet"
    """"imagenet" (Keras's cache), "none" (from scratch) or a backbone weights file."""
    resize: str = "resize"
    """"resize" (squash) or "center_crop": how photos become model input, here and on devices."""
    epochs: int = 15
    """Stage 1 epochs (frozen base, new head)."""
    fine_tune_epochs: int = 10
    """Stage 2 epochs (top layers unfrozen); 0 skips stage 2."""
    batch_size: int = 32
    lr: float = 3e-3
    fine_tune_lr: float | None = None
    """Stage 2 learning rate; default lr / 10."""
    fine_tune_at: int | None = None
    """First base layer to unfreeze in stage 2; default per backbone."""
    unfreeze: float | None = None
    """Alternative to fine_tune_at: fraction (0..1) of base layers to unfreeze from the top."""
    dropout: float = 0.2
    augment: bool = True
    """Random flip, rotation, zoom and contrast during training (never exported)."""
    feature_cache: bool = True
    """Train stage 1 on backbone features computed once (of ``augment_views`` augmented views of
    each photo when augmenting); off runs the frozen base every epoch, as the tutorials do."""
    augment_views: int = 0
    """With augmentation and the feature cache: augmented views of each training photo whose
    features stage 1 computes once and cycles through, one view per epoch; 0 augments afresh
    through the frozen base every epoch (the default). On hymenoptera 5 views reach the accuracy of
    augmenting through the base (0.954 after both stages) in a third of stage 1's time, but that
    model lost 2 of 153 images under dynamic-range quantization (a failed export gate) where the
    default's lost none, so it is an option, not the default."""
    label_smoothing: float = 0.0
    class_weight: str = "none"
    """"none" or "auto" (inverse class frequency)."""
    schedule: str = "cosine"
    """"cosine" or "constant" learning rate."""
    patience: int = 5
    """Early stopping: epochs without a better val loss before a stage ends."""
    seed: int = 0
    val_split: float = 0.2
    """Validation fraction when DATA has no train/val folders."""
    strategy: str = "auto"
    """tf.distribute: auto (mirrored over several GPUs), mirrored, multiworker (TF_CONFIG), none."""
    worker_timeout: float = 600.0
    """--strategy multiworker: seconds to wait for every worker to join before giving up."""
    mixed_precision: bool = False
    """float16 compute on a GPU (ignored on the CPU)."""
    deterministic: bool = False
    """The same run again gives the same model (TensorFlow's op determinism: some ops run slower)."""
    cache: bool = True
    """Keep decoded images on disk between runs."""
    tensorboard: bool = False
    """Write TensorBoard logs (loss, accuracy, learning rate per epoch, both stages) to RUN/tensorboard/."""
    unknown: str | None = None
    """A folder of images that are none of the classes: the "unknown" threshold is chosen so that
    answering one of them counts as a mistake (see :mod:`edgetl.runtime.confidence`)."""
    min_precision: float = 0.95
    """The precision the "unknown" threshold keeps on the held-out images (and the unknown ones)."""
    answer_rate: float = 0.95
    """The share of validation images the "unknown" rule from the classes' own images answers:
    features farther from every class than the rest are "unknown" (see :mod:`edgetl.runtime.unknown_rule`)."""
    multi_label: bool = False
    """Train several labels per image (sigmoid outputs) on any dataset; a multi-label CSV is
    detected and trained so without it."""
    label_threshold: str = "f1"
    """Multi-label: each label's threshold on the validation split: its best F1 ("f1"), or the most
    recall that keeps ``min_precision`` ("precision")."""
    from_run: str | None = None
    """``--from RUN``: start from RUN's model and keep its split (see :mod:`edgetl.training.warm_start`)."""
    project: str = "runs"
    """Parent folder of auto-named runs (runs/exp, runs/exp2, ...)."""
    name: str = "exp"
    out: str | None = None
    """Exact run folder (overrides project/name)."""

    def validate(self) -> "TrainConfig":
        """Check ranges and choices; raise EdgetlError naming the option."""
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.fine_tune_epochs >= 0, "--fine-tune-epochs must be 0 or more"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.class_weight in set(ClassWeight), f"--class-weight must be {choices(ClassWeight)}"),
            (self.schedule in set(Schedule), f"--schedule must be {choices(Schedule)}"),
            (self.strategy in set(Strategy), f"--strategy must be {choices(Strategy)}"),
            (self.resize in set(Resize), f"--resize must be {choices(Resize)}"),
            (self.unfreeze is None or 0 < self.unfreeze <= 1, "--unfreeze must be a fraction in (0, 1]"),
            (0 < self.val_split < 1, "--val-split must be between 0 and 1"),
            (self.class_depth in (1, 2), "--class-depth must be 1 or 2"),
            (self.label_threshold in set(ThresholdRule), f"--label-threshold must be {choices(ThresholdRule)}"),
            (self.worker_timeout > 0, "--worker-timeout must be positive"),
            (0 < self.min_precision < 1, "--min-precision must be between 0 and 1"),
            (0 < self.answer_rate <= 1, "--answer-rate must be more than 0 and at most 1 (0.95: answer 95 % of "
                                        "validation images)"),
        ]
        for ok, message in checks:
            if not ok:
                raise EdgetlError(message)
        return self

    @property
    def pixels(self) -> PixelSpec:
        """The model's input contract: a square of ``size``, raw 0..255 pixels (the backbone's own
        normalisation is inside the model), resized by ``resize``. The one place size is split."""
        return PixelSpec(self.size, self.size, mean=0.0, std=1.0, resize=self.resize)

    def to_dict(self) -> dict:
        """Plain dict, as written to config.yaml (Enum members as their plain strings)."""
        return {k: str(v) if isinstance(v, StrEnum) else v for k, v in asdict(self).items()}

    def save(self, path: str | Path) -> None:
        """Write the exact resolved settings."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}


def checked_value(key: str, value: object, path: Path):
    """A settings file's value for ``key`` when it has the field's type (a whole number where a
    number is asked is fine); :class:`EdgetlError` naming the key and the type otherwise, rather
    than a TypeError from deep inside training."""
    annotation = next(f.type for f in fields(TrainConfig) if f.name == key)
    parts = [t.strip() for t in str(annotation).split("|")]
    if value is None and "None" in parts:
        return None
    kind = parts[0]
    ok = isinstance(value, _KINDS[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
    if not ok:
        raise EdgetlError(f"'{key}: {str(value)[:40]}' is not {_WORDS[kind]}"
                          + (" (or null)" if "None" in parts else ""), path=path,
                          fix=f"write {key} as {_WORDS[kind]}, e.g. {key}: {getattr(TrainConfig(), key)!r}")
    return float(value) if kind == "float" else value


def load_config(path: str | Path | None, overrides: dict) -> TrainConfig:
    """Defaults, then the YAML file (keys are option names, - or _), then ``overrides`` (non-None)."""
    known = {f.name for f in fields(TrainConfig)}
    values: dict = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = load_yaml(p) or {}
        except (OSError, yaml.YAMLError) as e:
            raise EdgetlError(f"cannot read the config ({e})", path=p, fix="give a YAML file of option: value pairs")
        if not isinstance(loaded, dict):
            raise EdgetlError("the config is not a mapping of option: value", path=p)
        for key, value in loaded.items():
            k = str(key).replace("-", "_")
            if k not in known:
                raise EdgetlError(f"unknown option '{key}'", path=p, fix="use options of `edgetl train --help`")
            values[k] = checked_value(k, value, p)
    values |= {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig(**values).validate()
