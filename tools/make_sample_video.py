"""Regenerate the bundled demo clip from public-domain stills in scikit-image.

    python tools/make_sample_video.py [--out PATH]

The clip is 320x240 at 10 fps, 36 s of capture time, MPEG-4 Part 2 (``mp4v``)
in an .mp4 container, so OpenCV's FFmpeg backend reads it everywhere. It is
scripted so that every selection step shows up with the default settings
(period 5 s, redundancy threshold 0.8):

    t (s)   scene                                   periodic candidate at t -> outcome
    0-6     astronaut(), still, sensor noise        0 selected, 5 redundant
    6-9     slow pan to the right and down          -
    9-18    still at the new framing                10 selected, 15 redundant
    18-22   lamp brightens by ~30 grey levels       20 selected
    22-28   scene change: coffee(), no face         25 selected (no face)
    28-30   back to the astronaut, zooming in       -
    30-36   still, close-up                         30 selected, 35 redundant

Sources: ``skimage.data.astronaut()`` (Eileen Collins, NASA; public domain) and
``skimage.data.coffee()`` (Rachel Michetti; public domain, CC0), as stated in
scikit-image's data/README. The Gaussian sensor noise is seeded, so a rerun
with the same library versions gives the same frames.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage import data

OUT = (
    Path(__file__).resolve().parent.parent
    / "secfepas_sdk"
    / "models"
    / "data"
    / "sample"
    / "demo_clip.mp4"
)
W, H, FPS, SECONDS = 320, 240, 10, 36
NOISE_STD = 1.5

Window = tuple[float, float, float]  # centre x, centre y, width (in source pixels; 4:3)


def _view(src: NDArray[np.uint8], win: Window) -> NDArray[np.float32]:
    """Resample a 4:3 window of ``src`` to W x H with sub-pixel precision."""
    cx, cy, ww = win
    wh = ww * H / W
    scale = ww / W
    m = np.array([[scale, 0.0, cx - ww / 2.0], [0.0, scale, cy - wh / 2.0]], np.float64)
    out = cv2.warpAffine(
        src,
        m,
        (W, H),
        flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT101,
    )
    return out.astype(np.float32)


def _lerp(a: Window, b: Window, u: float) -> Window:
    u = 0.5 - 0.5 * np.cos(np.pi * min(max(u, 0.0), 1.0))  # ease in and out
    return (a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u, a[2] + (b[2] - a[2]) * u)


def frame_at(t: float, astro: NDArray[np.uint8], coffee: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The noiseless frame at capture time ``t`` (float BGR)."""
    wide: Window = (230.0, 180.0, 400.0)
    panned: Window = (250.0, 200.0, 400.0)
    close: Window = (225.0, 150.0, 280.0)
    if t < 6.0:
        return _view(astro, wide)
    if t < 9.0:
        return _view(astro, _lerp(wide, panned, (t - 6.0) / 3.0))
    if t < 18.0:
        return _view(astro, panned)
    if t < 22.0:
        gain = 30.0 * min((t - 18.0) / 1.5, 1.0)
        return _view(astro, panned) + gain
    if t < 28.0:
        return _view(coffee, (300.0, 200.0, 560.0))
    if t < 30.0:
        return _view(astro, _lerp(panned, close, (t - 28.0) / 2.0))
    return _view(astro, close)


def main() -> int:
    parser = argparse.ArgumentParser(description="write the bundled demo clip")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    astro = np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    coffee = np.ascontiguousarray(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        print(f"cannot open a writer for {args.out}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(20260101)  # test media, not a secret
    n = SECONDS * FPS
    for i in range(n):
        frame = frame_at(i / FPS, astro, coffee)
        frame += rng.normal(0.0, NOISE_STD, size=frame.shape).astype(np.float32)
        writer.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    writer.release()
    cap = cv2.VideoCapture(str(args.out))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    size = args.out.stat().st_size
    print(f"{args.out}: {n} frames written, {count} read back, {size} bytes")
    return 0 if count == n else 1


if __name__ == "__main__":
    sys.exit(main())
