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
import math
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.he import bulk, direct
from secfepas_sdk.snni.he.bulk import SparseKernels
from secfepas_sdk.snni.he.engine import HeClient, HeServer, PreparedLayer
from secfepas_sdk.snni.he.layers import ConvLayer, MatmulLayer
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.he.reply import ReplyCodec
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.ops import LinearOp, Op, OtOp
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.plan import ModelWeights, Plan, he_layer
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.privacy import layer_floods
from secfepas_sdk.snni.ring import Ring
from secfepas_sdk.snni.schedule import Step, bounded_truncations, paired_caps, schedule
from secfepas_sdk.snni.share_ops import ShareContext, run_op

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


def _no_helpers() -> float:
    return 0.0


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
            if isinstance(op, LinearOp)
        }
        # Each layer's flood (sized to the plan's budget); refuses a budget out of reach.
        self.floods = {layer.name: layer for layer in layer_floods(plan)}
        self.nl: NonlinearEngine | None = None
        self.paired = paired_caps(plan)
        self.bounded = bounded_truncations(plan)
        self.steps: list[Step] | None = None  # the schedule, once the batch size is known
        self._steps_batch = 0
        self.timings: dict[str, float] = defaultdict(float)
        self.cpu_timings: dict[str, float] = defaultdict(float)
        # CPU-seconds of this party's helper processes so far (the edge's HE blocks)
        self.helper_cpu: Callable[[], float] = _no_helpers

    @property
    def ot_extension(self) -> str | None:
        """The OT extension of the session set up, None before :meth:`new_engine`."""
        return None if self.nl is None else self.nl.ot.extension

    def engine(self, channel: Channel) -> NonlinearEngine:
        if self.nl is None:
            raise SnniError("setup(channel) must run before infer")
        self.nl.channel = channel
        return self.nl

    def run_op(self, op: Op, xs: list[U64], ctx: ShareContext) -> U64:
        y = run_op(op, xs, ctx)
        if y.shape != op.shape:
            raise SnniError(f"op {op.name!r} produced {y.shape}, plan says {op.shape}")
        return y & self.ring.mask

    @staticmethod
    def ot_for(op: Op, nl: NonlinearEngine) -> AbstractContextManager[None]:
        """The op's public choice of SoftSpokenOT k (plan attr ``ot_k``), if any."""
        if isinstance(op, OtOp) and op.ot_k is not None:
            return nl.using_ot_k(op.ot_k)
        return nullcontext()

    def new_engine(
        self, channel: Channel, party: Party, prg: Prg, ot_extension: str | None
    ) -> NonlinearEngine:
        self.nl = NonlinearEngine(
            channel,
            party=party,
            ring=self.ring,
            prg=prg,
            extra_ot_k=self.plan.ot_ks,
            ot_extension=ot_extension,
        )
        self.nl.setup()
        return self.nl

    def execute(self, x: U64, channel: Channel, linear: Callable[[LinearOp, U64], U64]) -> U64:
        nl = self.engine(channel)
        ctx = ShareContext(
            ring=self.ring,
            nl=nl,
            linear=linear,
            paired_caps=self.paired,
            bounded_truncations=self.bounded,
        )
        env = {self.plan.input_name: x}
        self.timings.clear()
        self.cpu_timings.clear()
        if self.steps is None or self._steps_batch != nl.batch_size:
            self.steps = schedule(self.plan.ops, nl.batch_size, self.bounded)
            self._steps_batch = nl.batch_size
        for step in self.steps:
            op = step[0]
            t0, c0 = time.perf_counter(), time.process_time() + self.helper_cpu()
            with channel.label(op.kind), self.ot_for(op, nl):
                if len(step) == 1:
                    env[op.output] = self.run_op(op, [env[i] for i in op.inputs], ctx)
                else:
                    env.update(self.run_joint(step, env, ctx))
            self.timings[op.kind] += time.perf_counter() - t0
            self.cpu_timings[op.kind] += time.process_time() + self.helper_cpu() - c0
        return env[self.plan.output]

    def run_joint(self, step: Step, env: dict[str, U64], ctx: ShareContext) -> dict[str, U64]:
        """Element-wise ops of one signature as one call on their inputs laid end to
        end (snni.schedule): one set of flights for all of them."""
        flat = np.concatenate([env[op.inputs[0]].reshape(-1) for op in step])
        # The handlers of groupable kinds read only the op's attributes, never its shape.
        y = run_op(step[0], [flat], ctx) & self.ring.mask
        out: dict[str, U64] = {}
        start = 0
        for op in step:
            size = math.prod(op.shape)
            out[op.output] = y[start : start + size].reshape(op.shape)
            start += size
        return out


