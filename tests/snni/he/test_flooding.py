"""Flooding sized to a circuit-privacy budget: exact arithmetic, and the flood itself."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import InvalidValueError, SnniError
from secfepas_sdk.snni.he import flooding
from secfepas_sdk.snni.he.flooding import (
    CircuitPrivacy,
    _mulmod,
    flood_distance,
    flood_residues,
    noise_bound,
    sized_flood_bits,
)
from secfepas_sdk.snni.he.params import BFV_N8192, BFV_N8192_Q218, check_layer_noise, make_context
from secfepas_sdk.snni.prg import Prg

RING_BITS = 37


def test_the_larger_set_is_128_bit_and_has_room_for_larger_floods() -> None:
    assert sum(BFV_N8192_Q218.coeff_bits) == 218 == BFV_N8192_Q218.standard_max_logq
    assert BFV_N8192_Q218.data_bits == 180 and BFV_N8192_Q218.last_bits == 60
    assert BFV_N8192_Q218.flood_bits(RING_BITS) == 139 > BFV_N8192.flood_bits(RING_BITS) == 79
    make_context(BFV_N8192_Q218, RING_BITS)  # SEAL's own 128-bit table accepts it


def test_distance_matches_the_float_sigma() -> None:
    for l1_log2 in (0, 10, 20, 30):
        flood, sigma = check_layer_noise(BFV_N8192, RING_BITS, 2.0**l1_log2)
        got = flood_distance(BFV_N8192, l1_log2, flood)
        assert float(got) == pytest.approx(2.0**-sigma, rel=1e-12)


@pytest.mark.parametrize("l1_log2", [0, 17, 25, 31])
@pytest.mark.parametrize("share_log2", [-60, -88, -100])
def test_sized_flood_is_the_least_that_meets_the_share(l1_log2: int, share_log2: int) -> None:
    share = Fraction(1, 1 << -share_log2)
    flood = sized_flood_bits(BFV_N8192_Q218, RING_BITS, l1_log2, share)
    assert flood_distance(BFV_N8192_Q218, l1_log2, flood) <= share
    assert flood_distance(BFV_N8192_Q218, l1_log2, flood - 1) > share
    assert flood <= BFV_N8192_Q218.flood_bits(RING_BITS)


def test_no_layer_gets_less_than_40_bits() -> None:
    flood = sized_flood_bits(BFV_N8192_Q218, RING_BITS, 20, Fraction(1, 2))
    assert flood_distance(BFV_N8192_Q218, 20, flood) <= Fraction(1, 1 << 40)


def test_a_share_beyond_the_largest_flood_is_refused() -> None:
    with pytest.raises(SnniError, match="decrypts correctly only up to 2\\^79"):
        sized_flood_bits(BFV_N8192, RING_BITS, 25, Fraction(1, 1 << 80))
    assert noise_bound(BFV_N8192, 0) == (21 + 21) * 8192 + 21  # the pk term: |e| <= 21 (CBD)


def test_budget_values_are_checked() -> None:
    budget = CircuitPrivacy()
    assert (budget.distance_log2, budget.inferences) == (-40, 10**8)
    assert budget.per_coefficient(1 << 20) == Fraction(1, (1 << 60) * 10**8)
    assert CircuitPrivacy.from_dict(budget.to_dict()) == budget
    bad_values = [
        {"distance_log2": 0},
        {"distance_log2": -129},
        {"inferences": 0},
        {"inferences": 10**16},
        {"distance_log2": -40.5},
        {"inferences": True},
    ]
    for bad in bad_values:
        with pytest.raises(InvalidValueError):
            CircuitPrivacy(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError):
        CircuitPrivacy.from_dict({"distance_log2": -40})


@settings(max_examples=50, deadline=None)
@given(
    u=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=16),
    c=st.integers(0, 2**60),
    q_index=st.integers(0, 2),
)
def test_mulmod_is_exact(u: list[int], c: int, q_index: int) -> None:
    q = [1152921504606683137, 1152921504606748673, 274877562881][q_index]
    c %= q
    got = _mulmod(np.asarray(u, dtype=np.uint64), c, q)
    assert [int(v) for v in got] == [x * c % q for x in u]


@pytest.mark.parametrize("flood_bits", [79, 119, 139])
def test_flood_residues_are_one_integer_in_range_per_coefficient(flood_bits: int) -> None:
    """CRT of the residues is one integer E in [-2^F, 2^F), and E spans that range."""
    context = make_context(BFV_N8192_Q218, RING_BITS)
    moduli = [m.value() for m in context.first_context_data().parms().coeff_modulus()]
    n = 2048
    res = flood_residues(Prg(bytes(16)), flood_bits, np.asarray(moduli, dtype=np.uint64), n)
    big_q = moduli[0] * moduli[1] * moduli[2]
    values = []
    for i in range(n):
        x = 0
        for q, r in zip(moduli, res[:, i], strict=True):
            m = big_q // q
            x += int(r) * m * pow(m, -1, q)
        x %= big_q
        values.append(x - big_q if x > big_q // 2 else x)
    assert all(-(1 << flood_bits) <= v < 1 << flood_bits for v in values)
    assert max(values) > 1 << (flood_bits - 2) and min(values) < -(1 << (flood_bits - 2))


@pytest.mark.skipif(flooding._kernel() is None, reason="needs numba")
@pytest.mark.parametrize("flood_bits", [40, 79, 112, 119, 139])
def test_flood_kernel_gives_numpys_residues(
    flood_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same draws reduced by the numba kernel and by numpy: the same residues, also
    for a 38-bit prime and the largest pieces."""
    moduli = np.asarray(
        [1152921504606683137, 1152921504606748673, 274877562881, (1 << 62) - 57],
        dtype=np.uint64,
    )
    got = flood_residues(Prg(bytes(16)), flood_bits, moduli, 4096)
    monkeypatch.setattr(flooding, "_kernel", lambda: None)
    want = flood_residues(Prg(bytes(16)), flood_bits, moduli, 4096)
    assert np.array_equal(got, want)
    assert got.dtype == np.uint64 and bool((got < moduli[:, None]).all())
