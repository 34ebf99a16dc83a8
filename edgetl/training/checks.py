"""Settings checked before a run folder is made, so that a wrong one leaves nothing behind."""
from __future__ import annotations

from pathlib import Path

from edgetl.errors import EdgetlError


def check_tensorboard(wanted: bool) -> None:
    """TensorBoard logs need the tensorboard package (the optional extra), checked up front."""
    import importlib.util

    if wanted and importlib.util.find_spec("tensorboard") is None:
        raise EdgetlError("--tensorboard needs the tensorboard package", fix='pip install "edgetl[tensorboard]"')


def unknown_files(folder: str | Path) -> list[Path]:
    """The image files of ``train --unknown``: images that are none of the classes."""
    from edgetl.evaluation import image_files

    if not Path(folder).is_dir():
        raise EdgetlError("--unknown needs a folder of images that are none of the classes", path=folder,
                          fix="give a folder (its sub-folders are read too)")
    return image_files([folder])
