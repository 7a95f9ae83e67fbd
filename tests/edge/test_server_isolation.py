"""Session isolation on the edge, over real TLS with real secure inference of the
demo model: a dead worker ends its own session only, and one camera identity
cannot take every session slot."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit.camera import edge_started_computing
from testkit.edge import ONE_TRY, running

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.edge.server import Server
from secfepas_sdk.errors import PeerError

MODEL = "demo-pain-cnn"


def _worker_pid(server: Server, session_id: str | None) -> int:
    sessions = [r for r in server._sessions if r.session_id == session_id]
    assert len(sessions) == 1 and sessions[0].worker_pid is not None
    return sessions[0].worker_pid


def test_sigkilled_worker_or_host_ends_only_its_own_session(
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    async def main() -> None:
        async with running(make_settings(model_dir=demo_models, max_sessions=3)) as server:
            names = ("camera-1", "camera-2", "camera-3")
            victim, *others = (
                SecureInferenceClient(server.address, camera_tls(n), MODEL, retry=ONE_TRY)
                for n in names
            )
            for client in (victim, *others):
                await client.infer(demo_input)  # sessions set up, one worker each
            pids = {c.session_id: _worker_pid(server, c.session_id) for c in (victim, *others)}
            assert len(set(pids.values())) == 3  # one process per session
            host_pid = server._workers.pid  # type: ignore[union-attr]
            computing = edge_started_computing(victim)
            task = asyncio.ensure_future(victim.infer(demo_input))
            busy = [asyncio.ensure_future(c.infer(demo_input)) for c in others]
            await computing.wait()  # the victim's worker is inside this inference
            assert not task.done()
            os.kill(pids[victim.session_id], signal.SIGKILL)  # the OOM killer, say
            with pytest.raises(PeerError) as exc:
                await task
            assert exc.value.code in ("internal", "inference_failed")
            for done in await asyncio.gather(*busy):
                np.testing.assert_allclose(done.probabilities, reference_probabilities, atol=0.02)
            # The two other sessions are the same sessions, on the same workers.
            for client in others:
                again = await client.infer(demo_input)
                assert again.level == int(np.argmax(reference_probabilities))
                assert _worker_pid(server, client.session_id) == pids[client.session_id]
            assert server._workers.pid == host_pid  # type: ignore[union-attr]
            retry = await victim.infer(demo_input)  # a new session, a new worker
            np.testing.assert_allclose(retry.probabilities, reference_probabilities, atol=0.02)
            assert _worker_pid(server, victim.session_id) not in pids.values()
            # The model host that forks the workers dies too: running sessions go on,
            # and the next session gets a new host.
            assert host_pid is not None
            os.kill(host_pid, signal.SIGKILL)
            assert 0 <= (await others[0].infer(demo_input)).level < 4
            await victim.close()
            assert 0 <= (await victim.infer(demo_input)).level < 4
            assert server._workers.restarts == 1  # type: ignore[union-attr]
            for client in (victim, *others):
                await client.close()

    asyncio.run(main())


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def test_a_sigkilled_he_block_process_ends_only_its_session(
    caplog: pytest.LogCaptureFixture,
    make_settings: Any,
    camera_tls: Any,
    demo_models: Path,
    demo_input: Any,
    reference_probabilities: Any,
) -> None:
    """With he_workers = 2 each session forks two block processes after its setup; one
    killed gives that camera Error{internal} at its next HE layer, and nothing is left."""

    async def main() -> None:
        settings = make_settings(model_dir=demo_models, max_sessions=2, he_workers=2)
        async with running(settings) as server:
            victim, other = (
                SecureInferenceClient(server.address, camera_tls(n), MODEL, retry=ONE_TRY)
                for n in ("camera-1", "camera-2")
            )
            for client in (victim, other):
                done = await client.infer(demo_input)  # split across the block processes
                np.testing.assert_allclose(done.probabilities, reference_probabilities, atol=0.02)
            session_pid = _worker_pid(server, victim.session_id)
            blocks = _children(session_pid)
            assert len(blocks) == 2
            assert len(_children(_worker_pid(server, other.session_id))) == 2
            os.kill(blocks[0], signal.SIGKILL)
            with pytest.raises(PeerError) as exc:
                await victim.infer(demo_input)
            assert exc.value.code == "internal"  # the edge's fault, never its details
            again = await other.infer(demo_input)  # the other session goes on
            np.testing.assert_allclose(again.probabilities, reference_probabilities, atol=0.02)
            retry = await victim.infer(demo_input)  # a new session with new block processes
            np.testing.assert_allclose(retry.probabilities, reference_probabilities, atol=0.02)
            assert "HeWorkerLost: HE block process" in caplog.text  # the edge's log says why
            for client in (victim, other):
                await client.close()
            # No block process and no session process outlives its session.
            for pid in (session_pid, *blocks):
                assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)

    asyncio.run(main())


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_sessions_per_camera_identity_are_capped(
    make_settings: Any, camera_tls: Any, demo_models: Path, demo_input: Any
) -> None:
    async def main() -> None:
        settings = make_settings(
            model_dir=demo_models, max_sessions=3, max_queue=4, max_sessions_per_camera=2
        )
        async with running(settings) as server:
            same = [
                SecureInferenceClient(server.address, camera_tls("camera-1"), MODEL, retry=ONE_TRY)
                for _ in range(3)
            ]
            await same[0].connect()
            await same[1].connect()
            with pytest.raises(PeerError) as exc:
                await same[2].connect()  # a free slot exists, but not for this camera
            assert exc.value.code == "busy" and "camera-1 already holds 2" in str(exc.value)
            other = SecureInferenceClient(server.address, camera_tls("camera-2"), MODEL)
            a = await other.infer(demo_input)  # another identity takes the third slot
            assert 0 <= a.level < 4
            await same[0].close()
            for _ in range(500):  # the edge ends that session just after the Close
                if server.metrics.sessions_active == 2:
                    break
                await asyncio.sleep(0.02)
            await same[2].connect()  # now under the cap again
            for client in (same[1], same[2], other):
                await client.close()

    asyncio.run(main())
