"""A folder of still images, played at a fixed rate."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

from secfepas_sdk.camera.frames import Frame, as_bgr
from secfepas_sdk.camera.sources.base import FrameSource
from secfepas_sdk.camera.sources.base import cv2_module as _cv2
from secfepas_sdk.errors import InvalidValueError, SourceError

__all__ = ["IMAGE_SUFFIXES", "ImageFolderSource"]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})


class ImageFolderSource(FrameSource):
    """The images of one folder in sorted name order, timestamped at ``i / fps``.

    ``wall_time`` is when each image was read.
    """

    def __init__(self, folder: str | Path, *, fps: float = 1.0, source_id: str | None = None):
        if not (math.isfinite(fps) and fps > 0):
            raise InvalidValueError(f"fps must be > 0, got {fps!r}")
        self._folder = Path(folder)
        super().__init__(source_id or str(self._folder))
        self._fps = fps
        self._files: list[Path] = []

    def _open(self) -> None:
        if not self._folder.is_dir():
            raise SourceError(f"{self.source_id}: no such folder")
        files = sorted(
            p for p in self._folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise SourceError(
                f"{self.source_id}: folder holds no images ({sorted(IMAGE_SUFFIXES)})"
            )
        self._files = files

    def _close(self) -> None:
        self._files = []

    def _frames(self) -> Iterator[Frame]:
        cv2 = _cv2()
        for i, path in enumerate(list(self._files)):
            wall = time.time()
            # IMREAD_COLOR turns grey, RGBA and 16-bit images into 8-bit BGR.
            pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if pixels is None:
                self._corrupt += 1
                _log.warning("%s: skipped unreadable image %s", self.source_id, path.name)
                continue
            yield Frame(
                pixels=as_bgr(pixels, source_id=f"{self.source_id}/{path.name}"),
                timestamp=i / self._fps,
                index=i,
                source_id=self.source_id,
                wall_time=wall,
            )
