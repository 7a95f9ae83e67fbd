"""The millionaires' protocol on its own, for every digit layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear.millionaire import digit_sizes, greater_than
from secfepas_sdk.snni.ot import OtSession
from secfepas_sdk.snni.party import Party


@pytest.mark.parametrize("bits", [1, 2, 3, 6, 9, 24, 25, 36, 40, 59])
def test_digit_sizes_cover_the_bits(bits: int) -> None:
    sizes = digit_sizes(bits)
    assert sum(sizes) == bits
    assert max(sizes) <= 5 and max(sizes) - min(sizes) <= 1
    assert len(sizes) == -(-bits // 5)


def test_digit_sizes_rejects_zero() -> None:
    with pytest.raises(SnniError):
        digit_sizes(0)


@pytest.mark.parametrize("bits", [1, 3, 7, 24, 36])
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
