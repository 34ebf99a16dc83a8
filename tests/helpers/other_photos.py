"""Real photographs of things that are none of any test dataset's classes: the ones scikit-image
bundles in its wheel (so the tests need no download). Drawn shapes or shuffled tiles are never the
only evidence for a claim about photos."""
from __future__ import annotations

import os
from pathlib import Path

TEN = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
       "hubble_deep_field.jpg", "retina.jpg", "clock_motion.png", "coins.png")
"""Ten photographs of unrelated things: a person, a cat, a cup, a rocket, a motorcycle, a man with
a camera, galaxies, a retina, a clock, coins."""
MORE = ("brick.png", "grass.png", "gravel.png", "moon.png", "ihc.png", "page.png", "cell.png")
"""Seven more (textures, the moon, microscopy, a scanned page)."""


def photo_folder() -> Path:
    """scikit-image's bundled data folder."""
    import skimage

    return Path(os.path.dirname(skimage.__file__)) / "data"


def other_photos(names: tuple[str, ...] = TEN) -> list[Path]:
    """The paths of ``names`` in scikit-image's data folder."""
    folder = photo_folder()
    return [folder / n for n in names]
