"""Frame validation and pixel-layout conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from secfepas_sdk.camera.frames import Frame, as_bgr
from secfepas_sdk.errors import SourceError


def _px(h: int = 4, w: int = 6) -> np.ndarray:
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def test_frame_takes_ownership_read_only() -> None:
    px = _px()
    f = Frame(pixels=px, timestamp=1.5, index=3, source_id="s")
    assert (f.width, f.height) == (6, 4)
    with pytest.raises(ValueError):
        f.pixels[0, 0, 0] = 1
    with pytest.raises(AttributeError):
        f.timestamp = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pixels": np.zeros((4, 6), np.uint8)},
        {"pixels": np.zeros((4, 6, 4), np.uint8)},
        {"pixels": np.zeros((4, 6, 3), np.float32)},
        {"pixels": np.zeros((0, 6, 3), np.uint8)},
        {"pixels": np.zeros((4, 12, 3), np.uint8)[:, ::2]},
        {"timestamp": math.nan},
        {"timestamp": math.inf},
        {"index": -1},
        {"source_id": ""},
        {"wall_time": math.nan},
        {"wall_time": 12.5},  # a media or monotonic time passed as the wall clock
    ],
)
def test_frame_rejects_bad_fields(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"pixels": _px(), "timestamp": 0.0, "index": 0, "source_id": "s"}
    base.update(kwargs)
    with pytest.raises(ValueError):
        Frame(**base)  # type: ignore[arg-type]


def test_frame_wall_time_defaults_to_now_beside_media_time() -> None:
    import time

    before = time.time()
    f = Frame(pixels=_px(), timestamp=3.0, index=0, source_id="s")
    assert before <= f.wall_time <= time.time() and f.timestamp == 3.0


def test_as_bgr_converts_grey_alpha_and_rgb() -> None:
    grey = np.full((4, 6), 77, np.uint8)
    out = as_bgr(grey, source_id="s")
    assert out.shape == (4, 6, 3) and np.all(out == 77)
    assert as_bgr(grey[:, :, None], source_id="s").shape == (4, 6, 3)
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 0], bgra[..., 3] = 200, 10
    out = as_bgr(bgra, source_id="s")
    assert out.shape == (4, 6, 3) and np.all(out[..., 0] == 200) and np.all(out[..., 1:] == 0)
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    out = as_bgr(rgb, source_id="s", assume="rgb")
    assert np.all(out[..., 2] == 255) and np.all(out[..., 0] == 0)
    assert out.flags.c_contiguous


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [
        (np.zeros((4, 6, 2), np.uint8), "2 channels"),
        (np.zeros((4, 6, 3), np.uint16), "uint16"),
        (np.zeros((4, 6, 3, 1), np.uint8), "shape"),
        ([[0, 1]], "not a numpy array"),
    ],
)
def test_as_bgr_refuses_with_source_name(pixels: object, fragment: str) -> None:
    with pytest.raises(SourceError, match=f"cam7: .*{fragment}"):
        as_bgr(pixels, source_id="cam7")
