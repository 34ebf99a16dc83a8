"""Where class names come from, in order: the caller, the model itself, a labels.txt beside it."""
from __future__ import annotations

from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.text import has_control

BACKGROUND = frozenset({"background", "__background__", "???", ""})
"""First entries that mean "no class" in label files shipped with Google's ImageNet models: a
list one longer than the model's outputs is accepted only when it starts with one of these."""
LABELS_FILE = "labels.txt"
"""Beside a model: its class names, one per line."""
MAX_LABELS_BYTES = 4 << 20
"""A labels file larger than this is not a labels file (4 MiB is about 100,000 long names)."""


def read_labels(path: str | Path) -> list[str]:
    """Class names from a UTF-8 text file, one per line (blank lines at the end dropped)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_LABELS_BYTES + 1)
    except OSError as e:
        raise EdgetlError(f"cannot read labels file ({e.strerror})", path=p, fix="give a text file, one label per line")
    if len(data) > MAX_LABELS_BYTES:
        raise EdgetlError(f"labels file is over {MAX_LABELS_BYTES >> 20} MiB", path=p,
                          fix="give a text file, one label per line")
    return parse_labels(data, p)


def parse_labels(data: bytes, source: str | Path) -> list[str]:
    """Labels from the bytes of a labels file; ``source`` names it in errors."""
    try:
        lines = label_lines(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise EdgetlError(f"labels are not UTF-8 text (byte {e.start})", path=source,
                          fix="save the labels file as UTF-8, one label per line") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def label_lines(text: str) -> list[str]:
    """The lines of a labels file, split on "\\n" only (a trailing "\\r" dropped): written one label
    per line, it is read back the same way. ``str.splitlines`` would also split at U+2028, U+0085
    and other separators a label may hold, shifting every label after it."""
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline that ends the last label starts no label of its own
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def label_problem(label: str) -> str | None:
    """Why ``label`` would not come back as itself from labels.txt and the TFLite metadata, or None."""
    if not label.strip():
        return "is empty"
    if has_control(label):
        return "holds a control character or a line separator (newline, tab, escape, U+2028)"
    if label != label.strip():
        return "starts or ends with a space"
    return None


def check_label_list(value: object, source: str | Path, field: str) -> list[str]:
    """``value`` if it is a list of strings, else an error naming ``source`` and ``field``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EdgetlError(f"{field} is not a list of class names", path=source,
                          fix="re-export the model, or give --labels FILE")
    return value


def write_labels(path: str | Path, labels: list[str]) -> None:
    """Write one label per line."""
    Path(path).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def resolve_labels(n_outputs: int, explicit: str | Path | None, embedded: list[str] | None,
                   model_path: Path) -> tuple[list[str], bool]:
    """The labels for a model with ``n_outputs`` classes, and whether any source named them.

    A list one longer than the outputs is accepted when its first entry is a background class
    (as shipped with Google's ImageNet models) and that entry is dropped; any other count mismatch
    is an error naming both counts, never a silent shift."""
    source, labels = None, None
    if explicit is not None:
        source, labels = Path(explicit), read_labels(explicit)
    elif embedded:
        source, labels = model_path, embedded
    elif (model_path.parent / LABELS_FILE).exists():
        source = model_path.parent / LABELS_FILE
        labels = read_labels(source)
    if labels is None:
        return [f"class_{i}" for i in range(n_outputs)], False
    if len(labels) == n_outputs + 1 and labels[0].strip().lower() in BACKGROUND:
        return labels[1:], True
    if len(labels) != n_outputs:
        raise EdgetlError(f"{len(labels)} labels for a model with {n_outputs} outputs", path=source,
                          fix="give the labels file that belongs to this model (--labels FILE)")
    return labels, True
