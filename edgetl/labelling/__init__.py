"""`edgetl label DIR`: sort harvested frames (or any folder of images) into a dataset's classes in a
local web page, keyboard first, every decision written at once.

:func:`open_session` reads the frames and the dataset; :class:`~edgetl.labelling.serve.LabelServer`
serves the page over it; :func:`label` does both and serves until stopped."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgetl import runs
from edgetl.errors import EdgetlError
from edgetl.labelling.dataset import Dataset, open_dataset
from edgetl.labelling.frames import find_frames, guess_with_model
from edgetl.labelling.session import Action, LabelSession
from edgetl.runtime.labels import read_labels
from edgetl.training.warm_start import data_of
from edgetl.webserver import Address, parse_address

logger = logging.getLogger(__name__)

__all__ = ["Action", "LabelSession", "LabelSummary", "label", "open_session"]


@dataclass
class LabelSummary:
    """What a labelling session did."""

    folder: str
    into: str
    unknown_into: str
    total: int
    left: int
    decided: dict[str, int]
    recovered: int = 0
    """Moves an earlier session's crash had left half done, finished at the start."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def open_session(folder: str | Path, run: str | Path | None = None, into: str | Path | None = None,
                 unknown_into: str | Path | None = None) -> LabelSession:
    """The frames of ``folder`` and the dataset they go into, ready to label.

    Args:
        folder: a harvest folder (``harvest/HOST/``, its ``unsorted/`` and ``scores/``) or any
            folder of images.
        run: a run whose classes the frames are sorted into and whose model guesses for frames
            that came without the device's scores; its dataset is the default ``into``.
        into: the dataset (class folders, split folders or a CSV); made as class folders when
            it does not exist yet.
        unknown_into: where "none of these" frames go (default: ``DATA-unknown`` beside DATA).

    Raises:
        EdgetlError: no such folder, no classes, a class that cannot name a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgetlError("no such folder of frames", path=folder,
                          fix="give the folder `edgetl harvest` wrote (harvest/HOST) or any folder of images")
    run_folder = runs.check_run_folder(run) if run is not None else None
    classes = read_labels(run_folder.labels) if run_folder else None
    if into is None:
        if run_folder is None:
            raise EdgetlError("where do the labelled frames go?", fix="give --into DATA, or --run RUN (its dataset)")
        into = data_of(run_folder.path)
    dataset: Dataset = open_dataset(into, classes, unknown_into)
    frames = find_frames(folder)
    if run_folder is not None:
        guess_with_model(frames, run_folder.model)
        frames.sort(key=lambda f: f.doubt)
    return LabelSession(folder, dataset, frames)


def label(folder: str | Path, run: str | Path | None = None, into: str | Path | None = None,
          serve: str | Address = "127.0.0.1:8765", unknown_into: str | Path | None = None,
          on_serving: Callable[[str, LabelSession], None] | None = None,
          stop: threading.Event | None = None) -> LabelSummary:
    """Serve the labelling page for ``folder`` until ``stop`` is set (or Ctrl-C).

    Args:
        folder, run, into, unknown_into: as :func:`open_session`.
        serve: ``[HOST:]PORT`` (loopback by default; any other address needs the printed token).
        on_serving: called with the page's URL (and the session) once it is served.
        stop: set it to end the session.

    Returns:
        What was decided, and where things went.

    Raises:
        EdgetlError: bad input (as :func:`open_session`), the port taken, or a second
            ``label`` on the same folder (each folder has one session at a time).
    """
    from edgetl.labelling.serve import LabelServer

    address = serve if isinstance(serve, Address) else parse_address(serve)
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgetlError("no such folder of frames", path=folder,
                          fix="give the folder `edgetl harvest` wrote (harvest/HOST) or any folder of images")
    with runs.locked(folder, "labels"):
        session = open_session(folder, run, into, unknown_into)
        recovered = session.recover()
        if recovered:
            logger.info("finished %d move(s) an interrupted session had started", recovered)
        server = LabelServer(session, address)
        try:
            if on_serving:
                on_serving(server.url, session)
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            logger.info("labelling stopped")  # every decision is on disk already: say what was done
        finally:
            server.close()
        c = session.counts()
        return LabelSummary(str(folder), str(session.dataset.root), str(session.dataset.unknown_folder),
                            c["total"], c["left"], c["decided"], recovered)
