"""Full-size batches over real loopback TCP (slow: run with -m slow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring


@pytest.mark.slow
@pytest.mark.parametrize("run_parties", ["tcp"], indirect=True)
def test_relu_and_relu_truncate_across_default_batches(
    run_parties: Callable[..., tuple[Any, Any]],
) -> None:
    ring = Ring(bits=37, frac_bits=12)
    n = (1 << 18) + 12345  # two default batches, the second one ragged
    vals = np.random.default_rng(0).integers(-(1 << 35), 1 << 35, n)
    x0, x1 = ring.share(ring.from_signed(vals), Prg())

    def party(who: Party, share: NDArray[np.uint64]) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=ring)
            engine.setup()
            return engine.relu(share), engine.relu_truncate(share, 12)

        return run

    (a, a_rt), (b, b_rt) = run_parties(party(Party.CLIENT, x0), party(Party.SERVER, x1))
    np.testing.assert_array_equal(ring.to_signed(ring.add(a, b)), np.maximum(vals, 0))
    err = ring.to_signed(ring.add(a_rt, b_rt)) - np.maximum(vals >> 12, 0)
    assert set(np.unique(err).tolist()) <= {-1, 0}
