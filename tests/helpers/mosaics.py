"""A multi-label dataset from real photos: 2x2 mosaics whose tiles are hymenoptera's ants and bees
and scikit-image's photos of other things, each mosaic labelled with what its tiles show (ants,
bees, both, or none). Training mosaics use hymenoptera's train photos, validation ones its val
photos, so no photo is in both splits. Written as a ``path,labels,split`` CSV and as a one-hot CSV."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from helpers.images import write_rgb
from helpers.other_photos import MORE, TEN, other_photos

LABELS = ("ants", "bees")


def _tiles(folder: Path, tile: int) -> list[np.ndarray]:
    from edgetl.image import load

    return [load(p, tile, tile, "center_crop") for p in sorted(folder.iterdir())]


def make_mosaics(hymenoptera: Path, root: Path, train: int = 160, val: int = 80, tile: int = 64, seed: int = 0) -> dict:
    """Write the mosaics and both CSVs under ``root``; return their paths and each image's labels."""
    from edgetl.image import load

    rng = np.random.default_rng(seed)
    others = [load(p, tile * 3, tile * 3, "center_crop") for p in other_photos(TEN + MORE)]
    rows = []
    for split, count, source in (("train", train, "train"), ("val", val, "val")):
        kinds = {label: _tiles(hymenoptera / source / label, tile) for label in LABELS}
        for n in range(count):
            tiles, present = [], set()
            for _ in range(4):
                pick = rng.choice(3, p=[0.15, 0.15, 0.7])
                if pick < 2:
                    label = LABELS[pick]
                    present.add(label)
                    tiles.append(kinds[label][rng.integers(len(kinds[label]))])
                else:  # a random crop of another photo
                    o = others[rng.integers(len(others))]
                    y, x = rng.integers(0, o.shape[0] - tile), rng.integers(0, o.shape[1] - tile)
                    tiles.append(o[y:y + tile, x:x + tile])
            image = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
            path = write_rgb(root / "images" / f"{split}_{n:04d}.jpg", image)
            rows.append((path.relative_to(root).as_posix(), sorted(present), split))
    listed = root / "labels.csv"
    with open(listed, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "split"])
        for path, present, split in rows:
            w.writerow([path, ";".join(present), split])
    one_hot = root / "onehot.csv"
    with open(one_hot, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", *LABELS, "split"])
        for path, present, split in rows:
            w.writerow([path, *(int(label in present) for label in LABELS), split])
    return {"list": listed, "one_hot": one_hot, "rows": rows}
