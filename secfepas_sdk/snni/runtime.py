"""Run a public Plan between the camera (ClientRuntime) and the edge (ServerRuntime).

Who holds what: the client holds the image and the HE secret key and learns
only the logits; the server holds the quantised weights and learns nothing.
Between ops every activation is additively shared mod 2^l. The client's
initial share is the encoded image and the server's is zero: the server only
ever sees the client's share encrypted, and the non-linear protocols hide it
too. Linear ops (conv, gemm) use the HE protocol of :mod:`snni.he.engine`;
ReLU, truncation and max-pool use the OT-based NonlinearEngine; add, concat,
reshape and average pooling (a sum times a public constant) are local. At the
end the server sends its output share; only the client reconstructs.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.he.engine import HeClient, HeServer, PreparedLayer
from secfepas_sdk.snni.he.layers import ConvLayer, MatmulLayer
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.plan import LINEAR_KINDS, ModelWeights, Op, Plan, he_layer
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

U64 = NDArray[np.uint64]
log = logging.getLogger(__name__)

# NTT-form weight plaintexts kept in RAM; past this, kernels are NTT'd per inference.
# The edge passes EdgeSettings.he_cache_bytes; this is the default for other callers.
DEFAULT_CACHE_BYTES = 512 << 20


def softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """The client's post-processing when the model ended in Softmax."""
    z = logits - logits.max()
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum()
    return out


