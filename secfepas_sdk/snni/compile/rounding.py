"""Centre the secure truncations' error: one ulp more in the bias of the linear op
whose output a truncation reads.

Why: the 2PC truncation (``truncate``, ``relu_truncate``, nonlinear/engine.py) gives
floor(x / 2^s) - c, c the dropped carry of the shares' low bits, which is 1 with
probability frac(x / 2^s): on average 1 ulp below x / 2^s, half from the floor and half
from c. Over MobileNetV2's 54 truncations that bias adds up (docs/snni-he.md,
"Centred truncation"). With 2^s more in that op's bias (its output units: one ulp after
the shift) the result is floor(x / 2^s) + 1 - c: within 1 ulp of x / 2^s, 0 on average.

Who holds what: only the edge's secret quantised biases change (and the public bound on
them, ``b_log2``, where it must: the plan re-checks every weight against it). Shares,
messages and protocols are the same.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.snni.compile.passes import op_graph
from secfepas_sdk.snni.compile.quantise import log2_bound
from secfepas_sdk.snni.ops import Add, Concat, LinearOp, MaxPool, Op, ReluTruncate, Truncate

__all__ = ["centre_truncations"]


def centre_truncations(
    ops: list[Op], weights: dict[str, NDArray[np.int64]], keep: set[str]
) -> list[Op]:
    """Add 2^s to the bias of the linear op feeding each truncation by s (through
    max-pools, concats and one branch of an add, each read only by it), in place in
    ``weights``; returns the ops with their ``b_log2`` raised where needed. A
    truncation with no such op (after a global average pool, say) is left as it is."""
    producer, uses = op_graph(ops)

    def feeding(tensor: str) -> list[str]:
        """The linear ops whose bias moves ``tensor`` by one unit (none: not centred)."""
        src = producer.get(tensor)
        if src is None or uses[tensor] != 1 or tensor in keep:
            return []
        if isinstance(src, LinearOp):
            return [src.name] if f"{src.name}/b" in weights else []
        if isinstance(src, MaxPool):
            return feeding(src.inputs[0])
        if isinstance(src, Concat):
            parts = [feeding(name) for name in src.inputs]
            return [name for part in parts for name in part] if all(parts) else []
        if isinstance(src, Add):
            return next((part for part in map(feeding, src.inputs) if part), [])
        return []

    bumped: dict[str, int] = {}
    for op in ops:
        if isinstance(op, Truncate | ReluTruncate) and op.shift > 0:
            for name in feeding(op.inputs[0]):
                bumped[name] = op.shift
    out: list[Op] = []
    for op in ops:
        shift = bumped.get(op.name)
        if shift is None or not isinstance(op, LinearOp):
            out.append(op)
            continue
        bias = weights[f"{op.name}/b"] + np.int64(1 << shift)
        weights[f"{op.name}/b"] = bias
        need = log2_bound(int(np.abs(bias).max(initial=0)))
        out.append(op if op.b_log2 is None or op.b_log2 >= need else replace(op, b_log2=need))
    return out
