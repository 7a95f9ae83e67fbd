"""`secfepas model inspect`: what a package costs, per layer, before any deployment.

Everything is derived from the public part (the plan and the manifest):

- per layer: op, shapes, parameter count and memory, activation memory (one
  party's uint64 share), ReLU and comparison counts;
- HE (linear layers): polynomial products, ciphertexts up and down, from the
  plan's pinned packing; bytes = count x the size of one ciphertext each way,
  measured once on a one-ciphertext layer with the package's HE parameters;
- OT (non-linear layers): each op runs for real between two in-memory parties
  on a slice of its tensor (same attributes, fewer channels or elements); its
  OTs and bytes each way are scaled by the elements; rounds are not (they do
  not grow with the tensor), except that the engine runs a large tensor in
  batches of ``batch_size`` elements, one after another, and each batch costs
  the rounds of one: the probe counts the rounds of each batched call and adds
  those of the batches the whole tensor needs beyond the slice's.

So the estimate is a measured cost model, not a formula; tests hold it to a
real two-party run. Nothing here needs, or reads, the weights.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from secfepas_sdk.models.package import PublicModel, load_public
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.he.blobs import REPLY_CHUNK
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.he.reply import ReplyCodec
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.ops import LinearOp, MaxPool, Op, OtOp, Relu, ReluTruncate
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.plan import Plan, he_layer
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.privacy import budget_inferences, inference_distance_log2, layer_floods
from secfepas_sdk.snni.schedule import bounded_truncations, paired_caps, schedule
from secfepas_sdk.snni.share_ops import ShareContext, run_op

__all__ = ["LayerCost", "inspect_package"]

PROBE_ELEMENTS = 1 << 13
PROBED = ("ots", "bytes_up", "bytes_down", "rounds")  # None (and setup None) without probes
_OT_METHODS = {  # OtSession method -> how many OTs one call makes
    "rot_send": lambda a: int(a[1]),
    "rot_send_random": lambda a: int(a[1]),
    "chosen_send": lambda a: int(np.asarray(a[1]).size),
    "cot_send": lambda a: int(np.asarray(a[1]).size),
}


@dataclass(slots=True)
class LayerCost:
    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int = 0
    param_bytes: int = 0
    activation_bytes: int = 0
    relus: int = 0
    comparisons: int = 0
    he_products: int = 0
    ct_up: int = 0
    ct_down: int = 0
    ots: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    rounds: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__ if k != "extra"}
        out["in_shape"], out["out_shape"] = list(self.in_shape), list(self.out_shape)
        return {**out, **self.extra}


def _counts(op: Op, in_shape: tuple[int, ...]) -> tuple[int, int]:
    """(ReLUs, comparisons) of one op: a capped ReLU (ReLU6) is two ReLUs; a
    max-pool output compares its window (kh kw - 1 comparisons)."""
    n = math.prod(op.shape)
    if isinstance(op, Relu | ReluTruncate):
        relus = n * (2 if op.cap is not None else 1)
        return relus, relus
    if isinstance(op, MaxPool):
        return 0, n * (op.kernel[0] * op.kernel[1] - 1)
    return 0, 0


def _probe_op(op: OtOp, in_shape: tuple[int, ...]) -> tuple[OtOp, tuple[int, ...], float]:
    """A slice of ``op`` (fewer channels, or fewer elements if elementwise) and the
    factor that scales its cost back to the whole op."""
    if isinstance(op, MaxPool):
        c, h, w = in_shape
        cs = max(1, min(c, math.ceil(PROBE_ELEMENTS / (h * w))))
        return replace(op, shape=(cs, *op.shape[1:])), (cs, h, w), c / cs
    n = math.prod(op.shape)
    m = min(n, PROBE_ELEMENTS)
    return replace(op, shape=(m,)), (m,), n / m


class _Probe:
    """Two in-memory parties with the package's ring, OT and HE settings."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ring = plan.ring
        self.params = get_params(plan.he_params)
        self.setup_up = self.setup_down = self.setup_rounds = 0
        self._engines: dict[Party, NonlinearEngine] = {}
        self._he: tuple[HeClient, HeServer] | None = None
        self.ots = 0
        self._lock = threading.Lock()
        self.paired = paired_caps(plan)
        self.bounded = bounded_truncations(plan)

    def __enter__(self) -> _Probe:
        client, server = HeClient(self.params, self.ring), HeServer(self.params, self.ring)
        self._he = (client, server)

        def side(party: Party, he: Any) -> Any:
            def run(ch: Channel) -> Any:
                he.setup(ch)
                nl = NonlinearEngine(
                    ch, party=party, ring=self.ring, prg=Prg(), extra_ot_k=self.plan.ot_ks
                )
                nl.setup()
                self._engines[party] = nl
                return ch.stats

            return run

        stats, _ = run_pair(side(Party.CLIENT, client), side(Party.SERVER, server))
        self.setup_up, self.setup_down = stats.bytes_sent, stats.bytes_received
        self.setup_rounds = stats.rounds
        for engine in self._engines.values():
            self._count_ots(engine)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._he is not None:
            for party in self._he:
                party.close()

    def _count_ots(self, nl: NonlinearEngine) -> None:
        """Count OTs at every sender call, on both sides (each OT has one)."""
        sessions = getattr(nl, "_ots", None)
        if not isinstance(sessions, dict):
            return
        proxies = {k: _CountingSession(v, self) for k, v in sessions.items()}
        sessions.update(proxies)
        nl.ot = next(p for p in proxies.values() if p.inner is nl.ot)  # type: ignore[assignment]

    @property
    def batch_size(self) -> int:
        """The engines' batch size (both parties': the schedule depends on it)."""
        return self._engines[Party.CLIENT].batch_size

    def add_ots(self, count: int) -> None:
        with self._lock:
            self.ots += count

    def nonlinear(self, op: OtOp, in_shape: tuple[int, ...]) -> tuple[int, int, int, int, bool]:
        """(OTs, bytes up, bytes down, rounds, whether the camera sent last) of ``op``
        on random shares."""
        probe, shape, scale = _probe_op(op, in_shape)
        x = self.ring.random(Prg(), shape)
        x0, x1 = self.ring.share(x, Prg())

        def side(party: Party, share: Any) -> Any:
            def run(ch: Channel) -> Any:
                nl = self._engines[party]
                nl.channel = ch
                ctx = ShareContext(
                    ring=self.ring,
                    nl=nl,
                    linear=_no_linear,
                    paired_caps=self.paired,
                    bounded_truncations=self.bounded,
                )
                k = probe.ot_k
                with nl.using_ot_k(k) if k is not None else _null():
                    run_op(probe, [share], ctx)
                return ch.stats, ch.owes_round

            return run

        before = self.ots
        with _BatchRounds(self._engines[Party.CLIENT]) as calls:
            (stats, owes), _ = run_pair(side(Party.CLIENT, x0), side(Party.SERVER, x1))
        ots = self.ots - before
        return (
            round(ots * scale),
            round(stats.bytes_sent * scale),
            round(stats.bytes_received * scale),
            stats.rounds + calls.extra_rounds(scale),
            owes,
        )

    def ciphertext_bytes(self) -> tuple[float, float, int, bool]:
        """(bytes per ciphertext up, per ciphertext down, rounds, whether the camera
        sent last) of one HE layer, from a 1-ciphertext and a 2-ciphertext probe (the
        slope drops framing)."""
        assert self._he is not None
        client, server = self._he
        n = self.params.poly_degree
        results = []
        for channels in (1, 2):
            side = math.isqrt(n) - 2  # one channel fills about one ciphertext
            spec = ConvSpec(in_shape=(channels, side, side), out_channels=channels, kernel=(1, 1))
            layer = ConvLayer(spec, n, {"cp": 1, "th": side, "tw": side, "no": 1})
            w = np.eye(channels, dtype=np.int64).reshape(channels, channels, 1, 1)
            prepared = server.prepare(layer.layout, layer.kernel_polys(w), 1.0)
            x0, x1 = self.ring.share(self.ring.random(Prg(), spec.in_shape), Prg())

            def cl(ch: Channel, lay: Any = layer, s: Any = x0) -> Any:
                client.linear(ch, lay.layout, lay.pack(s))
                return ch.stats, ch.owes_round

            def sv(ch: Channel, p: Any = prepared, lay: Any = layer, s: Any = x1) -> None:
                server.linear(ch, p, lay.pack(s))

            (stats, owes), _ = run_pair(cl, sv)
            results.append((layer.layout, stats))
        (l1, s1), (l2, s2) = results
        up = (s2.bytes_sent - s1.bytes_sent) / max(l2.n_in - l1.n_in, 1)
        down = (s2.bytes_received - s1.bytes_received) / max(l2.n_out - l1.n_out, 1)
        return up, down, s1.rounds, owes