class ClientRuntime:
    """Camera side: holds the image and the HE secret key; learns only the logits."""

    def __init__(self, plan: Plan, *, prg: Prg | None = None) -> None:
        self.plan = plan
        self._prg = prg or Prg()
        self._run = _Runner(plan)
        self._he: HeClient | None = None
        self._codecs: dict[str, ReplyCodec] = {}  # per layer, once the HE client exists

    def setup(self, channel: Channel, *, ot_extension: str | None = None) -> None:
        """Once per session: send the HE public key, run the base OTs and the OT
        extension's setup (``ot_extension``: the session's choice, the same on both
        sides; None is the library default, ``snni.ot.extension.DEFAULT_EXTENSION``)."""
        r = self._run
        if self._he is None:
            self._he = HeClient(r.params, r.ring)
        self._he.setup(channel)
        r.new_engine(channel, Party.CLIENT, self._prg.fork(), ot_extension)

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
        codecs = self._codecs

        def linear(op: LinearOp, share: U64) -> U64:
            layer = r.layers[op.name]
            codec = codecs.get(op.name)
            fmt = r.floods[op.name].reply
            if codec is None and fmt is not None:
                codec = codecs[op.name] = he.codec(layer.layout, fmt)
            return he.linear(channel, layer.layout, layer.pack(share), codec).reshape(op.shape)

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

    @property
    def cpu_timings(self) -> dict[str, float]:
        """This process's CPU-seconds per op kind in the last inference (diagnostics)."""
        return dict(self._run.cpu_timings)

    @property
    def ot_extension(self) -> str | None:
        """The OT extension this session runs (None before setup)."""
        return self._run.ot_extension

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
        r.helper_cpu = self._block_cpu
        self._prepared: dict[str, PreparedLayer] = {}
        self._bias: dict[str, U64] = {}
        linear = [op for op in plan.ops if isinstance(op, LinearOp)]
        cached = self._cache_policy(linear, cache_bytes)
        for op in linear:
            layer = r.layers[op.name]
            w = weights.arrays[f"{op.name}/w"]
            sparse: SparseKernels | None = None
            if isinstance(layer, ConvLayer):
                source, sparse = layer.kernel_views(w)
            else:
                source = layer.kernel_source(w)
            self._prepared[op.name] = self._he.prepare(
                layer.layout,
                source,
                2.0**op.l1_log2,
                cache=op.name in cached,
                flood_bits=r.floods[op.name].flood_bits,
                reply=r.floods[op.name].reply,
                sparse=sparse,
            )
            bias = r.ring.from_signed(weights.arrays[f"{op.name}/b"])
            self._bias[op.name] = bias.reshape((-1,) + (1,) * (len(op.shape) - 1))

    def _cache_policy(self, linear: list[LinearOp], cache_bytes: int) -> set[str]:
        """The layers whose kernels are pre-encoded, while they fit in ``cache_bytes``.
        Public data only. A layer whose direct products beat even cached SEAL products
        is never cached (the cache would buy nothing); layers that the direct path
        serves well uncached come after every layer that has no such path (caching
        saves them less); within each group the dearest to NTT per inference first
        (per byte, since every kernel plaintext has the same size), then plan order."""
        r = self._run
        per_kernel = (len(r.params.coeff_bits) - 1) * r.params.poly_degree * 8

        def rank(op: LinearOp) -> tuple[bool, float] | None:
            layer = r.layers[op.name]
            l1 = 2.0**op.l1_log2
            support = layer.support_size if isinstance(layer, ConvLayer) else None
            if support is not None and direct.worth_it(support, l1, r.params, cached=True):
                return None
            direct_uncached = support is not None and direct.worth_it(
                support, l1, r.params, cached=False
            )
            return direct_uncached, -bulk.kernel_cost_ms(support, l1, r.params)

        ranked = [(key, op) for op in linear if (key := rank(op)) is not None]
        cached: set[str] = set()
        budget = cache_bytes
        for _key, op in sorted(ranked, key=lambda pair: pair[0]):
            cost = r.layers[op.name].layout.n_kernels * per_kernel
            if cost <= budget:
                cached.add(op.name)
                budget -= cost
        return cached

    def after_fork(self) -> None:
        """Call first in a process forked from the one that built this runtime: the
        encoded weights stay shared (copy-on-write), the randomness does not."""
        self._prg = Prg()
        self._he.after_fork()

    def _block_cpu(self) -> float:
        pool = self._he.pool
        return 0.0 if pool is None else pool.cpu_seconds()

    @property
    def he(self) -> HeServer:
        """The edge's HE party. A pool set as ``he.pool`` splits its layer calls across
        processes (the edge's ``he_workers``); the shares stay the same."""
        return self._he

    def setup(self, channel: Channel, *, ot_extension: str | None = None) -> None:
        """Once per session (see :meth:`ClientRuntime.setup`; the same ``ot_extension``)."""
        r = self._run
        self._he.setup(channel)
        r.new_engine(channel, Party.SERVER, self._prg.fork(), ot_extension)

    def infer(self, channel: Channel) -> None:
        """Serve one inference; the server learns nothing about input or output."""
        r = self._run
        he = self._he

        def linear(op: LinearOp, share: U64) -> U64:
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

    @property
    def cpu_timings(self) -> dict[str, float]:
        """CPU-seconds per op kind of this process and its HE block
        processes (``he.pool``) in the last inference (diagnostics)."""
        return dict(self._run.cpu_timings)

    @property
    def ot_extension(self) -> str | None:
        """The OT extension this session runs (None before setup)."""
        return self._run.ot_extension

    def close(self) -> None:
        self._he.close()
