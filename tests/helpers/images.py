"""Generated pictures and folders of them: shapes that a model trained from scratch in seconds
can tell apart, and images that are none of a dataset's classes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def shape_image(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """An RGB uint8 photo-like picture of one shape class on a noisy, grey background. Each class
    also leans to a colour of its own (as real classes do: daisies are white, roses red), so a
    model with random, untrained features — the tests train from scratch in seconds — still beats
    chance on held-out images."""
    bg = rng.integers(60, 196)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    lean = {"circle": (200, 60, 60), "square": (60, 200, 60)}.get(kind, (60, 60, 200))
    colour = tuple(int(c) for c in (np.array(lean) + rng.integers(-40, 40, 3)).clip(0, 255))
    c = size // 2 + rng.integers(-size // 8, size // 8 + 1, 2)
    r = int(size * rng.uniform(0.18, 0.3))
    if kind == "circle":
        cv2.circle(img, (int(c[0]), int(c[1])), r, colour, -1)
    elif kind == "square":
        cv2.rectangle(img, (int(c[0] - r), int(c[1] - r)), (int(c[0] + r), int(c[1] + r)), colour, -1)
    else:
        pts = np.array([[c[0], c[1] - r], [c[0] - r, c[1] + r], [c[0] + r, c[1] + r]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    return img


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB array with OpenCV (which wants BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def make_shapes(root: Path, classes=("circle", "square", "triangle"), per_class: int = 20, seed: int = 0,
                size: int = 96, splits: tuple[str, ...] = ()) -> Path:
    """A generated dataset: one folder per class, or train/val splits when ``splits`` is given."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        for i in range(per_class):
            split = splits[i % len(splits)] if splits else ""
            write_rgb(root / split / cls / f"{cls}_{i:03d}.jpg", shape_image(cls, rng, size))
    return root


def none_of_the_classes(root: Path, photos: list[Path], seed: int, per_kind: int = 40) -> Path:
    """Images that are neither ants nor bees, for the "unknown" tests (no third class of real photos
    is at hand): real photos cut into 16 px tiles and shuffled (a photo's colours and textures, no
    insect), and generated shape pictures. ``photos`` and ``seed`` keep two such sets disjoint."""
    rng = np.random.default_rng(seed)
    for i, photo in enumerate(photos[:per_kind]):
        image = cv2.resize(cv2.imread(str(photo)), (224, 224))
        tiles = image.reshape(14, 16, 14, 16, 3).swapaxes(1, 2).reshape(196, 16, 16, 3)[rng.permutation(196)]
        cv2.imwrite(str(root / f"tiles_{i:03d}.jpg"), tiles.reshape(14, 14, 16, 16, 3).swapaxes(1, 2).reshape(224, 224, 3))
    for i in range(per_kind):
        write_rgb(root / f"shape_{i:03d}.jpg", shape_image(("circle", "square", "triangle")[i % 3], rng, 160))
    return root
