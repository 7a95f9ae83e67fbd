"""HE block processes: two give the camera exactly the shares one gives, and a dead one
is a coded error that leaves no process behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pytest
from testkit.he import (
    RING,
    camera_messages,
    camera_share,
    conv_case,
    gemm_case,
    reference,
    replay,
    server_for,
)
from testkit.proctree import alive
from testkit.wait import wait_until

from secfepas_sdk.edge.he_pool import HePool, HeWorkerLost, start_pool
from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.he.blobs import pack_blobs
from secfepas_sdk.snni.he.engine import HeClient
from secfepas_sdk.snni.he.params import BFV_N8192


@pytest.fixture(scope="module")
def client() -> Iterator[HeClient]:
    c = HeClient(BFV_N8192, RING)
    yield c
    c.close()


def _prepared(server, case):
    layer, w = case.layer, case.w
    return server.prepare(layer.layout, layer.kernel_polys(w), layer.l1_bound(w))


@pytest.mark.parametrize("make", [conv_case, gemm_case], ids=["conv", "gemm"])
def test_two_block_processes_give_the_camera_the_shares_of_one(client: HeClient, make) -> None:
    case = make()
    messages = camera_messages(client, case)
    one = server_for(client)
    expected = replay(one, case, messages, _prepared(one, case))
    one.close()
    two = server_for(client)  # the same seed: the same call seeds
    prepared = _prepared(two, case)  # before the fork, as the model host does
    pool = HePool(two, 2, close_in_child=[], timeout_s=60)
    pool.open()
    two.pool = pool
    try:
        assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
        before = pool.cpu_seconds()
        replies, y1 = replay(two, case, messages, prepared)
        # the blocks' CPU shows in the session's per-op accounting (clock ticks)
        assert pool.cpu_seconds() > before
    finally:
        pool.close()
        two.close()
    assert replies == expected[0]  # every byte of every reply
    assert np.array_equal(y1, expected[1])
    share = camera_share(client, case, replies)
    assert np.array_equal(share, camera_share(client, case, expected[0]))
    assert np.array_equal(RING.add(share, y1), reference(case))


def test_a_sigkilled_block_process_is_a_coded_error_and_every_process_is_reaped(
    client: HeClient,
) -> None:
    case = conv_case()
    messages = camera_messages(client, case)
    server = server_for(client)
    prepared = _prepared(server, case)
    pool = HePool(server, 2, close_in_child=[], timeout_s=60)
    pool.open()
    server.pool = pool
    pids = pool.pids
    try:
        os.kill(pids[1], signal.SIGKILL)
        with pytest.raises(HeWorkerLost, match=f"HE block process {pids[1]} failed"):
            replay(server, case, messages, prepared)
        with pytest.raises(HeWorkerLost, match="not running"):  # the pool stays broken
            pool.start(prepared.index, bytes(16), case.layer.pack(case.x1))
    finally:
        pool.close()
        server.close()
    for pid in pids:
        assert not alive(pid)
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped by close()


def test_block_processes_die_with_the_session_process(client: HeClient) -> None:
    server = server_for(client)
    read, write = os.pipe()
    session = os.fork()
    if session == 0:  # pragma: no cover - a stand-in for a session's process
        try:
            os.close(read)
            pool = HePool(server, 2, close_in_child=[write], timeout_s=60)
            pool.open()
            os.write(write, ",".join(map(str, pool.pids)).encode() + b"\n")
            signal.pause()
        finally:
            os._exit(1)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        blocks = [int(p) for p in pipe.readline().split(b",")]
    assert len(blocks) == 2 and all(alive(p) for p in blocks)
    os.kill(session, signal.SIGKILL)
    os.waitpid(session, 0)
    wait_until(lambda: not any(alive(p) for p in blocks), 10, what="the block processes to end")
    server.close()


def test_a_ciphertext_seal_refuses_fails_the_call_not_the_processes(client: HeClient) -> None:
    case = gemm_case()
    server = server_for(client)
    prepared = _prepared(server, case)
    pool = HePool(server, 2, close_in_child=[], timeout_s=60)
    pool.open()
    server.pool = pool
    # Seeded, as the engine checks, but with a c0 coefficient above every prime:
    # only SEAL's load, in the session's process, refuses it; the block processes,
    # mid-call, are told to drop the call.
    members = bytearray(sealio._members(client.encrypt(case.layer.pack(case.x0))[0]))
    members[73 + 24 : 73 + 32] = b"\xff" * 8
    bad = sealio._header(16 + len(members)) + bytes(members)
    assert sealio.is_seeded_ciphertext(bad)
    garbage = [pack_blobs([bad] * case.layer.layout.n_in)]
    try:
        with pytest.raises(SnniError, match="SEAL rejected") as exc:
            run_pair(
                lambda ch: [ch.send(m) for m in garbage],
                lambda ch: server.linear(ch, prepared, case.layer.pack(case.x1)),
                timeout_s=60,
            )
        assert not isinstance(exc.value, HeWorkerLost)
        assert all(alive(p) for p in pool.pids)  # they dropped the call and wait for one
        # and the next call on the same processes is whole
        replies, y1 = replay(server, case, camera_messages(client, case), prepared)
        share = camera_share(client, case, replies)
        assert np.array_equal(RING.add(share, y1), reference(case))
    finally:
        pool.close()
        server.close()


def test_an_abandoned_call_breaks_the_pool_and_close_kills_at_once(client: HeClient) -> None:
    """The camera left mid-layer: the block processes wait for inputs that never come,
    so the next call must not reuse them, and close() does not wait for a QUIT."""
    case = gemm_case()
    server = server_for(client)
    prepared = _prepared(server, case)
    pool = start_pool(server, 2, close_in_child=[], timeout_s=60)
    assert pool is not None and server.pool is pool
    pids = pool.pids
    pool.start(prepared.index, bytes(16), case.layer.pack(case.x1))  # and no input
    with pytest.raises(HeWorkerLost, match="not running"):
        pool.start(prepared.index, bytes(16), case.layer.pack(case.x1))
    t0 = time.monotonic()
    pool.close()
    assert time.monotonic() - t0 < 2.0  # killed, not given the QUIT grace
    assert not any(alive(p) for p in pids)
    assert start_pool(server, 1, close_in_child=[], timeout_s=1) is None
    assert server.pool is None
    server.close()


def test_a_pool_needs_two_processes(client: HeClient) -> None:
    server = server_for(client)
    with pytest.raises(SnniError, match="at least two"):
        HePool(server, 1, close_in_child=[], timeout_s=1)
    server.close()
