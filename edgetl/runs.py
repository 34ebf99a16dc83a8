"""Run folders: auto-named (runs/exp, runs/exp2, ...), built under a hidden in-progress name and
renamed when the run completes, so a crash never leaves a folder that looks finished.

The same protocol serves export: a unique hidden work folder per attempt, a lock per run so two
processes never write one run at once, and a rename-aside swap so there is never a moment without
a complete folder in place."""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runtime.folder_manifest import ExportManifest, RunManifest
from edgetl.runtime.golden import GOLDEN_FILE
from edgetl.runtime.labels import LABELS_FILE
from edgetl.runtime.manifest import MANIFEST

INCOMPLETE = ".incomplete"
LOCK = ".edgetl.lock"
EXPORT = "export"


class _File:
    """A name in a folder: on an instance, ``folder.model`` is ``folder.path / "model.keras"``; on
    the class, ``RunFolder.model.name`` is the name itself."""

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.__doc__ = name, doc

    def __get__(self, folder, owner=None):
        return self if folder is None else folder.path / self.name


@dataclass(frozen=True)
class _Folder:
    """A folder and the names in it (``_File``s on the subclass). Names only: nothing is read until asked."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # a str is welcome too


@dataclass(frozen=True)
class ExportFolder(_Folder):
    """RUN/export/: the verified artifacts and what export and bench wrote beside them."""

    manifest = _File(MANIFEST, "manifest.json: every artifact, its hash and verdict.")
    labels = _File(LABELS_FILE, "labels.txt, one class per line.")
    golden = _File(GOLDEN_FILE, "golden.npy: the golden images.")
    report_json = _File("report.json", "report.json: every check's figures.")
    report_md = _File("report.md", "report.md: the same as a table.")
    bench = _File("bench.json", "bench.json: the newest benchmark of each model, thread count and device.")
    rejected = _File("rejected", "rejected/: artifacts that missed their gate.")

    def read_manifest(self) -> ExportManifest:
        """The export's typed manifest (one error naming the file when it is damaged)."""
        return ExportManifest.read(self.manifest)


@dataclass(frozen=True)
class RunFolder(_Folder):
    """One training run's folder (finished or in progress): every file name under RUN/ is here,
    and the folder's manifest is read and written typed."""

    config = _File("config.yaml", "config.yaml: the run's settings.")
    audit = _File("audit.json", "audit.json: every file, its split and class.")
    state = _File("state.json", "state.json: where training is (for --resume).")
    model = _File("model.keras", "model.keras: the trained model.")
    manifest = _File(MANIFEST, "manifest.json: what export reads.")
    labels = _File(LABELS_FILE, "labels.txt, one class per line.")
    metrics = _File("metrics.json", "metrics.json: the held-out figures.")
    history = _File("history.json", "history.json: every epoch's figures.")
    history_plot = _File("history.png", "history.png: the training curves.")
    confusion_plot = _File("confusion_matrix.png", "confusion_matrix.png.")
    reliability_plot = _File("reliability.png", "reliability.png: calibration.")
    pr_plot = _File("pr_curves.png", "pr_curves.png: multi-label precision-recall per label.")
    predictions = _File("predictions.json", "predictions.json: per held-out image.")
    log = _File("train.log", "train.log: the status lines.")
    tensorboard = _File("tensorboard", "tensorboard/: logs for --tensorboard.")
    page = _File("report.html", "report.html: the run's page.")
    demo_video = _File("demo.mp4", "demo.mp4: the video `edgetl demo` classified live.")
    demo_summary = _File("demo_summary.json", "demo_summary.json: what `edgetl demo` measured.")
    comparison = _File("comparison.json", "comparison.json: `edgetl compare` of this run against an older one.")

    @property
    def export(self) -> ExportFolder:
        """export/: what `edgetl export` wrote."""
        return ExportFolder(self.path / EXPORT)

    def checkpoint(self, which: str) -> Path:
        """The ``last`` or ``best`` weights checkpoint (removed when the run completes)."""
        return self.path / f"{which}.weights.npz"

    def is_finished_run(self) -> bool:
        """A finished run: its audit and its model are there."""
        return self.audit.is_file() and self.model.exists()

    def read_manifest(self) -> RunManifest:
        """The run's typed manifest (one error naming the file when it is damaged)."""
        return RunManifest.read(self.manifest)

    def write_manifest(self, manifest: RunManifest) -> None:
        """Write the run's manifest (under a temporary name, then renamed)."""
        manifest.write(self.manifest)


def in_progress(final: Path) -> Path:
    """Where a run lives until it completes: runs/.exp3.incomplete for runs/exp3."""
    return final.parent / f".{final.name}{INCOMPLETE}"


def final_path(path: Path) -> Path:
    """The finished name of a run folder given either name."""
    if path.name.startswith(".") and path.name.endswith(INCOMPLETE):
        return path.parent / path.name[1: -len(INCOMPLETE)]
    return path


def _auto_name(root: Path, name: str) -> Path:
    taken = {final_path(p).name for p in root.iterdir()}
    n = 1
    while (f"{name}{n}" if n > 1 else name) in taken:
        n += 1
    return root / (f"{name}{n}" if n > 1 else name)


def check_new_run(out: str | Path | None) -> None:
    """Raise before anything is created when a new run could not be made where asked."""
    if out is None:
        return
    final = Path(out)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise EdgetlError("run folder exists and is not empty", path=final, fix="choose another --out, or delete it")
    if in_progress(final).exists():
        raise EdgetlError("an interrupted run of this name exists", path=in_progress(final),
                          fix=f"resume it with `edgetl train --resume {final}`, or delete {in_progress(final)}")


