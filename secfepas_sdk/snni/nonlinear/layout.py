"""Digit layouts of the millionaires' protocol and their cost, per OT backend.

Both parties compute the layout from public data only (the session's OT extension
and the compared bit width), so they always agree on it.

Costs, per compared element, both directions (docs/snni-core.md, "Bytes per element"):
- a k-bit leaf is one 1-of-2^k OT from k chosen-choice random OTs plus 2^k masked
  messages of w bits (w = 2: (gt, eq); w = 1 for the lowest digit when its eq is
  never used, ``gt_only_low``);
- a tree node is one AND pair (gt = gt_H xor eq_H gt_L, eq = eq_H eq_L) on a bit
  triple made of two random-choice OTs; it opens 3 bits per party (2 on the lowest
  path, whose eq is never used, when ``gt_only_low``). With ``free_first_level`` the
  server's leaf shares are its triple shares, so on the first level only the
  client opens (Beaver's d = x xor a is 0 on the server's side).
- an OT costs 128/k bits (SoftSpokenOT), 128 (IKNP), or under Ferret 1 bit for a
  chosen choice and nothing for a random one, plus the LPN iterations' share
  (:data:`FERRET_ITERATION_BITS` per OT, labelled ``ot-iteration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.ot import lpn

MAX_DIGIT_BITS = 5  # 1-of-32 leaves: 32 two-bit messages fill one 64-bit word
# Iteration traffic per COT of Ferret's main set: one SPCOT message per n - reserve COTs.
FERRET_ITERATION_BITS = 8 * lpn.MAIN.spcot_message_bytes / (lpn.MAIN.n - lpn.MAIN.reserve)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Digit widths (least significant first) and the two Ferret-era options."""

    sizes: tuple[int, ...]
    gt_only_low: bool = False
    free_first_level: bool = False

    def __post_init__(self) -> None:
        if not self.sizes or not all(1 <= k <= MAX_DIGIT_BITS for k in self.sizes):
            raise SnniError(f"digits must have 1..{MAX_DIGIT_BITS} bits, got {self.sizes}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Leaf message bits per digit."""
        return tuple(1 if (j == 0 and self.gt_only_low) else 2 for j in range(len(self.sizes)))

    @property
    def levels(self) -> int:
        return tree_depth(len(self.sizes))


@dataclass(frozen=True, slots=True)
class Cost:
    """One comparison's cost per element: message bits (leaf tables and openings),
    OTs by kind (their choice bits or rows are :meth:`wire_bits`'s), and the
    camera's waits (rounds) of a comparison on its own."""

    message_bits: int
    chosen_ots: int
    random_ots: int
    rounds: int

    def wire_bits(self, extension: str, k: int = 4) -> float:
        """Protocol bits per element on ``extension`` (Ferret: without iterations)."""
        if extension == "ferret":
            return self.message_bits + self.chosen_ots
        per = 128 if extension == "iknp" else 128 / k
        return self.message_bits + per * (self.chosen_ots + self.random_ots)

    def total_bits(self, extension: str, k: int = 4) -> float:
        """Bits per element including Ferret's iteration share."""
        extra = FERRET_ITERATION_BITS * (self.chosen_ots + self.random_ots)
        return self.wire_bits(extension, k) + (extra if extension == "ferret" else 0.0)


def tree_depth(q: int) -> int:
    return math.ceil(math.log2(q)) if q > 1 else 0


def _node_bits(q: int, layout: Layout) -> int:
    """Opened bits of the whole tree (pairs (0,1), (2,3), ... per level, odd one carried)."""
    lowest = [True] + [False] * (q - 1)
    bits, level = 0, 0
    while len(lowest) > 1:
        level += 1
        parties = 1 if (layout.free_first_level and level == 1) else 2
        merged = []
        for i in range(len(lowest) // 2):
            low = lowest[2 * i]
            bits += parties * (2 if (low and layout.gt_only_low) else 3)
            merged.append(low)
        if len(lowest) % 2:
            merged.append(lowest[-1])
        lowest = merged
    return bits


def cost(layout: Layout) -> Cost:
    q = len(layout.sizes)
    leaves = sum(w << k for k, w in zip(layout.sizes, layout.widths, strict=True))
    levels = layout.levels
    rounds = 1 + levels // 2  # the leaf OTs' wait, then the relay's (millionaire.turn_levels)
    return Cost(leaves + _node_bits(q, layout), sum(layout.sizes), 2 * (q - 1), rounds)


def even_sizes(bits: int, max_digit: int = MAX_DIGIT_BITS) -> list[int]:
    """The fewest digits of at most ``max_digit`` bits, as even as possible (larger
    ones least significant)."""
    if bits < 1:
        raise SnniError("the millionaires' protocol needs at least one bit")
    if not 1 <= max_digit <= MAX_DIGIT_BITS:
        raise SnniError(f"digits must have 1..{MAX_DIGIT_BITS} bits")
    q = -(-bits // max_digit)
    base, extra = divmod(bits, q)
    return [base + 1] * extra + [base] * (q - extra)


@lru_cache(maxsize=256)
def layout(extension: str, bits: int) -> Layout:
    """The layout both parties use for a ``bits``-wide comparison on ``extension``.

    SoftSpokenOT and IKNP: the fewest digits of at most 5 bits (their OTs dominate;
    the wire of suite snni-cheetah-v3). Ferret: the layout of least
    :meth:`Cost.total_bits` (gt-only lowest digit, free first level) among those
    whose tree is no deeper than 3-bit digits' tree, so no comparison gains a round."""
    if bits < 1:
        raise SnniError("the millionaires' protocol needs at least one bit")
    if extension != "ferret":
        return Layout(sizes=tuple(even_sizes(bits)))
    max_levels = tree_depth(-(-bits // 3))
    best: tuple[float, Layout] | None = None
    for q in range(-(-bits // MAX_DIGIT_BITS), bits + 1):
        if tree_depth(q) > max_levels:
            break
        for k0 in range(1, min(MAX_DIGIT_BITS, bits - q + 1) + 1):
            rest, m = bits - k0, q - 1
            if (m == 0 and rest) or rest > m * MAX_DIGIT_BITS:
                continue
            base, extra = divmod(rest, m) if m else (0, 0)
            sizes = (k0, *[base + 1] * extra, *[base] * (m - extra))
            candidate = Layout(sizes=sizes, gt_only_low=True, free_first_level=True)
            bits_total = cost(candidate).total_bits("ferret")
            if best is None or bits_total < best[0]:
                best = (bits_total, candidate)
    if best is None:  # pragma: no cover - q = bits, k0 = 1 always qualifies
        raise SnniError(f"no digit layout for {bits} bits")
    return best[1]
