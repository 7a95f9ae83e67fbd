"""Crop, resize and normalise: the preprocessing contract carried out (shared by the
camera, training and fidelity)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.models.preprocess import (
    PreprocessConfig,
    crop_box,
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


def _manifest(**contract: object) -> dict[str, object]:
    fields: dict[str, object] = {"channels": 3, "colour_order": "RGB", "height": 96, "width": 96}
    fields.update(contract)
    return {"preprocess": fields}


def test_mean_std_and_size_from_manifest() -> None:
    cfg = PreprocessConfig.from_manifest(_manifest(mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0]))
    px = np.full((50, 50, 3), 255, np.uint8)
    x = to_tensor(px, cfg)
    assert x.shape == (1, 3, 96, 96)
    assert np.allclose(x[0, :, 0, 0], [2.0, 1.0, 0.5])
    with pytest.raises(ModelPackageError, match="mean and std need 3"):
        PreprocessConfig.from_manifest(_manifest(mean=[0] * 2, std=[1] * 3))
    with pytest.raises(ModelPackageError, match="colour_order"):
        PreprocessConfig.from_manifest(_manifest(colour_order="YUV", mean=[0] * 3, std=[1] * 3))


def test_format_1_manifest_gives_the_old_rgb_contract() -> None:
    cfg = PreprocessConfig.from_manifest(
        {"input_shape": [1, 3, 64, 64], "mean": [0.5] * 3, "std": [0.25] * 3}
    )
    assert (cfg.height, cfg.width, cfg.colour_order, cfg.margin, cfg.square) == (
        64, 64, "RGB", 0.2, True,
    )  # fmt: skip
    with pytest.raises(ModelPackageError):
        PreprocessConfig.from_manifest({"input_shape": [1, 3, 64], "mean": [0.5] * 3})


def test_grey_and_bgr_tensors() -> None:
    px = np.zeros((40, 40, 3), np.uint8)
    px[..., 0], px[..., 1], px[..., 2] = 255, 0, 51  # B, G, R
    grey = to_tensor(px, PreprocessConfig(height=16, width=16, colour_order="GRAY"))
    assert grey.shape == (1, 1, 16, 16)
    # OpenCV's BT.601 luma: 0.299 R + 0.587 G + 0.114 B.
    assert np.allclose(grey, (0.299 * 51 + 0.114 * 255) / 255, atol=1 / 255)
    bgr = to_tensor(px, PreprocessConfig(height=16, width=16, colour_order="BGR"))
    assert np.allclose(bgr[0, :, 0, 0], [1.0, 0.0, 0.2])


def test_crop_keeps_the_input_aspect_or_takes_the_box() -> None:
    px = np.zeros((480, 640, 3), np.uint8)
    wide = PreprocessConfig(height=32, width=64, margin=0.0)
    assert crop_box(px, (100, 100, 140, 160), wide).shape == (60, 120, 3)
    as_is = PreprocessConfig(height=32, width=64, margin=0.0, square=False)
    assert crop_box(px, (100, 100, 140, 160), as_is).shape == (60, 40, 3)
    assert to_tensor(crop_box(px, (100, 100, 140, 160), as_is), as_is).shape == (1, 3, 32, 64)


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
        {"height": 4},
        {"colour_order": "YUV"},
        {"interpolation": "lanczos"},
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


def test_the_camera_uses_the_same_preprocessing() -> None:
    """camera.preprocess is the camera's name for this module: the same objects."""
    from secfepas_sdk.camera import preprocess as camera_preprocess
    from secfepas_sdk.models import preprocess

    for name in preprocess.__all__:
        assert getattr(camera_preprocess, name) is getattr(preprocess, name), name
    assert sorted(camera_preprocess.__all__) == sorted(preprocess.__all__)
