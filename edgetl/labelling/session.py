"""A labelling session: the frames of one folder, the dataset they go into, and every decision
written at once (the frame moved, the journal appended) so that a crash or a closed tab loses
nothing, and undo works across restarts.

The journal (``.edgetl-label.jsonl`` in the labelling folder) has one line per decision and one
per undo. A decision is: the frame placed in the dataset (or in ``discarded/``), the journal
line fsync'ed, then the frame removed from the folder. A crash between the last two leaves the
frame in both places: the next session finds the journal line and finishes the move."""
from __future__ import annotations

import enum
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.labelling.dataset import Dataset, Placed, append_line, check_folder_names, place_file, read_lines
from edgetl.labelling.frames import Frame
from edgetl.runtime.manifest import file_sha256
from edgetl.text import clean

logger = logging.getLogger(__name__)

JOURNAL = ".edgetl-label.jsonl"
DISCARDED = "discarded"


class Action(enum.Enum):
    """What a key on the page does to a frame."""

    LABEL = "label"
    """A class, given by name."""
    ACCEPT = "accept"
    """The model's guess, when it is a class."""
    UNKNOWN = "unknown"
    """None of the classes: kept for ``train --unknown``."""
    DISCARD = "discard"
    """Not worth keeping: moved to ``discarded/`` (never deleted)."""


@dataclass
class Decision:
    """One decision as the journal holds it."""

    seq: int
    frame: int
    action: Action
    source: Path
    dest: Path
    label: str
    sha256: str
    csv_row: list[str] | None = None
    undone: bool = False

    def line(self) -> str:
        return json.dumps({"seq": self.seq, "action": self.action.value, "source": str(self.source),
                           "dest": str(self.dest), "label": self.label, "sha256": self.sha256,
                           "csv_row": self.csv_row})


@dataclass
class Outcome:
    """What became of one frame of a request."""

    frame: int
    ok: bool
    said: str = ""
    """Where it went, or why it was not moved."""

    def to_dict(self) -> dict:
        return {"frame": self.frame, "ok": self.ok, "said": self.said}


