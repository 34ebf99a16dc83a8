"""The frames waiting for a label: a harvest folder's ``unsorted/`` (with the device's scores in
``scores/``), a ``live --capture`` outbox (each score note beside its frame) or any folder of
images, each with the model's guess, most doubtful first.

Nothing here decodes an image: a frame is a path, a hash and the guess read from a small score
note, so listing thousands of frames costs a few hundred bytes each."""
from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from edgetl.image import IMAGE_EXTENSIONS
from edgetl.progress import track
from edgetl.runtime.manifest import file_sha256
from edgetl.text import clean, finite_number

logger = logging.getLogger(__name__)

MAX_NOTE = 65_536
"""Largest score note read (a device wrote it: a larger one is not a note)."""
SKIPPED_FOLDERS = {"discarded", "scores"}
"""Sub-folders of a labelling folder that hold no frames to label."""


@dataclass
class Guess:
    """What a model answered for a frame: its top label, score, and the margin to the second."""

    label: str
    score: float
    margin: float = 1.0
    unknown: bool = False
    """The model's rule answered "unknown" for this frame."""


@dataclass
class Frame:
    """One image waiting for a label."""

    path: Path
    sha256: str
    guess: Guess | None = None
    device: str = ""
    captured: str = ""
    model: str = ""

    @property
    def doubt(self) -> tuple:
        """Sort key, most doubtful first: "unknown" answers, then the narrowest margins, then
        frames with no guess at all."""
        if self.guess is None:
            return (2, 0.0, self.path.name)
        return (0 if self.guess.unknown else 1, self.guess.margin, self.path.name)

    def provenance(self) -> dict:
        """Where the frame came from, as the dataset's provenance file records it."""
        g = self.guess
        return {"device": self.device, "captured": self.captured, "model": self.model,
                "guess": g.label if g else "", "score": round(g.score, 4) if g else None, "sha256": self.sha256}


def note_guess(note: Path) -> tuple[Guess | None, dict]:
    """The guess in a device's score note (``live --capture``'s .json), and its other fields as
    cleaned text; (None, {}) for a missing, large or malformed note."""
    try:
        st = note.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_NOTE:  # a link, a FIFO, a folder: no note
            return None, {}
        d = json.loads(note.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None, {}
    if not isinstance(d, dict):
        return None, {}
    top = [t for t in d.get("top", []) if isinstance(t, dict)] if isinstance(d.get("top"), list) else []
    scores = [finite_number(t.get("score")) for t in top[:2]]
    fields = {k: clean(str(d.get(k, "")))[:200] for k in ("captured", "model")}
    if not top or scores[0] is None:
        return None, fields
    second = scores[1] if len(scores) > 1 and scores[1] is not None else 0.0
    label = clean(str(top[0].get("label", "")))[:200]
    return Guess(label, scores[0], scores[0] - second, d.get("answer") == "unknown"), fields


def harvest_device(folder: Path) -> str:
    """The device a harvest folder came from (``harvest/HOST/``), as text."""
    return clean(folder.name)[:100]


def image_paths(folder: Path) -> list[Path]:
    """The images to label: ``folder/unsorted/*`` in a harvest folder, else every image under
    ``folder`` but for its ``discarded/`` and ``scores/`` sub-folders. Links are not followed."""
    root = folder / "unsorted" if (folder / "unsorted").is_dir() else folder
    out: list[Path] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if rel[0] in SKIPPED_FOLDERS or any(part.startswith(".") for part in rel):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.is_symlink():
            out.append(p)
    return out


def find_frames(folder: str | Path) -> list[Frame]:
    """Every frame of ``folder`` with its hash and, where the device left one, its guess; most
    doubtful first."""
    folder = Path(folder)
    scores = folder / "scores"
    harvested = (folder / "unsorted").is_dir()
    frames = []
    for path in track(image_paths(folder), "Reading frames"):
        # a harvest keeps the notes in scores/; a device's outbox, beside each frame
        note = scores / f"{path.stem}.json" if scores.is_dir() else path.with_suffix(".json")
        guess, fields = note_guess(note)
        frames.append(Frame(path, file_sha256(path), guess, harvest_device(folder) if harvested else "",
                            fields.get("captured", ""), fields.get("model", "")))
    frames.sort(key=lambda f: f.doubt)
    return frames


def guess_with_model(frames: list[Frame], model: Path) -> None:
    """Fill in the guess of every frame that has none by running ``model`` (a .keras, .tflite or
    .onnx file) on it; unreadable frames keep none. Re-sorts nothing: the caller does."""
    from edgetl.runtime import load

    todo = [f for f in frames if f.guess is None]
    if not todo:
        return
    clf = load(model)
    for f in track(todo, "Guessing", total=len(todo)):
        try:
            top = clf.classify_file(f.path, top_k=2)
        except Exception as e:  # noqa: BLE001 - a frame the runtime cannot read is labelled without a guess
            logger.warning("%s: no guess (%s)", clean(f.path.name), clean(str(e))[:200])
            continue
        second = top[1].score if len(top) > 1 else 0.0
        f.guess = Guess(top[0].label, top[0].score, top[0].score - second, clf.is_unknown(top))
        f.model = model.name
