"""Crop, resize and normalise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.camera.preprocess import (
    PreprocessConfig,
    crop_face,
    preprocess_face,
    square_box,
    to_tensor,
)


def test_tensor_layout_colour_order_and_scale() -> None:
    px = np.zeros((100, 120, 3), np.uint8)
    px[..., 0] = 255  # blue in BGR
    px[..., 2] = 51  # red = 0.2
    x = preprocess_face(px, (10, 10, 60, 60))
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.allclose(x[0, 0], 0.2) and np.allclose(x[0, 1], 0.0) and np.allclose(x[0, 2], 1.0)


def test_mean_std_and_size_from_manifest() -> None:
    cfg = PreprocessConfig.from_manifest(
        input_shape=[1, 3, 96, 96], mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0]
    )
    px = np.full((50, 50, 3), 255, np.uint8)
    x = to_tensor(px, cfg)
    assert x.shape == (1, 3, 96, 96)
    assert np.allclose(x[0, :, 0, 0], [2.0, 1.0, 0.5])
    with pytest.raises(ValueError):
        PreprocessConfig.from_manifest(input_shape=[1, 3, 96, 64], mean=[0] * 3, std=[1] * 3)
    with pytest.raises(ValueError):
        PreprocessConfig.from_manifest(input_shape=[1, 3, 96, 96], mean=[0] * 2, std=[1] * 3)


def test_crop_is_square_with_margin() -> None:
    # A 40x60 box with 20% margin: side = 60 * 1.4 = 84, centred.
    assert square_box((100, 100, 140, 160), (480, 640), 0.2) == (78, 88, 162, 172)
    px = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    crop = crop_face(px, (100, 100, 140, 160), margin=0.2)
    assert crop.shape == (84, 84, 3)
    assert np.array_equal(crop, px[88:172, 78:162])


def test_crop_is_clamped_to_the_image() -> None:
    # At the corner the square is moved inside the image, keeping its side.
    assert square_box((600, 440, 640, 480), (480, 640), 0.2) == (584, 424, 640, 480)
    # Larger than the image: shrinks to the shorter side, still square.
    assert square_box((0, 0, 640, 480), (480, 640), 0.5) == (80, 0, 560, 480)


@given(
    x1=st.floats(-50, 700),
    y1=st.floats(-50, 500),
    w=st.floats(1, 800),
    h=st.floats(1, 600),
    margin=st.floats(0, 2),
)
def test_square_box_always_inside_and_square(
    x1: float, y1: float, w: float, h: float, margin: float
) -> None:
    left, top, right, bottom = square_box((x1, y1, x1 + w, y1 + h), (480, 640), margin)
    assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480
    assert right - left == bottom - top


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 4},
        {"margin": -0.1},
        {"mean": (0.5, 0.5, 0.5)},
        {"mean": (0.5, 0.5, 0.5), "std": (1.0, 0.0, 1.0)},
        {"mean": (0.5, 0.5), "std": (1.0, 1.0)},
    ],
)
def test_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PreprocessConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_box_and_crop() -> None:
    with pytest.raises(ValueError):
        square_box((10, 10, 5, 20), (100, 100), 0.2)
    with pytest.raises(ValueError):
        to_tensor(np.zeros((0, 0, 3), np.uint8), PreprocessConfig())
    with pytest.raises(ValueError):
        to_tensor(np.zeros((10, 10, 3), np.float32), PreprocessConfig())  # type: ignore[arg-type]
