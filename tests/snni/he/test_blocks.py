"""Splitting a layer call's output blocks changes no byte: every random value of block
k comes from streams keyed by (the call's seed, k), whoever computes it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from testkit.he import (
    RING,
    SplitInProcess,
    camera_messages,
    camera_share,
    conv_case,
    gemm_case,
    reference,
    replay,
    server_for,
)

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.he.engine import HeClient
from secfepas_sdk.snni.he.params import BFV_N8192


@pytest.fixture(scope="module")
def client() -> Iterator[HeClient]:
    c = HeClient(BFV_N8192, RING)
    yield c
    c.close()


@pytest.mark.parametrize("make", [conv_case, gemm_case], ids=["conv", "gemm"])
def test_any_split_gives_the_same_replies_and_shares(client: HeClient, make) -> None:
    case = make()
    messages = camera_messages(client, case)
    runs = []
    for parts, residues in ((1, False), (2, False), (3, False), (1, True), (2, True)):
        server = server_for(client)
        if parts > 1 or residues:
            server.pool = SplitInProcess(server, parts, residues=residues)
        w = case.w
        prepared = server.prepare(
            case.layer.layout, case.layer.kernel_polys(w), case.layer.l1_bound(w)
        )
        runs.append(replay(server, case, messages, prepared))
        server.close()
    (replies, y1), *others = runs
    for other_replies, other_y1 in others:
        assert other_replies == replies  # every reply byte, so the camera's share too
        assert np.array_equal(other_y1, y1)
    assert np.array_equal(RING.add(camera_share(client, case, replies), y1), reference(case))


def test_calls_draw_fresh_seeds(client: HeClient) -> None:
    """Two calls of one layer in a session never reuse a mask or noise stream."""
    case = gemm_case()
    messages = camera_messages(client, case)
    server = server_for(client)
    prepared = server.prepare(
        case.layer.layout, case.layer.kernel_polys(case.w), case.layer.l1_bound(case.w)
    )
    (r1, y1), (r2, y2) = (replay(server, case, messages, prepared) for _ in range(2))
    server.close()
    assert not set(r1) & set(r2)
    assert not np.array_equal(y1, y2)


def test_a_part_refuses_missing_or_extra_inputs(client: HeClient) -> None:
    case = gemm_case()
    server = server_for(client)
    layout = case.layer.layout
    prepared = server.prepare(layout, case.layer.kernel_polys(case.w), 1e6)
    blobs = client.encrypt(case.layer.pack(case.x0))
    part = server.part(prepared.index, bytes(16), case.layer.pack(case.x1), part=1, parts=2)
    assert list(part.blocks) == list(range(1, layout.n_out, 2))
    part.add(blobs[:1])
    with pytest.raises(SnniError, match="incomplete"):
        next(part.replies())
    with pytest.raises(SnniError, match="more input"):
        part.add(blobs)
    with pytest.raises(SnniError, match="bad HE split"):
        server.part(prepared.index, bytes(16), case.layer.pack(case.x1), part=2, parts=2)
    with pytest.raises(SnniError, match="no prepared HE layer"):
        server.part(prepared.index + 1, bytes(16), case.layer.pack(case.x1), part=0, parts=1)
    server.close()


def test_both_directions_go_in_chunks_of_sixteen(client: HeClient) -> None:
    """The camera's 20 inputs in 2 messages (the edge loads the first while the camera
    encrypts the second), the edge's 24 replies in 2; counts from the public layout."""
    case = conv_case()
    layout = case.layer.layout
    assert (layout.n_in, layout.n_out) == (20, 24)
    server = server_for(client)
    prepared = server.prepare(layout, case.layer.kernel_polys(case.w), case.layer.l1_bound(case.w))

    def camera(ch):
        y0 = client.linear(ch, layout, case.layer.pack(case.x0))
        return y0, ch.stats.messages_sent

    def edge(ch):
        return server.linear(ch, prepared, case.layer.pack(case.x1)), ch.stats.messages_sent

    (y0, up), (y1, down) = run_pair(camera, edge)
    server.close()
    assert (up, down) == (2, 2)
    assert np.array_equal(RING.add(y0, y1), reference(case))
