"""The shared decode and resize path."""
import numpy as np
import pytest

from helpers.images import write_rgb
from edgetl.image import DecodeError, decode, decode_bytes, load, resize


def test_resize_and_center_crop_shapes():
    img = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    assert resize(img, 224, 224).shape == (224, 224, 3)
    crop = resize(img, 100, 100, "center_crop")
    assert crop.shape == (100, 100, 3) and crop.flags.c_contiguous
    assert resize(np.zeros((10, 20, 3), np.uint8), 40, 80).shape == (40, 80, 3)
    with pytest.raises(ValueError):
        resize(img, 10, 10, "stretch")


def test_center_crop_keeps_the_middle():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255
    assert resize(img, 50, 50, "center_crop").min() == 255
    assert resize(img, 50, 50, "resize").min() == 0


def test_decode_is_rgb(tmp_path):
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 250
    path = write_rgb(tmp_path / "red.png", rgb)
    assert decode(path)[0, 0].tolist() == [250, 0, 0]
    assert load(path, 10, 10).shape == (10, 10, 3)
    with pytest.raises(DecodeError):
        decode_bytes(b"not an image")
