"""snni.schedule: independent non-linear ops of one signature share a call (and so
their flights), in an order that still runs every op after its inputs; capped ReLUs
run both comparisons in one call where the plan's bounds allow, bit for bit as before;
truncations the plan bounds in [-2^(l-2), 2^(l-2)) take the top-bit wrap, and never
share a call with the others."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.ops import Add, Op, Relu, ReluTruncate, Truncate
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring
from secfepas_sdk.snni.schedule import bounded_truncations, paired_caps, schedule
from secfepas_sdk.snni.share_ops import ShareContext, run_op

RING = Ring(bits=37, frac_bits=12)


@st.composite
def dags(draw: st.DrawFn) -> list[Op]:
    """Random op lists over (n,) tensors: local adds and three groupable kinds."""
    tensors = ["x"]
    sizes = {"x": 8}
    ops: list[Op] = []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["rt", "rt", "trunc", "relu", "add"]))
        a = draw(st.sampled_from(tensors))
        out = f"t{i}"
        if kind == "add":
            b = draw(st.sampled_from([t for t in tensors if sizes[t] == sizes[a]]))
            op: Op = Add(name=f"o{i}", inputs=(a, b), output=out, shape=(sizes[a],))
        elif kind == "rt":
            op = ReluTruncate(name=f"o{i}", inputs=(a,), output=out, shape=(sizes[a],), shift=12)
        elif kind == "trunc":
            op = Truncate(name=f"o{i}", inputs=(a,), output=out, shape=(sizes[a],), shift=12)
        else:
            op = Relu(name=f"o{i}", inputs=(a,), output=out, shape=(sizes[a],))
        ops.append(op)
        tensors.append(out)
        sizes[out] = sizes[a]
    return ops


@settings(max_examples=200, deadline=None)
@given(dags(), st.sampled_from([8, 16, 24, 1 << 18]))
def test_schedule_keeps_every_op_after_its_inputs(ops: list[Op], batch: int) -> None:
    steps = schedule(ops, batch)
    flat = [op for step in steps for op in step]
    assert sorted(op.name for op in flat) == sorted(op.name for op in ops)
    ready = {"x"}
    for step in steps:
        assert all(i in ready for op in step for i in op.inputs)  # members independent
        if len(step) > 1:
            assert len({(type(op), getattr(op, "shift", None)) for op in step}) == 1
            assert sum(math.prod(op.shape) for op in step) <= batch
        ready |= {op.output for op in step}
    assert schedule(ops, batch) == steps  # both parties derive the same


def _fire_onnx() -> bytes:
    """A SqueezeNet Fire module: squeeze 1x1, then expand 1x1 and expand 3x3 (each with
    its ReLU) concatenated, then a global average pool."""
    rng = np.random.default_rng(11)
    w = {
        "ws": rng.standard_normal((4, 3, 1, 1)) * 0.5,
        "w1": rng.standard_normal((4, 4, 1, 1)) * 0.5,
        "w3": rng.standard_normal((4, 4, 3, 3)) * 0.3,
    }
    nodes = [
        helper.make_node("Conv", ["x", "ws"], ["s"], name="squeeze"),
        helper.make_node("Relu", ["s"], ["rs"], name="relu_s"),
        helper.make_node("Conv", ["rs", "w1"], ["e1"], name="expand1"),
        helper.make_node("Relu", ["e1"], ["r1"], name="relu_1"),
        helper.make_node("Conv", ["rs", "w3"], ["e3"], name="expand3", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["e3"], ["r3"], name="relu_3"),
        helper.make_node("Concat", ["r1", "r3"], ["c"], name="concat", axis=1),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "fire",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def test_fire_module_expands_share_one_call() -> None:
    # Unfused: the two expands stay two convs (with fusion they are one, snni/compile/siblings).
    plan, _ = compile_onnx(onnx.load_from_string(_fire_onnx()), fuse=False)
    steps = schedule(plan.ops, 1 << 18)
    kinds = [tuple(op.kind for op in step) for step in steps]
    joint = [step for step in steps if len(step) > 1]
    assert len(joint) == 1 and [op.kind for op in joint[0]] == ["relu_truncate"] * 2
    # Both expand convs run before the joint ReLUs, the concat after.
    at = kinds.index(("relu_truncate", "relu_truncate"))
    assert kinds[:at].count(("conv",)) == 3 and ("concat",) in kinds[at:]
    # Too small a batch for both: each runs on its own.
    assert all(len(s) == 1 for s in schedule(plan.ops, 255))


def _run(fn: Callable[[NonlinearEngine, Any], Any], shares: tuple[Any, Any]) -> Any:
    def party(who: Party, share: Any) -> Callable[[Channel], Any]:
        def go(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=RING)
            engine.setup()
            return fn(engine, share)

        return go

    a, b = run_pair(party(Party.CLIENT, shares[0]), party(Party.SERVER, shares[1]))
    return RING.to_signed(RING.add(a, b))


def test_paired_cap_equals_the_sequential_one_bit_for_bit() -> None:
    """Same shares in, same result out: relu(t) - relu(t - c) against min(relu(t), c)."""
    cap, s = 6 << 12, 12
    op = ReluTruncate(name="r6", inputs=("x",), output="y", shape=(64,), shift=s, cap=cap)
    rng = np.random.default_rng(12)
    raw = rng.integers(-(1 << 28), 1 << 28, 64)
    raw[:10] = [0, 1, -1, cap << s, (cap << s) - 1, (cap << s) + 1, 1 << s, -(1 << s), 5, -5]
    shares = RING.share(RING.from_signed(raw), Prg())

    def via(paired: frozenset[str]) -> Callable[[NonlinearEngine, Any], Any]:
        def fn(nl: NonlinearEngine, x: Any) -> Any:
            ctx = ShareContext(ring=RING, nl=nl, linear=lambda o, v: v, paired_caps=paired)
            return run_op(op, [x], ctx)

        return fn

    seq = _run(via(frozenset()), shares)
    par = _run(via(frozenset({"r6"})), shares)
    np.testing.assert_array_equal(par, seq)
    err = par - np.clip(raw >> s, 0, cap)
    assert set(np.unique(err).tolist()) <= {-1, 0}


def _relu6_onnx(*, project: bool = False) -> bytes:
    """A conv and its ReLU6, then (``project``: MobileNetV2's linear bottleneck, a 1x1
    conv with no ReLU after it, so a plain truncation) a global average pool."""
    rng = np.random.default_rng(13)
    w = {"w": rng.standard_normal((6, 3, 3, 3)) * 1.5, "p": rng.standard_normal((4, 6, 1, 1))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    inits += [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "zero", "six"], ["r"], name="relu6"),
    ]
    if project:
        nodes.append(helper.make_node("Conv", ["r", "p"], ["b"], name="project"))
    nodes += [
        helper.make_node("GlobalAveragePool", ["b" if project else "r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4 if project else 6])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def _secure(raw: bytes, x: Any, **compile_args: Any) -> tuple[Any, Any]:
    """One secure inference of the ONNX model on x, both parties in memory:
    (the camera's logits, its channel stats)."""
    from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime

    plan, weights = compile_onnx(onnx.load_from_string(raw), **compile_args)
    client, server = ClientRuntime(plan), ServerRuntime(plan, weights)

    def camera(ch: Channel) -> Any:
        client.setup(ch)
        return client.infer(ch, x), ch.stats

    def edge(ch: Channel) -> None:
        server.setup(ch)
        server.infer(ch)

    try:
        (y, stats), _ = run_pair(camera, edge)
    finally:
        client.close()
        server.close()
    return y, stats


def test_caps_pair_only_under_the_plans_bounds() -> None:
    model = onnx.load_from_string(_relu6_onnx())
    loose, _ = compile_onnx(model)
    assert paired_caps(loose) == frozenset()  # no public input range: nothing proven
    bounded, _ = compile_onnx(model, input_bound=9.0)
    capped = [op.name for op in bounded.ops if isinstance(op, ReluTruncate) and op.cap]
    assert capped and paired_caps(bounded) == frozenset(capped)


def test_fire_module_runs_securely_with_the_joint_call() -> None:
    import onnxruntime as ort

    raw = _fire_onnx()
    x = np.random.default_rng(14).standard_normal((1, 3, 8, 8)).astype(np.float32)
    y, stats = _secure(raw, x)
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0].reshape(-1)
    assert np.abs(y - ref).max() < 0.01
    # Two relu_truncate calls (the squeeze's, then both expands'), 3 rounds each.
    rounds = sum(v.rounds for k, v in stats.by_label.items() if k.startswith("relu_truncate"))
    assert rounds == 6


