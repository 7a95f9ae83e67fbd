"""The constant-rate privacy schedule.

Unit tests of the slot logic on a fake clock, then the property the schedule
exists for: through the real pipeline against a real edge over TLS, a clip with
a face for its first half and an empty room for its second half, and the same
clip with its halves swapped, give the edge exactly the same view (its own
counters, read at every slot boundary: one inference per slot and the same
bytes in and out, slot by slot); the on-change schedule does not.

Sizes may differ from slot to slot, never from video to video: under Ferret
(the default OT extension) a session runs another COT iteration (about 0.56 MB
more that inference) each time its buffer runs out, which depends on the
inference count only, as every inference of one plan draws the same number of
OTs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from testkit.camera import BackgroundEdge, demo_edge

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.detection import FaceDetector
from secfepas_sdk.camera.pipeline import CameraPipeline, PipelineConfig, PipelineStats
from secfepas_sdk.camera.schedule import ReplayClock, SlotSchedule, dummy_tensor
from secfepas_sdk.camera.selection import default_chain
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.certs import Pki
from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.protocol.transport import TlsFiles

MODEL = "demo-pain-cnn"


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)

    async def admit(self, media_time: float) -> None:
        return None

    async def source_ended(self) -> None:
        return None


def test_slots_sit_on_the_grid_and_missed_slots_are_counted_not_made_up() -> None:
    clock = FakeClock(100.0)
    slots = SlotSchedule(5.0, clock)
    slots.start()
    assert (slots.index, slots.deadline) == (0, 100.0)
    clock.t = 103.0  # inference 0 ended inside its period
    assert slots.advance() == 105.0 and slots.missed == 0
    clock.t = 105.4  # woke up late: the start is late, the grid is not
    clock.t = 117.0  # inference 1 overran 110 and 115
    assert slots.advance() == 120.0 and slots.missed == 2
    clock.t = 120.0  # inference 2 ended exactly on the next boundary: on time
    assert slots.advance() == 125.0 and slots.missed == 2
    clock.t = 125.0 + 5.0 * 1000 + 0.1  # a very long stall
    assert slots.advance() == 125.0 + 5.0 * 1001 and slots.missed == 1002
    assert slots.index == 4 + 1002


def test_no_drift_over_many_slots() -> None:
    clock = FakeClock(0.0)
    slots = SlotSchedule(0.1, clock)  # 0.1 is not exact in binary
    slots.start()
    for k in range(1, 100_001):
        clock.t += 0.0999  # every inference a hair shorter than a period
        assert slots.advance() == pytest.approx(k * 0.1, abs=1e-6)
    assert slots.missed == 0 and slots.index == 100_000


def test_bad_periods_and_shapes_are_refused() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidValueError):
            SlotSchedule(bad, FakeClock(0.0))
    with pytest.raises(InvalidValueError):
        dummy_tensor((1, 3, 0, 64))
    assert dummy_tensor([1, 3, 8, 8]).dtype == np.float32
    with pytest.raises(InvalidValueError):
        PipelineConfig(schedule="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        PipelineConfig(schedule_period_s=0.0)


def test_the_default_schedule_is_constant() -> None:
    assert PipelineConfig().schedule == "constant"


# -- the edge's view -------------------------------------------------------

FPS = 2.0
HALF_S = 8.0  # face for 8 s, then an empty room for 8 s
PERIOD_S = 2.0  # one inference per 2 s of media time: 9 slots, at 0, 2, ..., 16 s


@pytest.fixture(scope="module")
def edge(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundEdge]:
    yield from demo_edge(pki, tmp_path_factory.mktemp("edge"), max_sessions=1)


def _two_halves(
    first: NDArray[np.uint8], second: NDArray[np.uint8], path: Path, write: Callable[..., Path]
) -> Path:
    """HALF_S of ``first`` then HALF_S of ``second``, each frame a little brighter than
    the last so that redundancy reduction lets it through."""
    per_half = int(HALF_S * FPS)
    frames = [
        cv2.add(img, np.full_like(img, 2 * k)) for img in (first, second) for k in range(per_half)
    ]
    return write(path, frames, fps=FPS)


@pytest.fixture(scope="module")
def half_empty_clip(
    tmp_path_factory: pytest.TempPathFactory,
    astronaut_bgr: NDArray[np.uint8],
    coffee_bgr: NDArray[np.uint8],
    write_video: Callable[..., Path],
) -> Path:
    """Real images: astronaut() (a face) then coffee() (no one)."""
    room = cv2.resize(coffee_bgr, (astronaut_bgr.shape[1], astronaut_bgr.shape[0]))
    path = tmp_path_factory.mktemp("clip") / "half.avi"
    return _two_halves(astronaut_bgr, room, path, write_video)


@pytest.fixture(scope="module")
def empty_half_clip(
    tmp_path_factory: pytest.TempPathFactory,
    astronaut_bgr: NDArray[np.uint8],
    coffee_bgr: NDArray[np.uint8],
    write_video: Callable[..., Path],
) -> Path:
    """The same two halves swapped: the empty room first, then the face."""
    room = cv2.resize(coffee_bgr, (astronaut_bgr.shape[1], astronaut_bgr.shape[0]))
    path = tmp_path_factory.mktemp("clip") / "swapped.avi"
    return _two_halves(room, astronaut_bgr, path, write_video)


class EdgeWatch(ReplayClock):
    """A replay clock that reads the edge's own counters at every slot boundary."""

    def __init__(self, edge: BackgroundEdge) -> None:
        super().__init__()
        self.metrics = edge.server.metrics
        self.samples: list[tuple[int, int, int]] = []

    def sample(self) -> None:
        m = self.metrics  # counted before the camera sees InferenceEnd: never lagging
        self.samples.append((m.inferences["ok"], m.bytes_total("in"), m.bytes_total("out")))

    async def sleep_until(self, deadline: float) -> None:
        await super().sleep_until(deadline)
        self.sample()


