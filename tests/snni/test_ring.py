"""Fixed-point ring: encoding, signed view, sharing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RINGS = [Ring(bits=37, frac_bits=12), Ring(bits=41, frac_bits=15), Ring(bits=60, frac_bits=20)]


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_edge_values_roundtrip(ring: Ring) -> None:
    vals = np.array([0, 1, -1, ring.max_signed, ring.min_signed, ring.max_signed - 1])
    res = ring.from_signed(vals)
    assert int(res.max()) < ring.modulus
    np.testing.assert_array_equal(ring.to_signed(res), vals)
    ulp = 1.0 / ring.scale
    np.testing.assert_array_equal(ring.decode(ring.encode([0.0, ulp, -ulp])), [0.0, ulp, -ulp])
    # Saturation instead of wrapping at the ends of the range.
    big = ring.decode(ring.encode([1e30, -1e30]))
    assert big[0] == ring.max_signed / ring.scale and big[1] == ring.min_signed / ring.scale


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(RINGS), st.lists(st.floats(-1000, 1000), min_size=1, max_size=50))
def test_share_reconstruct_and_rounding(ring: Ring, xs: list[float]) -> None:
    x = ring.encode(xs)
    s0, s1 = ring.share(x, Prg())
    np.testing.assert_array_equal(ring.reconstruct(s0, s1), x)
    assert np.abs(ring.decode(x) - np.array(xs)).max() <= 0.5 / ring.scale + 1e-12


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_arithmetic_wraps_mod_2_to_the_l(ring: Ring) -> None:
    a = ring.from_signed([ring.max_signed, ring.min_signed, -5])
    b = ring.from_signed([1, -1, 3])
    np.testing.assert_array_equal(
        ring.to_signed(ring.add(a, b)), [ring.min_signed, ring.max_signed, -2]
    )
    np.testing.assert_array_equal(ring.to_signed(ring.mul(b, b)), [1, 1, 9])
    np.testing.assert_array_equal(ring.to_signed(ring.neg(b)), [-1, 1, -3])


def test_shares_look_uniform() -> None:
    ring = RINGS[0]
    s0, _ = ring.share(np.zeros(1 << 14, dtype=np.uint64), Prg())
    top_bits = (s0 >> np.uint64(ring.bits - 1)) & np.uint64(1)
    assert abs(float(top_bits.mean()) - 0.5) < 0.03


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        Ring(bits=61, frac_bits=12)
    with pytest.raises(ValueError):
        Ring(bits=37, frac_bits=36)
