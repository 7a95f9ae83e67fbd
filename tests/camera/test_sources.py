"""Frame sources on real files, folders, sockets and threads (no OpenCV mocks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from secfepas_sdk.camera.sources import (
    ImageFolderSource,
    PushSource,
    VideoCaptureSource,
    open_source,
)
from secfepas_sdk.camera.testing import SyntheticSource
from secfepas_sdk.errors import SourceError


def _frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


# -- video files -------------------------------------------------------------
def test_video_file_frames_timestamps_and_clean_end(
    tmp_path: Path, write_video: Callable[..., Path]
) -> None:
    path = write_video(tmp_path / "v.avi", _frames(12), fps=4.0)
    before = time.time()
    with open_source(path) as src:
        assert isinstance(src, VideoCaptureSource)
        frames = list(src)
    after = time.time()
    assert [f.index for f in frames] == list(range(12))
    assert np.allclose([f.timestamp for f in frames], np.arange(12) / 4.0)
    walls = [f.wall_time for f in frames]  # when we decoded them, not the file's clock
    assert walls == sorted(walls) and before <= walls[0] and walls[-1] <= after
    assert all(f.pixels.shape == (48, 64, 3) and f.pixels.flags.c_contiguous for f in frames)
    assert src.stats.frames == 12 and src.stats.corrupt == 0


def test_bundled_clip_reads_back(sample_clip: Path) -> None:
    with open_source(sample_clip) as src:
        n = sum(1 for _ in src)
    assert n == 360


def test_corrupt_frame_is_skipped_and_counted(
    tmp_path: Path, write_video: Callable[..., Path]
) -> None:
    path = write_video(tmp_path / "v.avi", _frames(20), fps=10.0)
    raw = bytearray(path.read_bytes())
    # Each MJPG frame starts with a JPEG SOI marker; wipe frame 5's headers.
    starts = [i for i in range(len(raw) - 2) if raw[i : i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == 20
    raw[starts[5] : starts[5] + 400] = bytes(400)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(raw))
    with open_source(bad) as src:
        frames = list(src)
    assert src.stats.corrupt == 1
    assert [f.index for f in frames] == [i for i in range(20) if i != 5]
    assert frames[5].timestamp == pytest.approx(0.6)


def test_missing_file_names_the_source(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match=r"nope\.mp4: no such file"):
        open_source(missing)
    with pytest.raises(SourceError, match=r"nope\.mp4: no such file"):
        VideoCaptureSource(missing).open()


def test_file_that_is_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(SourceError, match=r"notes\.mp4: is not a readable video"):
        open_source(fake).open()


@pytest.mark.parametrize("device", [99, "99", "/dev/video99"])
def test_device_that_will_not_open(device: int | str) -> None:
    with pytest.raises(SourceError, match="cannot be opened"), open_source(device):
        pass


def test_stream_that_will_not_open_hides_credentials() -> None:
    # Port 9 (discard) on loopback is closed here: the connection is refused.
    src = open_source("rtsp://admin:secret@127.0.0.1:9/stream")
    assert "secret" not in src.source_id
    with pytest.raises(SourceError, match=r"rtsp://127\.0\.0\.1:9/stream: cannot be opened"):
        src.open()


def test_open_source_rejects_empty_and_bad_device_path() -> None:
    with pytest.raises(SourceError, match="empty source"):
        open_source("")
    with pytest.raises(SourceError, match="expected /dev/videoN"):
        open_source("/dev/videoX").open()


# -- image folders -------------------------------------------------------------
def test_image_folder_sorted_with_fps_timestamps_and_conversions(tmp_path: Path) -> None:
    frames = _frames(4)
    cv2.imwrite(str(tmp_path / "b_002.png"), frames[2])
    cv2.imwrite(str(tmp_path / "a_000.png"), frames[0])
    cv2.imwrite(str(tmp_path / "a_001.png"), cv2.cvtColor(frames[1], cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "c_003.png"), cv2.cvtColor(frames[3], cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "d_004.png"), frames[3].astype(np.uint16) * 257)  # 16-bit
    (tmp_path / "readme.txt").write_text("ignored")
    with open_source(tmp_path, fps=2.0) as src:
        assert isinstance(src, ImageFolderSource)
        got = list(src)
    assert [f.timestamp for f in got] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(f.pixels.shape == (48, 64, 3) for f in got)
    assert np.array_equal(got[0].pixels, frames[0])
    grey = cv2.cvtColor(frames[1], cv2.COLOR_BGR2GRAY)
    assert np.array_equal(got[1].pixels[..., 0], grey) and np.array_equal(
        got[1].pixels[..., 2], grey
    )
    assert np.array_equal(got[3].pixels, frames[3])
    assert np.array_equal(got[4].pixels, frames[3])


def test_image_folder_skips_and_counts_corrupt_images(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), _frames(1)[0])
    (tmp_path / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    cv2.imwrite(str(tmp_path / "2.png"), _frames(1)[0])
    with open_source(tmp_path) as src:
        got = list(src)
    assert [f.index for f in got] == [0, 2]
    assert src.stats.corrupt == 1 and src.stats.frames == 2


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="holds no images"), open_source(tmp_path):
        pass
    with pytest.raises(SourceError, match="no such folder"):
        ImageFolderSource(tmp_path / "missing").open()
    with pytest.raises(ValueError):
        ImageFolderSource(tmp_path, fps=0.0)


# -- push source ---------------------------------------------------------------
def test_push_source_drops_oldest_and_counts() -> None:
    src = PushSource(maxsize=3)
    frames = _frames(10)
    for i, px in enumerate(frames):
        src.push(px, timestamp=i * 0.1)
    assert src.pending == 3 and src.stats.dropped == 7
    src.end()
    got = list(src)
    assert [f.index for f in got] == [7, 8, 9]
    assert np.array_equal(got[0].pixels, frames[7])
    assert src.stats.frames == 3


def test_push_source_stamps_wall_and_media_time() -> None:
    src = PushSource(maxsize=4)
    px = _frames(1)[0]
    before = time.time()
    src.push(px)  # no clocks given: media time from the first push, wall time now
    src.push(px)
    src.push(px, timestamp=5.0, wall_time=1_800_000_000.0)
    src.end()
    first, second, given = list(src)
    assert first.timestamp == 0.0 <= second.timestamp <= 5.0
    assert before <= first.wall_time <= second.wall_time <= time.time()
    assert (given.timestamp, given.wall_time) == (5.0, 1_800_000_000.0)
    with pytest.raises(SourceError, match="wall_time"):
        PushSource().push(px, wall_time=12.0)  # seconds since boot, not POSIX


def test_push_source_copies_and_converts() -> None:
    src = PushSource(maxsize=2)
    px = np.full((8, 8), 9, np.uint8)
    src.push(px, 0.0)
    px[:] = 200  # the firmware reuses its buffer
    src.end()
    (frame,) = list(src)
    assert frame.pixels.shape == (8, 8, 3) and np.all(frame.pixels == 9)


def test_push_source_back_pressure_with_a_slow_consumer() -> None:
    src = PushSource(maxsize=2)
    n = 200

    def produce() -> None:
        px = np.zeros((16, 16, 3), np.uint8)
        for i in range(n):
            src.push(px, i / 100.0)
            time.sleep(0.0005)
        src.end()

    producer = threading.Thread(target=produce)
    got = []
    with src:
        producer.start()
        for frame in src:
            got.append(frame.index)
            time.sleep(0.005)  # analysis is slower than capture
    producer.join(timeout=10)
    assert not producer.is_alive()
    assert len(got) + src.stats.dropped == n
    assert src.stats.dropped > n // 2
    assert got == sorted(got) and got[-1] == n - 1  # the newest frame always survives


def test_push_source_bad_input() -> None:
    src = PushSource(maxsize=2)
    with pytest.raises(SourceError, match="push: frame dtype float32"):
        src.push(np.zeros((4, 4, 3), np.float32), 0.0)
    with pytest.raises(SourceError, match="not finite"):
        src.push(np.zeros((4, 4, 3), np.uint8), float("nan"))
    src.push(np.zeros((4, 4, 3), np.uint8), 1.0)
    with pytest.raises(SourceError, match="went back"):
        src.push(np.zeros((4, 4, 3), np.uint8), 0.5)
    src.end()
    with pytest.raises(SourceError, match="after end of stream"):
        src.push(np.zeros((4, 4, 3), np.uint8), 2.0)
    with pytest.raises(ValueError):
        PushSource(maxsize=0)


def test_push_source_get_times_out() -> None:
    src = PushSource()
    t = time.monotonic()
    assert src.get(timeout=0.05) is None
    assert time.monotonic() - t >= 0.04


# -- synthetic -------------------------------------------------------------------
def test_synthetic_source_is_deterministic() -> None:
    def run() -> list[np.ndarray]:
        with SyntheticSource(count=5, width=32, height=24, noise_std=3.0, seed=4) as s:
            return [f.pixels for f in s]

    a, b = run(), run()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])  # noise differs frame to frame
    with open_source("synthetic:") as s:
        assert sum(1 for _ in s) == 100


def test_mjpeg_http_stream_on_loopback() -> None:
    """An IP-camera-style MJPEG stream (multipart/x-mixed-replace) from a real
    HTTP server on 127.0.0.1, read through FFmpeg like any network camera."""
    import http.server

    jpegs = [cv2.imencode(".jpg", px)[1].tobytes() for px in _frames(25, 96, 128)]

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for jpg in jpegs:
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}"
                    self.wfile.write(head.encode() + b"\r\n\r\n" + jpg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        src = open_source(f"http://127.0.0.1:{server.server_address[1]}/video.mjpg")
        assert isinstance(src, VideoCaptureSource)
        with src:
            frames = list(src)
    finally:
        server.shutdown()
        server.server_close()
    assert [f.index for f in frames] == list(range(25))
    ts = [f.timestamp for f in frames]
    assert ts == sorted(ts) and ts[0] >= 0.0  # live clock: monotonic since open
    assert all(abs(f.wall_time - time.time()) < 60 for f in frames)  # wall clock: POSIX
    assert all(f.pixels.shape == (96, 128, 3) for f in frames)
    assert src.stats.corrupt == 0