def test_truncations_are_bounded_only_under_the_plans_bounds() -> None:
    model = onnx.load_from_string(_relu6_onnx(project=True))
    loose, _ = compile_onnx(model)
    assert bounded_truncations(loose) == frozenset()  # no public input range
    plan, _ = compile_onnx(model, input_bound=3.0)
    truncs = [op.name for op in plan.ops if isinstance(op, Truncate)]
    assert truncs and bounded_truncations(plan) == frozenset(truncs)


def test_bounded_and_unbounded_truncations_never_share_a_call() -> None:
    ops: list[Op] = [
        Truncate(name=f"t{i}", inputs=("x",), output=f"y{i}", shape=(8,), shift=12)
        for i in range(3)
    ]
    assert [len(s) for s in schedule(ops, 1 << 10)] == [3]
    steps = schedule(ops, 1 << 10, frozenset({"t1"}))
    assert sorted(tuple(op.name for op in s) for s in steps) == [("t0", "t2"), ("t1",)]


def test_bounded_truncation_runs_securely_and_cheaply() -> None:
    import onnxruntime as ort

    raw = _relu6_onnx(project=True)
    x = np.random.default_rng(16).uniform(-3, 3, (1, 3, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0].reshape(-1)
    truncate_bytes = {}
    for bound in (None, 3.0):
        y, stats = _secure(raw, x, input_bound=bound)
        assert np.abs(y - ref).max() < 0.01
        truncate_bytes[bound] = sum(
            v.bytes_sent + v.bytes_received
            for k, v in stats.by_label.items()
            if k.split("/")[0] == "truncate" and "ot-iteration" not in k
        )
    # The project conv's 4 x 8 x 8 outputs and the pool's 4: a comparison each, or an OT.
    assert truncate_bytes[3.0] * 8 < truncate_bytes[None]
