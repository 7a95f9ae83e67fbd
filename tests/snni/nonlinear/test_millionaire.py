"""The millionaires' protocol on its own, for every digit layout, and the cost
model of :mod:`secfepas_sdk.snni.nonlinear.layout` held to the measured wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.nonlinear.layout import Layout, cost, even_sizes, layout, tree_depth
from secfepas_sdk.snni.nonlinear.millionaire import greater_than, shares_leaves
from secfepas_sdk.snni.ot import OtSession
from secfepas_sdk.snni.ot import extension as extension_mod
from secfepas_sdk.snni.ot.ferret import ITERATION_LABEL
from secfepas_sdk.snni.party import Party


@pytest.mark.parametrize("bits", [1, 2, 3, 6, 9, 24, 25, 36, 40, 59])
def test_even_sizes_cover_the_bits(bits: int) -> None:
    sizes = even_sizes(bits)
    assert sum(sizes) == bits
    assert max(sizes) <= 5 and max(sizes) - min(sizes) <= 1
    assert len(sizes) == -(-bits // 5)


def test_even_sizes_rejects_zero() -> None:
    with pytest.raises(SnniError):
        even_sizes(0)


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 7, 13, 24, 25, 36])
def test_greater_than(run_parties: Callable[..., tuple[Any, Any]], bits: int) -> None:
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, 600, dtype=np.uint64)
    b = rng.integers(0, top + 1, 600, dtype=np.uint64)
    # Ties, neighbours and extremes; equal high digits force the whole tree.
    a[:6] = [0, top, 0, top, 5 % (top + 1), top // 2]
    b[:6] = [0, top, top, 0, 4 % (top + 1), top // 2 + 1 if top > 1 else 0]
    b[6:300] = a[6:300]
    b[300:400] = a[300:400] ^ np.uint64(1)

    def party(who: Party, value: np.ndarray) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            ot = OtSession(who)
            ot.setup(channel)
            return greater_than(channel, who, ot, value, bits)

        return run

    c, s = run_parties(party(Party.CLIENT, a), party(Party.SERVER, b))
    np.testing.assert_array_equal(c ^ s, (a > b).astype(np.uint8))


def _pair_values(rng: np.random.Generator, bits: int, n: int) -> tuple[Any, Any]:
    top = (1 << bits) - 1
    a = rng.integers(0, top + 1, n, dtype=np.uint64)
    b = rng.integers(0, top + 1, n, dtype=np.uint64)
    b[: n // 2] = a[: n // 2]  # ties reach every tree node
    b[: n // 4] ^= np.uint64(1) << rng.integers(0, bits, n // 4).astype(np.uint64)
    return a, b


_LAYOUTS = st.builds(
    Layout,
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=9).map(tuple),
    gt_only_low=st.booleans(),
    free_first_level=st.booleans(),
)


@settings(max_examples=3, deadline=None)
@given(st.lists(_LAYOUTS, min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_every_layout_is_exact(layouts: list[Layout], seed: int) -> None:
    """Any digit layouts, with or without the Ferret-era options, on the backend
    (one session per example: each layout in turn)."""
    rng = np.random.default_rng(seed)
    cases = [(lay, *_pair_values(rng, sum(lay.sizes), 64)) for lay in layouts]

    def party(who: Party) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            ot = OtSession(who)
            ot.setup(channel)
            return [
                greater_than(
                    channel, who, ot, a if who is Party.CLIENT else b, sum(lay.sizes),
                    digits_layout=lay,
                )
                for lay, a, b in cases
            ]  # fmt: skip

        return run

    c, s = run_pair(party(Party.CLIENT), party(Party.SERVER))
    for (_, a, b), ci, si in zip(cases, c, s, strict=True):
        np.testing.assert_array_equal(ci ^ si, (a > b).astype(np.uint8))


@pytest.mark.parametrize("bits", [1, 2, 5, 8, 13, 24, 25, 36, 40])
def test_layout_is_public_and_covers_the_bits(bits: int) -> None:
    for extension in ("softspoken", "iknp"):
        assert layout(extension, bits) == Layout(sizes=tuple(even_sizes(bits)))
    lay = layout("ferret", bits)
    assert sum(lay.sizes) == bits and lay.gt_only_low and lay.free_first_level
    # No deeper than 3-bit digits' tree: no round more than before.
    assert lay.levels <= tree_depth(-(-bits // 3))
    assert cost(lay).rounds <= 1 + tree_depth(-(-bits // 3)) // 2


def test_ferret_layout_beats_3_bit_digits() -> None:
    """36 bits: 16 digits of 2-3 bits, 247 bits on the wire against the 294 of 3-bit
    digits (the layout before issue 9 §2)."""
    lay = layout("ferret", 36)
    assert lay.sizes == (3, 3, 3, 3) + (2,) * 12
    assert cost(lay).wire_bits("ferret") == 247
    three_bit = cost(Layout(sizes=(3,) * 12))
    assert three_bit.wire_bits("ferret") == 294
    assert cost(lay).total_bits("ferret") < three_bit.total_bits("ferret")


def test_cost_model_is_the_measured_wire(ot_backend: str) -> None:
    """Bytes and rounds of one comparison equal the model (Ferret: without iterations)."""
    n, widths = 1024, (1, 2, 5, 13, 24, 36)
    rng = np.random.default_rng(5)
    cases = {bits: _pair_values(rng, bits, n) for bits in widths}

    def party(who: Party) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            ot = OtSession(who)
            ot.setup(channel)
            for bits, (a, b) in cases.items():
                with channel.label(f"cmp{bits}"):
                    greater_than(channel, who, ot, a if who is Party.CLIENT else b, bits)
            return channel.stats

        return run

    stats, _ = run_pair(party(Party.CLIENT), party(Party.SERVER))
    for bits in widths:
        name = f"cmp{bits}"
        wire = sum(
            v.bytes_sent + v.bytes_received
            for label, v in stats.by_label.items()
            if label.split("/")[0] == name and ITERATION_LABEL not in label
        )
        model = cost(layout(ot_backend, bits))
        assert (bits, wire * 8) == (bits, model.wire_bits(ot_backend) * n)
        assert (bits, stats.by_label[name].rounds) == (bits, model.rounds)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 5),
    width=st.integers(1, 2),
    n=st.integers(0, 400),
    seed=st.integers(0, 2**32 - 1),
)
def test_leaf_words_kernel_matches_numpy(k: int, width: int, n: int, seed: int) -> None:
    """The server's packed leaf words are the same with the numba pass and without."""
    from secfepas_sdk.snni.nonlinear import millionaire as mill

    if (width << k) % 8:
        return  # not a packed class
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 1 << k, n).astype(np.uint64)
    r_gt, r_eq = (rng.integers(0, 2, n).astype(np.uint8) for _ in "ge")
    got = mill._leaf_words(digits, k, width, r_gt, r_eq)
    saved = mill._words_kernel
    try:
        mill._words_kernel = lambda: None  # numpy's words
        want = mill._leaf_words(digits, k, width, r_gt, r_eq)
    finally:
        mill._words_kernel = saved
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bits", [1, 2, 5, 13, 24, 25])
def test_two_comparisons_share_the_leaf_ots(
    run_parties: Callable[..., tuple[Any, Any]], bits: int
) -> None:
    """1{a > b} and 1{a > b'} from one set of leaf OTs (the client's digits of a are
    the choices of both): exact, with ties and neighbours, on every backend whose
    layout allows it; the chosen-choice OTs are those of one comparison."""
    lay = layout(extension_mod.DEFAULT_EXTENSION, bits)
    if not shares_leaves(lay):  # 5-bit digits (SoftSpokenOT, IKNP): refused before any I/O
        with pytest.raises(SnniError, match="cannot share"):
            no_channel: Any = None
            zeros = np.zeros(4, np.uint64)
            greater_than(
                no_channel, Party.CLIENT, OtSession(Party.CLIENT), zeros, bits, shared=True
            )
        return
    rng = np.random.default_rng(bits + 7)
    a, b = _pair_values(rng, bits, 500)
    b2 = rng.integers(0, 1 << bits, 500, dtype=np.uint64)
    b2[:100] = a[:100]  # the second comparison has ties of its own
    b2[100:150] = a[100:150] ^ np.uint64(1)

    def party(who: Party, value: np.ndarray) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            ot = OtSession(who)
            ot.setup(channel)
            return greater_than(channel, who, ot, value, bits, shared=True)

        return run

    c, s = run_parties(party(Party.CLIENT, a), party(Party.SERVER, np.concatenate([b, b2])))
    want = np.concatenate([a > b, a > b2]).astype(np.uint8)
    np.testing.assert_array_equal(c ^ s, want)


def test_a_layout_that_cannot_share_is_refused() -> None:
    assert not shares_leaves(Layout(sizes=(5, 5)))
    assert shares_leaves(Layout(sizes=(3, 3, 3), gt_only_low=True))
    assert shares_leaves(Layout(sizes=(5, 4), gt_only_low=True))  # 2 x 1 x 32, 2 x 2 x 16
    assert not shares_leaves(Layout(sizes=(5, 5), gt_only_low=True))
