"""Hypothesis: the protocols equal their plaintext functions on arbitrary inputs,
with round counts that do not grow with the input size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring


def run(
    ring: Ring, values: NDArray[np.int64], op: Callable[[NonlinearEngine, NDArray[np.uint64]], Any]
) -> tuple[Any, Any, int]:
    x0, x1 = ring.share(ring.from_signed(values), Prg())

    def party(who: Party, share: NDArray[np.uint64]) -> Callable[[Channel], Any]:
        def go(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=ring)
            engine.setup()
            before = channel.stats.rounds
            out = op(engine, share)
            return out, channel.stats.rounds - before

        return go

    (a, rounds), (b, _) = run_pair(party(Party.CLIENT, x0), party(Party.SERVER, x1))
    return a, b, rounds


rings = st.sampled_from(
    [Ring(bits=37, frac_bits=12), Ring(bits=41, frac_bits=15), Ring(bits=20, frac_bits=6)]
)


@st.composite
def ring_and_values(draw: st.DrawFn) -> tuple[Ring, NDArray[np.int64]]:
    ring = draw(rings)
    near = st.sampled_from(
        [0, 1, -1, ring.max_signed, ring.min_signed, ring.max_signed - 1, ring.min_signed + 1]
    )
    anywhere = st.integers(ring.min_signed, ring.max_signed)
    vals = draw(st.lists(st.one_of(near, anywhere), min_size=1, max_size=40))
    return ring, np.array(vals, dtype=np.int64)


@settings(max_examples=12, deadline=None)
@given(ring_and_values())
def test_relu_and_drelu(case: tuple[Ring, NDArray[np.int64]]) -> None:
    ring, vals = case
    a, b, _ = run(ring, vals, lambda e, x: (e.drelu(x), e.relu(x)))
    np.testing.assert_array_equal(a[0] ^ b[0], (vals >= 0).astype(np.uint8))
    np.testing.assert_array_equal(ring.to_signed(ring.add(a[1], b[1])), np.maximum(vals, 0))


@settings(max_examples=12, deadline=None)
@given(ring_and_values(), st.integers(1, 18))
def test_truncate(case: tuple[Ring, NDArray[np.int64]], shift: int) -> None:
    ring, vals = case
    shift = min(shift, ring.bits - 2)
    vals = np.maximum(vals, ring.min_signed + (1 << shift))  # the supported range
    a, b, _ = run(ring, vals, lambda e, x: e.truncate(x, shift))
    err = ring.to_signed(ring.add(a, b)) - (vals >> shift)
    assert set(np.unique(err).tolist()) <= {-1, 0}


@settings(max_examples=12, deadline=None)
@given(ring_and_values(), st.integers(1, 58))
def test_relu_truncate(case: tuple[Ring, NDArray[np.int64]], shift: int) -> None:
    ring, vals = case
    shift = min(shift, ring.bits - 2, 32)
    vals = np.maximum(vals, ring.min_signed + (1 << shift))  # the supported range
    a, b, _ = run(ring, vals, lambda e, x: e.relu_truncate(x, shift))
    err = ring.to_signed(ring.add(a, b)) - np.maximum(vals >> shift, 0)
    assert set(np.unique(err).tolist()) <= {-1, 0}


def test_rounds_do_not_grow_with_size() -> None:
    ring = Ring(bits=37, frac_bits=12)
    counts = []
    for n in (16, 4096):
        vals = np.random.default_rng(n).integers(-(1 << 30), 1 << 30, n)
        _, _, rounds = run(ring, vals, lambda e, x: e.relu(x))
        counts.append(rounds)
    assert counts[0] == counts[1] <= 8


@st.composite
def bounded_values(draw: st.DrawFn) -> tuple[Ring, int, NDArray[np.int64]]:
    ring = draw(rings)
    k = draw(st.integers(1, ring.bits - 1))
    edges = st.sampled_from([0, 1, -1, (1 << k) - 1, -(1 << k), -(1 << k) + 1])
    vals = draw(
        st.lists(st.one_of(edges, st.integers(-(1 << k), (1 << k) - 1)), min_size=1, max_size=40)
    )
    return ring, k, np.array(vals, dtype=np.int64)


@settings(max_examples=12, deadline=None)
@given(bounded_values())
def test_bounded_drelu_and_relu(case: tuple[Ring, int, NDArray[np.int64]]) -> None:
    ring, k, vals = case
    a, b, _ = run(ring, vals, lambda e, x: (e.drelu(x, bound_bits=k), e.relu(x, bound_bits=k)))
    np.testing.assert_array_equal(a[0] ^ b[0], (vals >= 0).astype(np.uint8))
    np.testing.assert_array_equal(ring.to_signed(ring.add(a[1], b[1])), np.maximum(vals, 0))


def test_bound_cuts_traffic() -> None:
    """A 24-bit bound at l = 37 compares 24 bits instead of 36: about 2/3 of the
    comparison's bytes; the multiplexer's 2 x 37 bits stay (under Ferret they are a
    fifth of a ReLU, so the whole op drops to 0.76 of its bytes, 0.68 on SoftSpokenOT)."""
    ring = Ring(bits=37, frac_bits=12)
    vals = np.random.default_rng(0).integers(-(1 << 24), 1 << 24, 2048)
    sizes = []
    for bound in (None, 24):
        x0, x1 = ring.share(ring.from_signed(vals), Prg())

        def party(who: Party, share: NDArray[np.uint64], k: int | None) -> Callable[[Channel], Any]:
            def go(channel: Channel) -> Any:
                engine = NonlinearEngine(channel, party=who, ring=ring)
                engine.setup()
                before = channel.stats.bytes_sent
                out = engine.relu(share, bound_bits=k)
                return out, channel.stats.bytes_sent - before

            return go

        (a, sent_a), (b, sent_b) = run_pair(
            party(Party.CLIENT, x0, bound), party(Party.SERVER, x1, bound)
        )
        np.testing.assert_array_equal(ring.to_signed(ring.add(a, b)), np.maximum(vals, 0))
        sizes.append(sent_a + sent_b)
    assert sizes[1] < 0.8 * sizes[0]
