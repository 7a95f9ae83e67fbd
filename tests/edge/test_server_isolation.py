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