def avgpool_divisors(op: Op, in_shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Per-output-position element counts of an AveragePool (ONNX semantics)."""
    _, h, w = in_shape
    _, ho, wo = op.shape
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    pt, pl, pb, pr = op.attrs["pads"]
    eb, er = op.attrs.get("ceil_pads", [0, 0])

    def counts(size: int, k: int, s: int, p0: int, p1: int, extra: int, n: int) -> NDArray[Any]:
        start = np.arange(n) * s - p0
        end = start + k
        if op.attrs["count_include_pad"]:
            lo, hi = -p0, size + p1 - extra
        else:
            lo, hi = 0, size
        out: NDArray[Any] = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)
        return out

    ch = counts(h, kh, sh, pt, pb, eb, ho)
    cw = counts(w, kw, sw, pl, pr, er, wo)
    div: NDArray[np.float64] = np.maximum(ch[:, None] * cw[None, :], 1).astype(np.float64)
    return div


def _window_sum(x: U64, op: Op) -> U64:
    c, h, w = x.shape
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["stride"]
    pt, pl, pb, pr = op.attrs["pads"]
    big = np.zeros((c, h + pt + pb, w + pl + pr), dtype=np.uint64)
    big[:, pt : pt + h, pl : pl + w] = x
    win = np.lib.stride_tricks.sliding_window_view(big, (kh, kw), axis=(1, 2))
    _, ho, wo = op.shape
    out: U64 = win[:, ::sh, ::sw][:, :ho, :wo].sum(axis=(3, 4), dtype=np.uint64)
    return out


def _separable_maxpool(
    nl: NonlinearEngine,
    x: U64,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    bound_bits: int | None = None,
    drop_bits: int = 0,
) -> U64:
    """Max over rows, then over columns: max is separable, and for a 3x3 stride-2
    pool this needs 6 instead of 8 comparisons per output (padding stays ignored).
    ``bound_bits``/``drop_bits`` come from the plan (see snni.bounds, compile)."""
    (kh, kw), (sh, sw), (t, left, b, r) = kernel, stride, pads
    ho = (x.shape[1] + t + b - kh) // sh + 1
    direct = (kh * kw - 1) * ho
    separable = (kw - 1) * x.shape[1] + (kh - 1) * ho  # both per output column
    opts: dict[str, Any] = {"bound_bits": bound_bits, "drop_bits": drop_bits}
    if kh == 1 or kw == 1 or separable >= direct:
        out: U64 = nl.maxpool2d(x[None], kernel, stride, pads, **opts)[0]
        return out
    rows = nl.maxpool2d(x[None], (1, kw), (1, sw), (0, left, 0, r), **opts)
    out = nl.maxpool2d(rows, (kh, 1), (sh, 1), (t, 0, b, 0), **opts)[0]
    return out


class _Runner:
    """What both parties do identically: layouts and local ops on shares."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ring: Ring = plan.ring
        self.params = get_params(plan.he_params)
        self.shapes = plan.shapes
        self.layers: dict[str, ConvLayer | MatmulLayer] = {
            op.name: he_layer(op, self.shapes[op.inputs[0]], self.params.poly_degree)
            for op in plan.ops
            if op.kind in LINEAR_KINDS
        }
        self.nl: NonlinearEngine | None = None
        self.timings: dict[str, float] = defaultdict(float)

    def engine(self, channel: Channel) -> NonlinearEngine:
        if self.nl is None:
            raise SnniError("setup(channel) must run before infer")
        self.nl.channel = channel
        return self.nl

    def run_op(self, op: Op, xs: list[U64], nl: NonlinearEngine, linear: Any) -> U64:
        ring = self.ring
        k = op.kind
        if k in LINEAR_KINDS:
            y: U64 = linear(op, xs[0])
        elif k == "truncate":
            y = nl.truncate(xs[0], int(op.attrs["shift"]))
        elif k == "relu":
            y = nl.relu(xs[0], bound_bits=op.attrs.get("bound_bits"))
            y = self.cap(y, op, nl)
        elif k == "relu_truncate":
            y = nl.relu_truncate(xs[0], int(op.attrs["shift"]))
            y = self.cap(y, op, nl)
        elif k == "maxpool":
            kh, kw = op.attrs["kernel"]
            sh, sw = op.attrs["stride"]
            t, left, b, r = op.attrs["pads"]
            y = _separable_maxpool(
                nl, xs[0], (kh, kw), (sh, sw), (t, left, b, r),
                op.attrs.get("bound_bits"), int(op.attrs.get("drop_bits", 0)),
            )  # fmt: skip
        elif k == "avgpool":
            counts = avgpool_divisors(op, self.shapes[op.inputs[0]])
            consts = ring.reduce(np.rint(2.0 ** int(op.attrs["shift"]) / counts).astype(np.int64))
            y = ring.mul(_window_sum(xs[0], op), consts[None])
        elif k == "global_avgpool":
            c, h, w = xs[0].shape
            const = ring.reduce(np.int64(round(2.0 ** int(op.attrs["shift"]) / (h * w))))
            total = xs[0].reshape(c, -1).sum(axis=1, dtype=np.uint64)
            y = ring.mul(total, const).reshape(c, 1, 1)
        elif k == "add":
            y = ring.add(xs[0], xs[1])
        elif k == "shift_left":
            y = xs[0] << np.uint64(int(op.attrs["shift"]))
        elif k == "concat":
            y = np.concatenate(xs, axis=int(op.attrs["axis"]))
        elif k == "reshape":
            y = xs[0].reshape(op.shape)
        else:  # pragma: no cover - Op validates kinds
            raise SnniError(f"unknown op kind {k}")
        if y.shape != op.shape:
            raise SnniError(f"op {op.name!r} produced {y.shape}, plan says {op.shape}")
        return y & ring.mask

    def cap(self, y: U64, op: Op, nl: NonlinearEngine) -> U64:
        """min(y, c) = y - relu(y - c) for a public cap c (ReLU6); the client
        subtracts c from its share, so each party keeps a share."""
        if "cap" not in op.attrs:
            return y
        ring = self.ring
        c = np.full(y.shape, int(op.attrs["cap"]), dtype=np.uint64)
        shifted = ring.sub(y, c) if nl.party is Party.CLIENT else y
        return ring.sub(y, nl.relu(shifted & ring.mask))

    @staticmethod
    def ot_for(op: Op, nl: NonlinearEngine) -> AbstractContextManager[None]:
        """The op's public choice of SoftSpokenOT k (plan attr ``ot_k``), if any."""
        return nl.using_ot_k(int(op.attrs["ot_k"])) if "ot_k" in op.attrs else nullcontext()

    def new_engine(self, channel: Channel, party: Party, prg: Prg) -> NonlinearEngine:
        self.nl = NonlinearEngine(
            channel, party=party, ring=self.ring, prg=prg, extra_ot_k=self.plan.ot_ks
        )
        self.nl.setup()
        return self.nl

    def execute(self, x: U64, channel: Channel, linear: Any) -> U64:
        nl = self.engine(channel)
        env = {self.plan.input_name: x}
        self.timings.clear()
        for op in self.plan.ops:
            t0 = time.perf_counter()
            with channel.label(op.kind), self.ot_for(op, nl):
                env[op.output] = self.run_op(op, [env[i] for i in op.inputs], nl, linear)
            self.timings[op.kind] += time.perf_counter() - t0
        return env[self.plan.output]


class ClientRuntime:
    """Camera side: holds the image and the HE secret key; learns only the logits."""

    def __init__(self, plan: Plan, *, prg: Prg | None = None) -> None:
        self.plan = plan
        self._prg = prg or Prg()
        self._run = _Runner(plan)
        self._he: HeClient | None = None

    def setup(self, channel: Channel) -> None:
        """Once per session: send the HE public key, run the base OTs."""
        r = self._run
        if self._he is None:
            self._he = HeClient(r.params, r.ring)
        self._he.setup(channel)
        r.new_engine(channel, Party.CLIENT, self._prg.fork())

    def infer(self, channel: Channel, x: NDArray[np.float32]) -> NDArray[np.float64]:
        """Securely evaluate the model on one NCHW image; returns the logits."""
        if self._he is None:
            raise SnniError("ClientRuntime.setup(channel) must run first")
        if tuple(x.shape) != self.plan.input_shape:
            raise SnniError(f"input shape {x.shape} != plan input {self.plan.input_shape}")
        if not np.all(np.isfinite(x)):
            raise SnniError("input has NaN or infinite values")
        bound = self.plan.input_bound
        if bound is not None and float(np.abs(x).max(initial=0.0)) > bound:
            # The plan's activation bounds (both parties rely on them) assume this.
            raise SnniError(f"input exceeds the plan's public range |x| <= {bound:.4g}")
        r = self._run
        he = self._he

        def linear(op: Op, share: U64) -> U64:
            layer = r.layers[op.name]
            return he.linear(channel, layer.layout, layer.pack(share)).reshape(op.shape)

        share = r.ring.encode(np.asarray(x[0], dtype=np.float64))
        y0 = r.execute(share, channel, linear)
        with channel.label("output"):
            y1 = channel.recv_uint64(y0.shape)
        logits: NDArray[np.float64] = r.ring.decode(r.ring.add(y0, y1))
        return logits

    @property
    def timings(self) -> dict[str, float]:
        """Wall-clock seconds per op kind in the last inference (diagnostics)."""
        return dict(self._run.timings)

    def close(self) -> None:
        if self._he is not None:
            self._he.close()


class ServerRuntime:
    """Edge side: holds the weights (pre-encoded as NTT plaintexts at load time)."""

    def __init__(
        self,
        plan: Plan,
        weights: ModelWeights,
        *,
        prg: Prg | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        weights.check_against(plan)
        self.plan = plan
        self._prg = prg or Prg()
        self._run = _Runner(plan)
        r = self._run
        self._he = HeServer(r.params, r.ring, prg=self._prg.fork())
        self._prepared: dict[str, PreparedLayer] = {}
        self._bias: dict[str, U64] = {}
        per_kernel = (len(r.params.coeff_bits) - 1) * r.params.poly_degree * 8
        budget = cache_bytes
        for op in plan.ops:
            if op.kind not in LINEAR_KINDS:
                continue
            layer = r.layers[op.name]
            w = weights.arrays[f"{op.name}/w"]
            cost = layer.layout.n_kernels * per_kernel
            cache = cost <= budget
            budget -= cost if cache else 0
            self._prepared[op.name] = self._he.prepare(
                layer.layout, layer.kernel_source(w), 2.0 ** int(op.attrs["l1_log2"]), cache=cache
            )
            bias = r.ring.from_signed(weights.arrays[f"{op.name}/b"])
            self._bias[op.name] = bias.reshape((-1,) + (1,) * (len(op.shape) - 1))

    def after_fork(self) -> None:
        """Call first in a process forked from the one that built this runtime: the
        encoded weights stay shared (copy-on-write), the randomness does not."""
        self._prg = Prg()
        self._he.after_fork()

    def setup(self, channel: Channel) -> None:
        r = self._run
        self._he.setup(channel)
        r.new_engine(channel, Party.SERVER, self._prg.fork())

    def infer(self, channel: Channel) -> None:
        """Serve one inference; the server learns nothing about input or output."""
        r = self._run
        he = self._he

        def linear(op: Op, share: U64) -> U64:
            layer = r.layers[op.name]
            y = he.linear(channel, self._prepared[op.name], layer.pack(share)).reshape(op.shape)
            return r.ring.add(y, np.broadcast_to(self._bias[op.name], op.shape))

        zero = np.zeros(self.plan.input_shape[1:], dtype=np.uint64)
        y1 = r.execute(zero, channel, linear)
        with channel.label("output"):
            channel.send(y1)

    @property
    def timings(self) -> dict[str, float]:
        """Wall-clock seconds per op kind in the last inference (diagnostics)."""
        return dict(self._run.timings)

    def close(self) -> None:
        self._he.close()
