"""Round counts pinned per protocol, so that they cannot silently grow back.

A round is a wait of the camera (client) after it has sent (snni.channel). The AND
tree's openings travel as a relay (millionaire.turn_levels): a tree of depth T costs
floor(T / 2) waits after the leaf OTs' one, where a lock-step exchange cost T. The
results stay exact (tests in test_engine*.py); here the schedule and the counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.nonlinear.layout import layout
from secfepas_sdk.snni.nonlinear.millionaire import greater_than, turn_levels
from secfepas_sdk.snni.ot import OtSession
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)


def depth(bits: int, backend: str) -> int:
    return layout(backend, bits).levels


@given(st.integers(0, 12))
def test_relay_sends_every_level_once_and_only_when_it_can(levels: int) -> None:
    """Each party sends each level's opening exactly once, never before it has both
    openings of the level below (the peer's arrived in an earlier flight)."""
    sent: dict[str, dict[int, int]] = {"server": {}, "client": {}}
    for t in range(levels + 1):
        who, peer = ("server", "client") if t % 2 == 0 else ("client", "server")
        for j in turn_levels(t, levels):
            assert j not in sent[who]
            if j > 0:
                assert j - 1 in sent[who] and sent[peer].get(j - 1, t) < t
            sent[who][j] = t
    for who in sent:
        assert sorted(sent[who]) == list(range(levels))
    assert turn_levels(levels + 1, levels) == []


@pytest.mark.parametrize("bits", [1, 7, 11, 16, 24, 36, 45, 59])
def test_greater_than_rounds_and_result(ot_backend: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, 300, dtype=np.uint64)
    b = rng.integers(0, top + 1, 300, dtype=np.uint64)
    b[:150] = a[:150]  # ties run the whole tree
    b[150:200] = a[150:200] ^ np.uint64(1)

    def party(who: Party, value: np.ndarray) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            ot = OtSession(who)
            ot.setup(channel)
            before = channel.stats.rounds
            out = greater_than(channel, who, ot, value, bits)
            return out, channel.stats.rounds - before

        return run

    (c, rounds), (s, _) = run_pair(party(Party.CLIENT, a), party(Party.SERVER, b))
    np.testing.assert_array_equal(c ^ s, (a > b).astype(np.uint8))
    assert rounds == 1 + depth(bits, ot_backend) // 2


def _rounds(op: Callable[[NonlinearEngine, Any], Any], x: Any) -> int:
    x0, x1 = RING.share(x, Prg())

    def party(who: Party, share: Any) -> Callable[[Channel], int]:
        def go(channel: Channel) -> int:
            engine = NonlinearEngine(channel, party=who, ring=RING)
            engine.setup()
            before = channel.stats.rounds
            op(engine, share)
            # A last message of the camera's is a round only once it waits: count it.
            return channel.stats.rounds - before + int(channel.owes_round)

        return go

    rounds, _ = run_pair(party(Party.CLIENT, x0), party(Party.SERVER, x1))
    return rounds


# (op, rounds with SoftSpokenOT/IKNP (4-5-bit digits), with Ferret (layout.layout:
# trees no deeper than 3-bit digits')),
# each counting the wait a camera's last message costs. Before the relay (and the
# truncation's OT turned round): ReLU 5 + 1, truncate 4 + 1, relu_truncate 5 + 1,
# a 2x2 max-pool 10 + 1.
PINNED: list[tuple[str, Callable[[NonlinearEngine, Any], Any], int, int]] = [
    ("relu", lambda e, x: e.relu(x), 4, 5),
    ("drelu", lambda e, x: e.drelu(x), 3, 3),
    ("truncate", lambda e, x: e.truncate(x, 12), 3, 4),
    ("relu_truncate", lambda e, x: e.relu_truncate(x, 12), 4, 4),
    ("relu bound 24", lambda e, x: e.relu(x, bound_bits=24), 4, 4),
    ("maxpool 2x2", lambda e, x: e.maxpool2d(x, (2, 2), (2, 2)), 7, 9),
]


@pytest.mark.parametrize(("name", "op", "rounds", "ferret"), PINNED, ids=[p[0] for p in PINNED])
def test_rounds_per_protocol(
    ot_backend: str,
    name: str,
    op: Callable[[NonlinearEngine, Any], Any],
    rounds: int,
    ferret: int,
) -> None:
    x = RING.from_signed(np.random.default_rng(1).integers(-(1 << 20), 1 << 20, (1, 2, 8, 8)))
    assert _rounds(op, x) == (ferret if ot_backend == "ferret" else rounds)


def test_rounds_do_not_grow_within_a_batch() -> None:
    x = RING.from_signed(np.random.default_rng(2).integers(-(1 << 20), 1 << 20, 5000))
    small = _rounds(lambda e, v: e.relu_truncate(v, 12), x[:10])
    assert small == _rounds(lambda e, v: e.relu_truncate(v, 12), x)
