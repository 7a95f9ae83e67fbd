"""Frame sources for tests and trials, never for a deployment.

``SyntheticSource`` (also ``open_source("synthetic:")``) makes deterministic
textured scenes with optional sensor noise, so selectors and pipelines can be
tested without a camera or a video file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from secfepas_sdk.camera.frames import Frame, Pixels
from secfepas_sdk.camera.sources.base import FrameSource
from secfepas_sdk.camera.sources.base import cv2_module as _cv2
from secfepas_sdk.errors import InvalidValueError

__all__ = ["SyntheticSource"]


class SyntheticSource(FrameSource):
    """Deterministic test frames: a textured scene per segment plus sensor noise.

    ``scene_changes`` are frame indices where a new scene starts; ``timestamps``
    overrides the regular ``i / fps`` clock (to test variable frame rates);
    ``wall_time`` is when each frame was made.
    """

    def __init__(
        self,
        *,
        count: int,
        fps: float = 10.0,
        width: int = 640,
        height: int = 480,
        scene_changes: Sequence[int] = (),
        noise_std: float = 0.0,
        timestamps: Sequence[float] | None = None,
        seed: int = 0,
        source_id: str = "synthetic",
    ) -> None:
        if count < 0 or width < 1 or height < 1 or not (fps > 0):
            raise InvalidValueError("count >= 0, width >= 1, height >= 1 and fps > 0 are required")
        if timestamps is not None and len(timestamps) != count:
            raise InvalidValueError("timestamps must have one entry per frame")
        super().__init__(source_id)
        self._count = count
        self._fps = fps
        self._size = (height, width)
        self._changes = sorted(set(scene_changes))
        self._noise = noise_std
        self._timestamps = list(timestamps) if timestamps is not None else None
        self._seed = seed

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _scene(self, k: int) -> Pixels:
        rng = np.random.default_rng([self._seed, k])
        h, w = self._size
        coarse = rng.integers(0, 256, size=(max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
        cv2 = _cv2()
        return np.ascontiguousarray(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR))

    def _frames(self) -> Iterator[Frame]:
        rng = np.random.default_rng([self._seed, 1 << 20])
        scene_no = 0
        base = self._scene(0)
        for i in range(self._count):
            if scene_no < len(self._changes) and i >= self._changes[scene_no]:
                scene_no += 1
                base = self._scene(scene_no)
            pixels = base
            if self._noise > 0:
                noisy = base + rng.normal(0.0, self._noise, size=base.shape)
                pixels = np.clip(noisy, 0, 255).astype(np.uint8)
            else:
                pixels = base.copy()
            t = self._timestamps[i] if self._timestamps is not None else i / self._fps
            yield Frame(pixels=pixels, timestamp=t, index=i, source_id=self.source_id)
