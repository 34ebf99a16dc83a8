"""What export reads of a run: the finished run folder and its manifest, its held-out images and
the Keras model's answers on them."""
from __future__ import annotations

import logging
from pathlib import Path


from edgetl import runs
from edgetl.data.audit import Audit, targets
from edgetl.data.cache import ArrayStore, open_images
from edgetl.errors import EdgetlError
from edgetl.exporting.verify import Reference, reference
from edgetl.runs import RunFolder
from edgetl.runtime.folder_manifest import RunManifest
from edgetl.runtime.spec import PixelSpec


logger = logging.getLogger(__name__)


def read_run(run: str | Path | None) -> tuple[Path, RunManifest]:
    """The run folder (default: the latest) and its manifest, checked to be a finished run."""
    run_path = Path(run) if run is not None else runs.latest_run()
    if not run_path.is_dir():
        why = runs.unfinished(runs.final_path(run_path))
        if why:
            raise EdgetlError(f"this run is {why.split(':')[0]}", path=run_path, fix=why.split(": ", 1)[1])
        raise EdgetlError("no such run folder", path=run_path,
                          fix="give a finished run folder from `edgetl train` (runs/expN)")
    if run is None:
        logger.info(f"exporting the latest finished run, {run_path}")
    folder = RunFolder(run_path)
    if not folder.model.is_file():
        raise EdgetlError(f"no {folder.model.name} in this folder: not a finished run", path=run_path,
                          fix="give a finished run folder from `edgetl train` (runs/expN)")
    return run_path, folder.read_manifest()


def held_out(result_audit: Audit) -> list:
    """The held-out records: test, else val."""
    return result_audit.split("test") or result_audit.split("val")


def held_out_reference(run_path: Path, result_audit: Audit, pixels: PixelSpec) -> tuple[ArrayStore, Reference]:
    """The held-out images (test, else val) at the model's size, in the disk cache and read a batch
    at a time by every check, and the Keras model's answers on them."""
    records = held_out(result_audit)
    images = open_images([r.path for r in records], pixels, hashes=[r.sha256 for r in records])
    return images, reference(RunFolder(run_path).model, images, targets(records, len(result_audit.classes)))
