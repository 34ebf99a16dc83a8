"""Draw a ten-class dataset for the "unknown" rule's figures on more than two classes (issue 40).

    python tools/ten_classes.py DIR [--per-class 100]

Ten kinds of drawn object (the demo's ball, box and cone, and a ring, a star, a cross, an arrow, a
crescent, a diamond and a striped bar), each at a random place, size, angle and colour on a lit
background of the other side of mid-grey, blurred and noisy: DIR/<kind>/*.jpg. Then, for the
figures: edgetl train DIR --weights ../shared/weights/... ; edgetl export RUN --all ;
python tools/unknown_figures.py RUN --data DIR --title "ten generated classes".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("ball", "box", "cone", "ring", "star", "cross", "arrow", "crescent", "diamond", "bar")


def _poly(cx: float, cy: float, points: list[tuple[float, float]], r: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[cx + r * (x * c - y * s), cy + r * (x * s + y * c)] for x, y in points], np.int32)


def draw(kind: str, rng: np.random.Generator, size: int = 160) -> np.ndarray:
    """One RGB image of ``kind``."""
    import cv2

    from edgetl.demo import _background, _luminance, draw_object

    if kind in ("ball", "box", "cone"):
        return draw_object(kind, rng, size)
    colour = rng.integers(20, 235, 3).astype(float)
    lo, hi = (20, 100) if _luminance(colour) > 128 else (150, 236)
    img = _background(rng, size, lo, hi)
    r = size * rng.uniform(0.2, 0.3)
    cx, cy = size * rng.uniform(0.4, 0.6), size * rng.uniform(0.4, 0.6)
    angle = rng.uniform(0, 2 * np.pi)
    col = tuple(float(v) for v in colour)
    if kind == "ring":
        cv2.circle(img, (int(cx), int(cy)), int(r), col, max(3, int(r / 3)))
    elif kind == "star":
        pts = [(np.cos(a) * (1 if i % 2 == 0 else 0.45), np.sin(a) * (1 if i % 2 == 0 else 0.45))
               for i, a in enumerate(np.linspace(0, 2 * np.pi, 10, endpoint=False))]
        cv2.fillPoly(img, [_poly(cx, cy, pts, r, angle)], col)
    elif kind == "cross":
        w = 0.3
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
        cv2.fillPoly(img, [_poly(cx, cy, pts, r, angle)], col)
    elif kind == "arrow":
        pts = [(-1, -0.2), (0.2, -0.2), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.2), (-1, 0.2)]
        cv2.fillPoly(img, [_poly(cx, cy, pts, r, angle)], col)
    elif kind == "crescent":
        cv2.circle(img, (int(cx), int(cy)), int(r), col, -1)
        back = img[int(np.clip(cy, 0, size - 1)), int(np.clip(cx + 1.6 * r, 0, size - 1))].tolist()
        cv2.circle(img, (int(cx + 0.45 * r * np.cos(angle)), int(cy + 0.45 * r * np.sin(angle))), int(0.85 * r),
                   tuple(float(v) for v in rng.integers(lo, hi, 3)) if not back else tuple(back), -1)
    elif kind == "diamond":
        cv2.fillPoly(img, [_poly(cx, cy, [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)], r, angle)], col)
    else:  # bar: a rectangle with three dark stripes across
        cv2.fillPoly(img, [_poly(cx, cy, [(-1, -0.35), (1, -0.35), (1, 0.35), (-1, 0.35)], r, angle)], col)
        for x in (-0.5, 0, 0.5):
            cv2.fillPoly(img, [_poly(cx, cy, [(x - 0.08, -0.35), (x + 0.08, -0.35), (x + 0.08, 0.35), (x - 0.08, 0.35)],
                                     r, angle)], (25.0, 25.0, 25.0))
    img = img * rng.uniform(0.75, 1.2) + rng.uniform(-20, 20)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
    img = img + rng.normal(0, rng.uniform(2, 6), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    for kind in KINDS:
        (a.folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(a.per_class):
            cv2.imwrite(str(a.folder / kind / f"{kind}_{i:03d}.jpg"), cv2.cvtColor(draw(kind, rng), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"{len(KINDS)} classes x {a.per_class} images in {a.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
