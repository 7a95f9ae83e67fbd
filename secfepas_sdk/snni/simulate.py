"""Plaintext fixed-point simulation of a Plan (no cryptography).

It runs the same integer arithmetic the secure protocols compute (weights at f
bits, products at 2f, floor truncations, average pools as a sum times a public
constant) on one party's view of the whole value. It is used to choose l and
f by measured fidelity, and to flag overflow: a value that leaves the signed
range of Z_2^l would wrap in the secure run, so the simulation reports it.
Secure truncation may be one ulp lower than floor; that is the only difference.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.plan import ModelWeights, Op, Plan, weight_shape
from secfepas_sdk.snni.runtime import avgpool_divisors

F64 = NDArray[np.float64]


class Overflow(SnniError):
    """A simulated value left the ring's signed range (the secure run would wrap)."""


def _conv(x: F64, w: F64, op: Op) -> F64:
    c, h, wd = x.shape
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    t, left, b, r = op.attrs["pads"]
    g = int(op.attrs["groups"])
    xp = np.zeros((c, h + t + b, wd + left + r))
    xp[:, t : t + h, left : left + wd] = x
    _, ho, wo = op.shape
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::sh, ::sw][:, :ho, :wo]  # (C, ho, wo, kh, kw)
    m = w.shape[0]
    cg, mg = c // g, m // g
    outs = []
    for gi in range(g):
        patch = win[gi * cg : (gi + 1) * cg]
        outs.append(np.einsum("chwij,ocij->ohw", patch, w[gi * mg : (gi + 1) * mg], optimize=True))
    out: F64 = np.concatenate(outs)
    return out


def _maxpool(x: F64, op: Op) -> F64:
    c, h, w = x.shape
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    t, left, b, r = op.attrs["pads"]
    xp = np.full((c, h + t + b, w + left + r), -np.inf)
    xp[:, t : t + h, left : left + w] = x
    _, ho, wo = op.shape
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    out: F64 = win[:, ::sh, ::sw][:, :ho, :wo].max(axis=(3, 4))
    return out


def simulate(
    plan: Plan,
    weights: ModelWeights,
    x: NDArray[np.float32],
    *,
    keep: dict[str, F64] | None = None,
) -> F64:
    """Logits of the fixed-point computation on one NCHW image (batch 1); ``keep``
    (if given) receives every tensor, in ring units (tests of snni.bounds)."""
    ring = plan.ring
    limit = float(ring.max_signed)
    shapes = plan.shapes
    f = ring.frac_bits
    env: dict[str, F64] = {
        plan.input_name: np.rint(np.asarray(x[0], np.float64) * ring.scale).clip(-limit, limit)
    }
    for op in plan.ops:
        xs = [env[i] for i in op.inputs]
        k = op.kind
        if k == "conv":
            w = weights.get(f"{op.name}/w", weight_shape(op, shapes[op.inputs[0]]))
            y = _conv(xs[0], w.astype(np.float64), op)
            y += weights.arrays[f"{op.name}/b"].astype(np.float64)[:, None, None]
        elif k == "gemm":
            w = weights.get(f"{op.name}/w", weight_shape(op, shapes[op.inputs[0]]))
            y = w.astype(np.float64) @ xs[0].reshape(-1)
            y += weights.arrays[f"{op.name}/b"].astype(np.float64)
        elif k == "truncate":
            y = np.floor(xs[0] / 2.0 ** int(op.attrs["shift"]))
        elif k == "relu":
            y = np.maximum(xs[0], 0.0)
        elif k == "relu_truncate":
            y = np.maximum(np.floor(xs[0] / 2.0 ** int(op.attrs["shift"])), 0.0)
        elif k == "maxpool":
            y = _maxpool(xs[0], op)
        elif k == "avgpool":
            counts = avgpool_divisors(op, shapes[op.inputs[0]])
            consts = np.rint(2.0 ** int(op.attrs["shift"]) / counts)
            kh, kw = op.attrs["kernel"]
            sh, sw = op.attrs["stride"]
            t, left, b, r = op.attrs["pads"]
            c, h, wd = xs[0].shape
            xp = np.zeros((c, h + t + b, wd + left + r))
            xp[:, t : t + h, left : left + wd] = xs[0]
            win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
            _, ho, wo = op.shape
            y = win[:, ::sh, ::sw][:, :ho, :wo].sum(axis=(3, 4)) * consts[None]
        elif k == "global_avgpool":
            c, h, wd = xs[0].shape
            const = round(2.0 ** int(op.attrs["shift"]) / (h * wd))
            y = xs[0].reshape(c, -1).sum(axis=1).reshape(c, 1, 1) * const
        elif k == "add":
            y = xs[0] + xs[1]
        elif k == "shift_left":
            y = xs[0] * 2.0 ** int(op.attrs["shift"])
        elif k == "concat":
            y = np.concatenate(xs, axis=int(op.attrs["axis"]))
        elif k == "reshape":
            y = xs[0].reshape(op.shape)
        else:  # pragma: no cover
            raise SnniError(f"unknown op {k}")
        if k in ("relu", "relu_truncate") and "cap" in op.attrs:
            y = np.minimum(y, float(op.attrs["cap"]))
        if np.abs(y).max(initial=0.0) > limit:
            raise Overflow(f"op {op.name!r} ({k}) overflows Z_2^{ring.bits}")
        if np.abs(y).max(initial=0.0) >= 2.0**52:
            raise Overflow(f"op {op.name!r} exceeds exact float64 simulation")
        env[op.output] = y
    if keep is not None:
        keep.update(env)
    out: F64 = env[plan.output] / 2.0**f
    return out
