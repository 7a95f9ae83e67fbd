"""Reproduce the calibration table of the redundancy threshold (docs/camera.md).

    python tools/calibrate_redundancy.py

Prints the DC-image mean absolute difference (grey levels) between the first
frame of the bundled clip and controlled changes of it: what must stay under
the threshold (sensor noise, codec noise between still frames) and what
should go over it (camera shake, head movement, a lamp, a scene cut).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.camera.selection import DEFAULT_REDUNDANCY_THRESHOLD, dc_difference, dc_image
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.models.bundled import sample_video_path

FACE = (117, 25, 189, 116)  # the detector's box on frame 0, rounded


def main() -> None:
    with open_source(sample_video_path()) as src:
        frames = {f.index: f.pixels for f in src}
    base = frames[0].astype(np.float32)
    ref = dc_image(frames[0])
    rng = np.random.default_rng(0)  # test data, not a secret

    def mad(px: NDArray[np.float32]) -> float:
        return dc_difference(ref, dc_image(np.clip(np.rint(px), 0, 255).astype(np.uint8)))

    rows: list[tuple[str, float]] = []
    for a, b in [(0, 50), (100, 150), (300, 350)]:
        rows.append((f"clip: still frames {a} vs {b} (noise 1.5 + mp4v)", mad_pair(frames, a, b)))
    for sigma in (5, 10, 20):
        noisy = max(mad(base + rng.normal(0, sigma, base.shape)) for _ in range(5))
        rows.append((f"extra Gaussian sensor noise, sigma {sigma}", noisy))
    x1, y1, x2, y2 = FACE
    mouth = base.copy()
    mouth[y1 + 50 : y2 - 15, x1 + 15 : x2 - 15] *= 0.6
    rows.append(("mouth area 40% darker (expression-sized change)", mad(mouth)))
    moved = base.copy()
    moved[y1:y2, x1:x2] = base[y1:y2, x1 + 4 : x2 + 4]
    rows.append(("face region moved by 4 px (head movement)", mad(moved)))
    shift = cv2.warpAffine(
        base, np.float32([[1, 0, 1], [0, 1, 0]]), (320, 240), borderMode=cv2.BORDER_REFLECT
    )
    rows.append(("whole frame moved by 1 px (camera shake)", mad(shift)))
    rows.append(("lamp: +5 grey levels everywhere", mad(base + 5)))
    rows.append(("clip: pan, frame 0 vs 100", mad_pair(frames, 0, 100)))
    rows.append(("clip: scene cut to coffee(), frame 200 vs 250", mad_pair(frames, 200, 250)))
    width = max(len(r[0]) for r in rows)
    print(f"default threshold: {DEFAULT_REDUNDANCY_THRESHOLD}")
    for label, value in rows:
        verdict = "selected" if value >= DEFAULT_REDUNDANCY_THRESHOLD else "dropped"
        print(f"{label:<{width}}  {value:7.2f}  {verdict}")


def mad_pair(frames: dict[int, NDArray[np.uint8]], a: int, b: int) -> float:
    return dc_difference(dc_image(frames[a]), dc_image(frames[b]))


if __name__ == "__main__":
    main()
