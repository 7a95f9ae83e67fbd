"""Frame sources behind one hardware-abstracted interface, one module per kind.

``with open_source(uri) as src: for frame in src: ...`` works the same for a
video file, a V4L2 device, an RTSP/HTTP stream (:mod:`.capture`), an image
folder (:mod:`.folder`), frames pushed by firmware (:mod:`.push`), or
synthetic frames for tests (:mod:`secfepas_sdk.camera.testing`). Nothing
touches hardware until ``open()``.
"""

from __future__ import annotations

from pathlib import Path

from secfepas_sdk.camera.sources.base import FrameSource, SourceStats
from secfepas_sdk.camera.sources.capture import URL_SCHEMES, VideoCaptureSource
from secfepas_sdk.camera.sources.folder import IMAGE_SUFFIXES, ImageFolderSource
from secfepas_sdk.camera.sources.push import PushSource
from secfepas_sdk.errors import SourceError

__all__ = [
    "IMAGE_SUFFIXES",
    "FrameSource",
    "ImageFolderSource",
    "PushSource",
    "SourceStats",
    "VideoCaptureSource",
    "open_source",
]


def open_source(
    uri_or_path: str | int | Path, *, fps: float = 1.0, push_maxsize: int = 4
) -> FrameSource:
    """Pick the implementation for a path, device or URL (nothing is opened yet).

    - an int, ``"0"`` or ``/dev/videoN``: a V4L2 device;
    - ``rtsp://``, ``http(s)://`` and other stream URLs: OpenCV/FFmpeg;
    - ``push:``: a :class:`PushSource` for firmware;
    - ``synthetic:``: a :class:`SyntheticSource` (100 frames, for trials);
    - a folder: :class:`ImageFolderSource` at ``fps``;
    - anything else: a video file (a missing file raises :class:`SourceError`).
    """
    if isinstance(uri_or_path, int):
        return VideoCaptureSource(uri_or_path)
    target = str(uri_or_path)
    if not target:
        raise SourceError("empty source: give a file, folder, device or URL")
    if target.isdigit():
        return VideoCaptureSource(int(target))
    if target.startswith("/dev/video") or target.startswith(URL_SCHEMES):
        return VideoCaptureSource(target)
    if target == "push:":
        return PushSource(maxsize=push_maxsize)
    if target == "synthetic:":
        from secfepas_sdk.camera.testing import SyntheticSource

        return SyntheticSource(count=100)
    path = Path(target)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps)
    if not path.exists():
        raise SourceError(f"{target}: no such file, folder or device")
    return VideoCaptureSource(path)
