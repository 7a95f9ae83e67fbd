"""CameraPipeline end to end against a real edge: capture never waits for inference
(the bounded queue drops the oldest frame and counts it), assessments are yielded
and handed to the alert layer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit.camera import demo_edge

from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.camera.pipeline import CameraPipeline, DropOldestQueue, PipelineConfig
from secfepas_sdk.camera.selection import default_chain
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.camera.testing import SyntheticSource
from secfepas_sdk.certs import Pki
from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.protocol.transport import TlsFiles

MODEL = "demo-pain-cnn"


@pytest.fixture(scope="module")
def edge_address(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    for running in demo_edge(pki, tmp_path_factory.mktemp("edge"), max_sessions=1):
        yield running.address


def _frame(i: int) -> Frame:
    return Frame(pixels=np.full((4, 4, 3), i, np.uint8), timestamp=float(i), index=i, source_id="t")


def test_drop_oldest_queue_keeps_the_newest_and_counts() -> None:
    async def main() -> list[int]:
        q = DropOldestQueue(3, asyncio.get_running_loop())
        producer = threading.Thread(target=lambda: [q.put(_frame(i)) for i in range(10)])
        producer.start()
        producer.join()
        assert q.dropped == 7
        return [(await q.get()).index for _ in range(3)]  # type: ignore[union-attr]

    assert asyncio.run(main()) == [7, 8, 9]


def test_capture_never_waits_for_inference(edge_address: tuple[str, int], tls: TlsFiles) -> None:
    """300 frames at 'source' pace are read while only a few are analysed (on-change:
    every selected frame goes to the queue and on to inference as soon as possible)."""
    delivered: list[PainAssessment] = []

    async def main() -> CameraPipeline:
        client = SecureInferenceClient(edge_address, tls, MODEL)
        pipeline = CameraPipeline(
            SyntheticSource(
                count=300, fps=10.0, scene_changes=range(0, 300, 10), width=128, height=128
            ),
            client,
            selector=default_chain(period_s=0.5),
            detector=None,  # the synthetic scenes have no faces: analyse the whole frame
            on_assessment=delivered.append,
            config=PipelineConfig(queue_size=2, schedule="on-change"),
        )
        got = []
        async for a in pipeline.run():
            got.append(a)
            if len(got) == 1:
                start = time.monotonic()
                while pipeline.stats.captured < 300 and time.monotonic() - start < 10:
                    await asyncio.sleep(0.05)
                # Capture finished while this consumer did not take a single frame.
                assert pipeline.stats.captured == 300
        await client.close()
        assert got == delivered
        return pipeline

    pipeline = asyncio.run(main())
    s = pipeline.stats
    # Periodic (0.5 s) then redundancy: only the 30 scene starts survive selection.
    assert s.selected == 30
    assert s.analysed == len(delivered) >= 2
    assert s.dropped >= 20
    assert s.analysed + s.dropped + s.no_face + s.errors == s.selected
    assert all(a.frame_index % 10 == 0 for a in delivered)


def test_real_clip_with_face_detection_and_alerts(
    edge_address: tuple[str, int], tls: TlsFiles, tmp_path: Path
) -> None:
    from secfepas_sdk.alerts.service import AlertService
    from secfepas_sdk.camera.detection import FaceDetector
    from secfepas_sdk.models.bundled import sample_video_path

    async def main() -> tuple[list[PainAssessment], Any]:
        client = SecureInferenceClient(edge_address, tls, MODEL)
        alerts = AlertService.from_uris(["console:"], outbox=tmp_path / "outbox.sqlite")
        submitted: list[PainAssessment] = []

        def on_assessment(a: PainAssessment) -> None:
            submitted.append(a)
            alerts.submit(a)

        pipeline = CameraPipeline(
            open_source(sample_video_path()),
            client,
            selector=default_chain(period_s=1.0),
            detector=FaceDetector(),
            on_assessment=on_assessment,
            # The default constant schedule takes one face per slot: read at 'source'
            # pace, the whole clip would be gone before the second slot.
            config=PipelineConfig(max_frames=2, queue_size=64, pace="realtime"),
        )
        got = [a async for a in pipeline.run()]
        await client.close()
        alerts.close()
        return got, submitted

    before = time.time()
    got, submitted = asyncio.run(main())
    after = time.time()
    assert len(got) == 2 and got == submitted
    for a in got:
        assert a.model_id == MODEL and a.camera_id == "camera-1"
        # A file's media time orders frames; the assessment carries when we decoded it.
        assert before <= a.frame_time <= after


class _EdgeWithBadManifest(SecureInferenceClient):
    """As if the edge had sent a ServerHello whose manifest lacks mean/std."""

    @property
    def manifest(self) -> dict[str, Any]:
        return {"model_id": MODEL, "input_shape": [1, 3, 64, 64], "std": [1.0, 1.0, 1.0]}


def test_a_manifest_without_normalisation_is_a_clear_error(tls: TlsFiles) -> None:
    client = _EdgeWithBadManifest(("127.0.0.1", 1), tls, MODEL)
    pipeline = CameraPipeline(SyntheticSource(count=1), client, detector=None)
    with pytest.raises(ModelPackageError, match="bad preprocessing contract: mean"):
        asyncio.run(pipeline._tensor(_frame(0)))


def test_the_program_in_docs_camera_md_runs_as_written(
    edge_address: tuple[str, int],
    tls: TlsFiles,
    write_video: Any,
    astronaut_bgr: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Only the device, the edge's address and the PEM paths are replaced."""
    doc = (Path(__file__).parents[2] / "docs" / "camera.md").read_text()
    section = doc.split("## Secure inference", 1)[1]
    program = section.split("```python\n", 1)[1].split("```", 1)[0]
    clip = write_video(tmp_path / "face.mp4", [astronaut_bgr] * 3)
    host, port = edge_address
    for old, new in [
        ('"/dev/video0"', repr(str(clip))),
        ('"edge.local:7443"', repr(f"{host}:{port}")),
        ('"site-ca.pem"', repr(str(tls.ca))),
        ('"camera.pem"', repr(str(tls.cert))),
        ('"camera-key.pem"', repr(str(tls.key))),
    ]:
        assert old in program
        program = program.replace(old, new)
    exec(compile(program, "docs/camera.md", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1  # three frames within one 5 s period: one inference
    assert out[0].startswith("frame 0: pain level ")