@dataclass
class LabelSession:
    """The frames of ``folder`` labelled into ``dataset``. Thread-safe: every request of the page
    goes through one lock (decisions are a few file operations)."""

    folder: Path
    dataset: Dataset
    frames: list[Frame]
    decided: dict[int, Decision] = field(default_factory=dict)
    history: list[Decision] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def journal(self) -> Path:
        return self.folder / JOURNAL

    # --- the page's questions ------------------------------------------------------------------
    def left(self) -> list[int]:
        """The frames still to label, most doubtful first."""
        return [i for i in range(len(self.frames)) if i not in self.decided]

    def duplicate_of(self, i: int) -> str | None:
        """The dataset file that already holds frame ``i``'s content, if any."""
        return self.dataset.hashes.get(self.frames[i].sha256)

    def counts(self) -> dict:
        """What has been decided so far, per class and kind."""
        c = Counter(d.label if d.action in (Action.LABEL, Action.ACCEPT) else d.action.value
                    for d in self.decided.values())
        return {"total": len(self.frames), "left": len(self.frames) - len(self.decided), "decided": dict(c)}

    def frame_path(self, i: int) -> Path:
        """The file of an undecided frame (for its picture)."""
        if not 0 <= i < len(self.frames) or i in self.decided:
            raise KeyError(i)
        return self.frames[i].path

    def add_class(self, name: str) -> Outcome:
        """A class the dataset does not have yet (its folder is made with its first frame)."""
        with self._lock:
            name = name.strip()
            if name in self.dataset.classes:
                return Outcome(-1, False, "already a class")
            try:
                check_folder_names([name], self.dataset.root)
            except EdgetlError as e:
                return Outcome(-1, False, e.message)
            self.dataset.classes.append(name)
            return Outcome(-1, True, f"new class {name}")

    # --- decisions -----------------------------------------------------------------------------
    def decide(self, ids: list[int], action: Action, label: str = "") -> list[Outcome]:
        """Apply one answer to each frame of ``ids``; each frame's outcome on its own (a duplicate
        refused does not stop the others)."""
        with self._lock:
            return [self._decide_one(i, action, label) for i in ids]

    def _decide_one(self, i: int, action: Action, label: str) -> Outcome:
        if not isinstance(i, int) or not 0 <= i < len(self.frames):
            return Outcome(-1, False, "no such frame")
        if i in self.decided:
            return Outcome(i, False, "already decided")
        frame = self.frames[i]
        if action == Action.ACCEPT:
            if frame.guess is None or frame.guess.label not in self.dataset.classes:
                return Outcome(i, False, "the guess is not one of the classes: choose one")
            label = frame.guess.label
        if action in (Action.LABEL, Action.ACCEPT) and label not in self.dataset.classes:
            return Outcome(i, False, "not one of the classes")
        try:
            if action == Action.DISCARD:
                placed = Placed(place_file(frame.path, self.folder / DISCARDED, frame.path.name), "")
            else:
                placed = self.dataset.place(frame.path, label if action != Action.UNKNOWN else "",
                                            frame.provenance() | {"decision": action.value})
        except EdgetlError as e:
            return Outcome(i, False, e.message)
        except OSError as e:
            return Outcome(i, False, f"could not move it ({e.strerror})")
        d = Decision(self.history[-1].seq + 1 if self.history else 1, i, action, frame.path, placed.path,
                     placed.label, frame.sha256, placed.csv_row)
        append_line(self.journal, d.line())
        frame.path.unlink(missing_ok=True)
        self.decided[i] = d
        self.history.append(d)
        logger.info("%s -> %s", clean(frame.path.name), clean(str(placed.path)))
        return Outcome(i, True, str(placed.path))

    def undo(self) -> Outcome:
        """Take back the newest decision not yet taken back: the frame returns to the folder."""
        with self._lock:
            live = [d for d in self.history if not d.undone]
            if not live:
                return Outcome(-1, False, "nothing to undo")
            d = live[-1]
            try:
                if d.action == Action.DISCARD:
                    back = place_file(d.dest, d.source.parent, d.source.name)
                    d.dest.unlink()
                else:
                    back = self.dataset.take_back(Placed(d.dest, d.label, d.csv_row), d.source, d.sha256)
            except OSError as e:
                return Outcome(d.frame, False, f"could not take it back ({e.strerror})")
            append_line(self.journal, json.dumps({"undo": d.seq}))
            d.undone = True
            if d.frame < 0:  # decided in an earlier session: it joins this one's list again
                self.frames.append(Frame(back, d.sha256))
                d.frame = len(self.frames) - 1
            self.frames[d.frame].path = back
            self.decided.pop(d.frame, None)
            return Outcome(d.frame, True, f"{d.source.name} is back")

    # --- restart -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Read the journal of earlier sessions: finish a move a crash interrupted, and make their
        decisions undoable here. Returns how many moves were finished."""
        finished = 0
        entries = read_lines(self.journal)
        undone = {e["undo"] for e in entries if isinstance(e.get("undo"), int)}
        index = {f.path: n for n, f in enumerate(self.frames)}
        for e in entries:
            if not isinstance(e.get("seq"), int) or "dest" not in e:
                continue
            try:
                d = Decision(e["seq"], -1, Action(e["action"]), Path(e["source"]), Path(e["dest"]),
                             str(e.get("label") or ""), str(e.get("sha256") or ""),
                             e.get("csv_row") if isinstance(e.get("csv_row"), list) else None, e["seq"] in undone)
            except (KeyError, ValueError, TypeError):
                continue
            if not d.undone and d.source.exists() and d.dest.exists() and file_sha256(d.source) == d.sha256:
                n = index.get(d.source)
                d.source.unlink()  # decided before the crash: the dataset holds it already
                finished += 1
                if n is not None:
                    d.frame = n
                    self.decided[n] = d
            self.history.append(d)
        return finished
