"""Where class names come from, in order: the caller, the model itself, a labels.txt beside it."""
from __future__ import annotations

from pathlib import Path

from edgetl.errors import EdgetlError


def read_labels(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines at the end dropped)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise EdgetlError(f"cannot read labels file ({e.strerror})", path=p, fix="give a text file, one label per line")
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def write_labels(path: str | Path, labels: list[str]) -> None:
    """Write one label per line."""
    Path(path).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def resolve_labels(n_outputs: int, explicit: str | Path | None, embedded: list[str] | None,
                   model_path: Path) -> list[str]:
    """Pick the labels for a model with ``n_outputs`` classes.

    A list one longer than the outputs whose first entry is a background class (as shipped with
    Google's ImageNet models) is accepted and the first entry dropped."""
    source, labels = None, None
    if explicit is not None:
        source, labels = Path(explicit), read_labels(explicit)
    elif embedded:
        source, labels = model_path, embedded
    elif (model_path.parent / "labels.txt").exists():
        source = model_path.parent / "labels.txt"
        labels = read_labels(source)
    if labels is None:
        return [f"class_{i}" for i in range(n_outputs)]
    if len(labels) == n_outputs + 1:
        return labels[1:]
    if len(labels) != n_outputs:
        raise EdgetlError(f"{len(labels)} labels for a model with {n_outputs} outputs", path=source,
                          fix="give the labels file that belongs to this model (--labels FILE)")
    return labels
