"""Bytes per element of each non-linear op, pinned per OT backend, so that traffic
cannot silently grow back. Ferret's LPN iterations (labelled ``ot-iteration``,
amortised to under 0.5 bits per OT, see tests/snni/ot/test_ferret.py) are counted
apart: they depend on how full the COT buffer is, the protocol bytes do not.

Ferret's ReLU at l = 37, for instance (bits per element, both ways; suites
snni-cheetah-ferret-v3 and v4, snni.nonlinear.layout): millionaires on 36 bits as digits
(3, 3, 3, 3, 2 x 12): 36 choice bits + 2^3 (gt only) + 3 * 2^3 * 2 + 12 * 2^2 * 2
message bits, 8 first-level nodes opened by the client only (7 * 3 + 2 bits), 7
later nodes by both (7 * 6 - 3 * 2 bits; bit triples are free): 247 bits; then the
multiplexer: 2 * (1 choice bit + 37 bits) = 323 bits = 40.375 bytes (3-bit digits: 46.25).
Truncation (s = 12): a 25-bit comparison (162 bits) + one correlated OT (1 + 12); of
an input the plan bounds in [-2^35, 2^35) (suite snni-cheetah-ferret-v5): the
correlated OT alone.
ReLU6 (``relu_truncate_capped``, suite snni-cheetah-ferret-v4): two relu_truncate whose
comparisons share the client's leaf OTs, so their 24 choice bits are sent once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.ot.ferret import ITERATION_LABEL
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = 4096  # a multiple of 8: no packing remainders
POOL = (1, 4, 32, 32)  # 3x3 stride 2 -> 4 x 15 x 15 = 900 outputs
# Bytes per element (per output for max-pool), both directions together.
PINNED: dict[str, dict[str, float]] = {
    "ferret": {
        "relu": 40.375,
        "relu_bound24": 30.625,
        "truncate": 21.875,
        "truncate_bound35": 1.625,  # the top bits' or in one correlated OT: 1 + 12 bits
        "relu_truncate": 33.875,
        "relu6": 64.75,  # two relu_truncate (67.75) on one set of leaf OTs: 24 choice bits less
        "maxpool": 253.027,
        "maxpool_bound24": 186.44,
    },
    "softspoken": {
        "relu": 270.5,
        "relu_bound24": 184.25,
        "truncate": 182.0,
        "truncate_bound35": 182.0,  # suite snni-cheetah-v3 keeps its comparison
        "relu_truncate": 198.25,
        "relu6": 396.5,  # two relu_truncate side by side (5-bit digits cannot share)
        "maxpool": 1695.28,
        "maxpool_bound24": 1204.88,
    },
    "iknp": {
        "relu": 894.5,
        "relu_bound24": 592.25,
        "truncate": 590.0,
        "truncate_bound35": 590.0,
        "relu_truncate": 630.25,
        "relu6": 1260.5,
        "maxpool": 5606.107,
        "maxpool_bound24": 3837.2,
    },
}


def _ops(e: NonlinearEngine, x: Any) -> list[tuple[str, Any]]:
    pool = x[: int(np.prod(POOL))].reshape(POOL)
    return [
        ("relu", lambda: e.relu(x)),
        ("relu_bound24", lambda: e.relu(x, bound_bits=24)),
        ("truncate", lambda: e.truncate(x, RING.frac_bits)),
        ("truncate_bound35", lambda: e.truncate(x, RING.frac_bits, bound_bits=35)),
        ("relu_truncate", lambda: e.relu_truncate(x, RING.frac_bits)),
        ("relu6", lambda: e.relu_truncate_capped(x, RING.frac_bits, 6 << RING.frac_bits)),
        ("maxpool", lambda: e.maxpool2d(pool, (3, 3), (2, 2))),
        ("maxpool_bound24", lambda: e.maxpool2d(pool, (3, 3), (2, 2), bound_bits=24)),
    ]


def _protocol_bytes(channel: Channel, name: str) -> int:
    return sum(
        s.bytes_sent + s.bytes_received
        for label, s in channel.stats.by_label.items()
        if label.split("/")[0] == name and ITERATION_LABEL not in label
    )


def test_bytes_per_element_are_pinned(ot_backend: str) -> None:
    vals = np.random.default_rng(3).integers(-(1 << 24), 1 << 24, N)
    x0, x1 = RING.share(RING.from_signed(vals), Prg())

    def party(who: Party, share: Any) -> Any:
        def run(channel: Channel) -> dict[str, float]:
            engine = NonlinearEngine(channel, party=who, ring=RING)
            engine.setup()
            out = {}
            for name, op in _ops(engine, share):
                with channel.label(name):
                    result = op()
                out[name] = _protocol_bytes(channel, name) / result.size
            return out

        return run

    measured, _ = run_pair(party(Party.CLIENT, x0), party(Party.SERVER, x1))
    assert measured == pytest.approx(PINNED[ot_backend], abs=0.005)