class _BatchRounds:
    """Records each batched call of one engine (the camera's: rounds are counted
    there) while a probe runs: its elements, protocol rows per element and the rounds
    it took."""

    def __init__(self, nl: NonlinearEngine) -> None:
        self.nl = nl
        self.calls: list[tuple[int, int, int]] = []

    def __enter__(self) -> _BatchRounds:
        inner = self.nl._batched

        def batched(x: Any, op: Any, rows: int = 1) -> Any:
            before = self.nl.channel.stats.rounds
            out = inner(x, op, rows)
            self.calls.append((int(x.size), rows, self.nl.channel.stats.rounds - before))
            return out

        setattr(self.nl, "_batched", batched)  # noqa: B010 - a probe-only instance patch
        return self

    def __exit__(self, *exc: object) -> None:
        delattr(self.nl, "_batched")

    def extra_rounds(self, scale: float) -> int:
        """The rounds of the batches the whole op (``scale`` x each call) adds."""
        extra = 0.0
        for elements, rows, rounds in self.calls:
            size = self.nl.batch_size // rows  # the engine's elements per batch
            have = max(1, -(-elements // size))
            need = max(1, -(-round(elements * scale) // size))
            extra += rounds * (need - have) / have
        return round(extra)


class _CountingSession:
    """An OtSession that counts the OTs its sender calls make (probe only)."""

    def __init__(self, inner: Any, probe: _Probe) -> None:
        self.inner, self._probe = inner, probe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        count = _OT_METHODS.get(name)
        if count is None:
            return attr

        def counted(*a: Any) -> Any:
            self._probe.add_ots(count(a))
            return attr(*a)

        return counted


def _no_linear(op: LinearOp, share: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("probes run non-linear ops only")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _trimmed_reply_bytes(plan: Plan) -> dict[str, int]:
    """Exact edge->camera bytes of each HE layer whose replies go trimmed (he.reply):
    their sizes follow from the plan (q0 has last_bits bits), framing included."""
    params = get_params(plan.he_params)
    shapes = plan.shapes
    floods = {f.name: f for f in layer_floods(plan)}
    out = {}
    for op in plan.ops:
        fmt = floods[op.name].reply if isinstance(op, LinearOp) else None
        if fmt is None or not isinstance(op, LinearOp):
            continue
        layout = he_layer(op, shapes[op.inputs[0]], params.poly_degree).layout
        codec = ReplyCodec(layout, (1 << params.last_bits) - 1, fmt)
        messages = -(-layout.n_out // REPLY_CHUNK)
        out[op.name] = sum(codec.size(k) for k in range(layout.n_out)) + 4 * (
            messages + layout.n_out
        )
    return out


def inspect_package(path: str | Path, *, probe: bool = True) -> dict[str, Any]:
    """The cost report of a package (public part only); ``probe=False`` gives the
    counts only (no two-party probe runs): OTs, bytes and rounds are None, per
    layer and in total, and so is the setup."""
    model = load_public(path)
    return inspect_public(model, probe=probe)


def inspect_public(model: PublicModel, *, probe: bool = True) -> dict[str, Any]:
    plan, manifest = model.plan, model.manifest
    params = get_params(plan.he_params)
    shapes = plan.shapes
    layers: list[LayerCost] = []
    for op in plan.ops:
        in_shape = tuple(shapes[op.inputs[0]])
        cost = LayerCost(name=op.name, kind=op.kind, in_shape=in_shape, out_shape=op.shape)
        cost.activation_bytes = math.prod(op.shape) * 8
        cost.relus, cost.comparisons = _counts(op, in_shape)
        if isinstance(op, LinearOp):
            w = math.prod(op.weight_shape(in_shape)) + math.prod(op.shape[:1])
            cost.params, cost.param_bytes = w, w * 8
            layout = he_layer(op, in_shape, params.poly_degree).layout
            cost.he_products, cost.ct_up, cost.ct_down = layout.n_mul, layout.n_in, layout.n_out
        layers.append(cost)
    setup = {"bytes_up": 0, "bytes_down": 0, "rounds": 0}
    # The edge's output share costs a round unless the camera's last protocol step was
    # a receive (then it rides in that flight: a plan ending in a truncation).
    output_rounds = 1
    if probe:
        with _Probe(plan) as p:
            setup = {"bytes_up": p.setup_up, "bytes_down": p.setup_down, "rounds": p.setup_rounds}
            up, down, he_rounds, he_owes = p.ciphertext_bytes()
            replies = _trimmed_reply_bytes(plan)
            owes: dict[str, bool] = {}
            for op, cost in zip(plan.ops, layers, strict=True):
                if isinstance(op, LinearOp):
                    cost.bytes_up, cost.bytes_down = (
                        round(cost.ct_up * up),
                        replies.get(op.name, round(cost.ct_down * down)),
                    )
                    cost.rounds = he_rounds
                    owes[op.name] = he_owes
                elif isinstance(op, OtOp):
                    cost.ots, cost.bytes_up, cost.bytes_down, cost.rounds, owes[op.name] = (
                        p.nonlinear(op, cost.in_shape)
                    )
            # Ops that share a call (snni.schedule) share its flights: the group's first
            # op carries its rounds (the group fits one batch, as the op alone does).
            by_name = {c.name: c for c in layers}
            steps = schedule(plan.ops, p.batch_size, p.bounded)
            for step in steps:
                for op in step[1:]:
                    by_name[op.name].rounds = 0
            last = [s[0].name for s in steps if s[0].name in owes]
            if last:
                output_rounds = int(owes[last[-1]])
    out_elems = math.prod(plan.output_shape)
    totals = {
        key: sum(getattr(c, key) for c in layers)
        for key in ("params", "param_bytes", "relus", "comparisons", "he_products", "ct_up",
                    "ct_down", "ots", "bytes_up", "bytes_down", "rounds")
    }  # fmt: skip
    totals["bytes_down"] += out_elems * 8  # the edge's share of the logits
    totals["rounds"] += output_rounds
    totals["peak_activation_bytes"] = max((c.activation_bytes for c in layers), default=0)
    report_layers = [c.as_dict() for c in layers]
    report_totals: dict[str, int | None] = dict(totals)
    report_setup: dict[str, int] | None = setup
    if not probe:  # unmeasured, not zero: a 0 would read as "1 round, 0.0 MB"
        unmeasured: dict[str, int | None] = dict.fromkeys(PROBED, None)
        for row in report_layers:
            row.update(unmeasured)
        report_totals.update(unmeasured)
        report_setup = None
    return {
        "model": manifest.fingerprint,
        "ring": {"bits": plan.ring_bits, "frac_bits": plan.frac_bits},
        "he": {
            "params": params.name,
            "poly_degree": params.poly_degree,
            "coeff_bits": list(params.coeff_bits),
            "security_bits": params.security_bits,
        },
        "preprocess": manifest.preprocess.model_dump(mode="json"),
        "circuit_privacy": {
            **manifest.circuit_privacy.model_dump(mode="json"),
            "sized": plan.circuit_privacy is not None,  # else flooded at the most
            "distance_log2_per_inference": round(inference_distance_log2(plan), 2),
            "inferences_covered": budget_inferences(plan, manifest.circuit_privacy.engine),
        },
        "layers": report_layers,
        "per_inference": report_totals,
        "setup": report_setup,
        "estimated": probe,
    }
