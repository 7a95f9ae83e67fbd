"""What the tiling search of :mod:`.packing` minimises: modelled milliseconds per
input ciphertext, per product and per reply.

Public: only shapes and these prices decide a tiling, and the plan pins the one
chosen, so the two parties never need the prices themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from secfepas_sdk.errors import InvalidValueError

__all__ = ["DEFAULT_LINK_MBPS", "EDGE_TIME", "TilingPrices"]


@dataclass(frozen=True, slots=True)
class TilingPrices:
    """Modelled cost (ms) per input ciphertext, per product, per reply: what the
    tiling search minimises (public; the chosen tiling is pinned in the plan).

    The default prices the edge's time alone (measured when the packing was built).
    :meth:`for_link` prices the whole inference on a link of a given rate, for a
    deployment whose camera uplink is the bottleneck (docs/snni-he.md, "Time against
    bytes")."""

    per_input: float = 3.0
    per_product: float = 0.3
    per_reply: float = 5.0

    def __post_init__(self) -> None:
        if not all(0 < v < 1e6 for v in (self.per_input, self.per_product, self.per_reply)):
            raise InvalidValueError("tiling prices must be positive milliseconds")

    @classmethod
    def for_link(cls, mbps: float) -> TilingPrices:
        """Both parties' work and the bytes at ``mbps`` Mbit/s. Measured 2026-12-03 on
        ResNet50 and SqueezeNet (q218, this project's 2-core machine): an upload costs
        the edge 3 ms, the camera 2.5 ms (seeded encryption and save) and 196.8 kB; a
        reply costs the edge 9.6 ms (its encryption of zero, flood, switch and
        encoding), the camera 2 ms (decryption) and about 75 kB."""
        if not 0.1 <= mbps <= 1e6:
            raise InvalidValueError("the link rate must be 0.1 .. 1e6 Mbit/s")
        ms_per_kb = 8.0 / mbps
        return cls(
            per_input=3.0 + 2.5 + 196.8 * ms_per_kb,
            per_product=0.3,
            per_reply=9.6 + 2.0 + 75.0 * ms_per_kb,
        )


EDGE_TIME = TilingPrices()
# The camera link new plans are tiled for: Fast Ethernet or Wi-Fi, what a smart camera
# has. On ResNet50 it cuts 17 % of the traffic for about 1 % more time on loopback
# (docs/snni-he.md, "Time against bytes").
DEFAULT_LINK_MBPS = 100.0