def _run(
    edge: BackgroundEdge,
    tls: TlsFiles,
    clip: Path,
    detector: FaceDetector,
    schedule: str,
    clock: EdgeWatch,
    selection_period_s: float,
) -> tuple[list[int], PipelineStats]:
    async def main() -> tuple[list[int], PipelineStats]:
        client = SecureInferenceClient(edge.address, tls, MODEL)
        pipeline = CameraPipeline(
            open_source(str(clip)),
            client,
            selector=default_chain(period_s=selection_period_s),
            detector=detector,
            config=PipelineConfig(
                queue_size=256,  # a replay keeps every frame
                schedule=schedule,  # type: ignore[arg-type]
                schedule_period_s=PERIOD_S,
            ),
            clock=clock,
        )
        clock.sample()
        indices = [a.frame_index async for a in pipeline.run()]
        clock.sample()
        await client.close()
        return indices, pipeline.stats

    return asyncio.run(main())


def _edge_view(clock: EdgeWatch) -> NDArray[np.int64]:
    """Per slot: inferences, bytes in, bytes out ([0] is before the session)."""
    return np.diff(np.array(clock.samples[1:], dtype=np.int64), axis=0)


def test_edge_sees_the_same_whatever_the_video_under_the_constant_schedule(
    edge: BackgroundEdge,
    tls: TlsFiles,
    half_empty_clip: Path,
    empty_half_clip: Path,
    detector: FaceDetector,
) -> None:
    per_half = int(HALF_S * FPS)
    slots = int(2 * HALF_S / PERIOD_S) + 1
    views = []
    for clip, face_first in ((half_empty_clip, True), (empty_half_clip, False)):
        clock = EdgeWatch(edge)
        indices, stats = _run(edge, tls, clip, detector, "constant", clock, 1.0 / FPS)
        # The camera did see the difference: faces in one half only.
        assert stats.selected == 2 * per_half and stats.no_face == per_half
        assert indices and all((i < per_half) == face_first for i in indices)
        assert (stats.slots, stats.missed_slots) == (slots, 0)
        assert stats.analysed == len(indices) and stats.dummies == slots - stats.analysed
        views.append(_edge_view(clock))
    # The edge did not: per slot exactly one inference, and slot by slot the same
    # bytes each way whether the room held a face first or last.
    face_first_view, empty_first_view = views
    assert face_first_view.shape == (slots, 3)
    assert (face_first_view[:, 0] == 1).all()
    np.testing.assert_array_equal(face_first_view, empty_first_view)
    assert (face_first_view[:, 1:] > 0).all()


def test_on_change_shows_the_edge_when_a_face_is_there(
    edge: BackgroundEdge, tls: TlsFiles, half_empty_clip: Path, detector: FaceDetector
) -> None:
    """The same clip under on-change (one selected frame per 2 s): the edge's inference
    count follows presence."""
    clock = EdgeWatch(edge)
    indices, stats = _run(edge, tls, half_empty_clip, detector, "on-change", clock, PERIOD_S)
    edge_inferences = clock.samples[-1][0] - clock.samples[0][0]
    per_half = int(HALF_S / PERIOD_S)
    assert stats.selected == 2 * per_half and stats.no_face == per_half
    assert edge_inferences == stats.analysed == per_half  # every face frame, no empty one
    assert indices == [int(k * PERIOD_S * FPS) for k in range(per_half)]
    assert stats.slots == stats.dummies == 0


class _NeverAgainClock(FakeClock):
    """The first slot starts at once; every later one lies beyond the test's patience."""

    async def sleep_until(self, deadline: float) -> None:
        if deadline > self.t:
            await asyncio.Event().wait()


def test_stop_ends_a_constant_run_between_slots(edge: BackgroundEdge, tls: TlsFiles) -> None:
    from secfepas_sdk.camera.testing import SyntheticSource

    async def main() -> PipelineStats:
        client = SecureInferenceClient(edge.address, tls, MODEL)
        pipeline = CameraPipeline(
            SyntheticSource(count=10_000, fps=10.0, width=64, height=64),
            client,
            detector=None,
            config=PipelineConfig(schedule_period_s=3600.0, pace="realtime"),
            clock=_NeverAgainClock(0.0),
        )
        run = asyncio.ensure_future(_drain(pipeline))
        async with asyncio.timeout(120):
            while pipeline.stats.slots < 1 or client._seq < 1:
                await asyncio.sleep(0.05)
        pipeline.stop()  # mid-sleep, an hour before the next slot
        async with asyncio.timeout(30):
            await run
        await client.close()
        return pipeline.stats

    stats = asyncio.run(main())
    assert stats.slots == 1 and stats.errors == 0


async def _drain(pipeline: CameraPipeline) -> None:
    async for _ in pipeline.run():
        pass