def new_run(project: str | Path, name: str, out: str | Path | None = None) -> Path:
    """Reserve a run folder and return its in-progress path. Auto-named runs retry with the next
    number when another process took the name first."""
    check_new_run(out)
    if out is not None:
        work = in_progress(Path(out))
        work.parent.mkdir(parents=True, exist_ok=True)
        try:
            work.mkdir()
        except FileExistsError:
            raise EdgetlError("another run is being written here", path=work, fix="choose another --out") from None
        return work
    root = Path(project)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        work = in_progress(_auto_name(root, name))
        try:
            work.mkdir()
            return work
        except FileExistsError:
            continue  # a concurrent `edgetl train` took this number a moment ago
    raise EdgetlError("could not reserve a run folder name", path=root, fix="give --out FOLDER")


def resume_path(run: str | Path) -> Path:
    """The in-progress folder of an interrupted run named either way."""
    p = Path(run)
    work = in_progress(final_path(p))
    if work.is_dir():
        return work
    if final_path(p).is_dir():
        raise EdgetlError("this run already completed", path=final_path(p), fix="start a new run without --resume")
    raise EdgetlError("no interrupted run here", path=p, fix="give the folder `edgetl train` printed when it stopped")


def finish(work: Path) -> Path:
    """Rename a completed run to its final name."""
    final = final_path(work)
    if final.exists() and not any(final.iterdir()):
        final.rmdir()
    os.replace(work, final)
    return final


@contextlib.contextmanager
def locked(folder: Path, what: str) -> Iterator[None]:
    """Hold this folder's lock while writing into it; a second process gets a clear error
    instead of destroying the first one's work. The lock file goes when the lock is released
    (also when the folder was renamed meanwhile: a finished run has none left in it)."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EdgetlError(f"another edgetl process is writing {what} here", path=folder,
                              fix="wait for it to finish, then run this again") from None
        if _same_file(fd, folder / LOCK):
            break
        os.close(fd)  # the holder before us removed this file as it let go: lock the new one
    try:
        yield
    finally:
        here = _path_of(fd) or folder / LOCK
        if _same_file(fd, here):
            here.unlink(missing_ok=True)  # while still held: whoever opens it next makes a new one
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _path_of(fd: int) -> Path | None:
    """Where an open file is now (it moves with a renamed folder), where the system can say."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def work_folder(parent: Path, name: str) -> Path:
    """A new, unique hidden folder in ``parent`` to build ``name`` in, with the permissions an
    ordinary folder gets (mkdtemp makes it 0700, and it is swapped in as the real folder: a
    service account could then not read RUN/export)."""
    path = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=INCOMPLETE, dir=parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o777 & ~mask)
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_in(work: Path, final: Path) -> None:
    """Put a completed ``work`` folder in place of ``final`` so that ``final`` is at every moment
    either the old or the new complete folder: one atomic exchange where the system has it,
    else the old folder is renamed aside just before the new one takes its name. The old one is
    removed after."""
    if not final.exists():
        os.replace(work, final)
        return
    if _exchange(work, final):
        shutil.rmtree(work, ignore_errors=True)  # work now holds the old folder
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
    os.replace(final, aside / final.name)
    os.replace(work, final)
    shutil.rmtree(aside, ignore_errors=True)


def remove_stale_work(parent: Path, name: str) -> None:
    """Remove work folders of ``name`` that no process is writing (left by a crash)."""
    for p in parent.glob(f".{name}.*{INCOMPLETE}"):
        shutil.rmtree(p, ignore_errors=True)


def unfinished(final: Path) -> str | None:
    """Why the run at ``final`` is not there yet, in words, when it is still being written or was
    interrupted (its ``.NAME.incomplete`` folder exists); None otherwise."""
    work = in_progress(final)
    if not work.is_dir():
        return None
    fd = os.open(work / LOCK, os.O_RDWR | os.O_CREAT, 0o644) if os.access(work, os.W_OK) else None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "still training (another edgetl process is writing it): export it when `edgetl train` has finished"
    finally:
        if fd is not None:
            os.close(fd)
    return f"interrupted before it finished: continue it with `edgetl train --resume {final}`"


def latest_run(project: str | Path = "runs") -> Path:
    """The most recently finished run under ``project`` (for `edgetl export` without RUN)."""
    root = Path(project)
    runs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and RunFolder(p).model.exists()] \
        if root.is_dir() else []
    if not runs:
        raise EdgetlError("no finished training run found", path=root, fix="train one with `edgetl train DATA`, or name RUN")
    return max(runs, key=lambda p: RunFolder(p).model.stat().st_mtime)


def check_run_folder(path: str | Path) -> RunFolder:
    """``path`` as a run folder, or one error when `edgetl train` did not write it."""
    folder = RunFolder(Path(path))
    if not folder.config.is_file():
        raise EdgetlError(f"not a run folder (no {folder.config.name})", path=path, fix="give a folder `edgetl train` wrote")
    return folder


def run_of(model: str | Path) -> Path | None:
    """The finished run folder a model file belongs to (``RUN/model.keras``, ``RUN/export/*``,
    ``RUN/export/rejected/*``), recognised by its ``audit.json``; None for a model from elsewhere."""
    path = Path(model).absolute()
    for folder in list(path.parents)[:3]:
        if RunFolder(folder).is_finished_run():
            return folder
    return None
