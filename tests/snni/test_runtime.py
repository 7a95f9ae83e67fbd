"""Secure inference against plaintext onnxruntime on small real CNNs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import load_private, load_public, reference_onnx
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.ops import Relu, ReluTruncate
from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime, softmax


def plain_logits(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0].reshape(-1)


def secure(plan, weights, xs):
    client = ClientRuntime(plan)
    server = ServerRuntime(plan, weights)

    def c(ch):
        client.setup(ch)
        return [client.infer(ch, x) for x in xs], ch.stats

    def s(ch):
        server.setup(ch)
        for _ in xs:
            server.infer(ch)
        return ch.stats

    (outs, cstats), sstats = run_pair(c, s)
    client.close()
    server.close()
    return outs, cstats, sstats


def test_small_cnn_matches_onnxruntime(make_small_cnn) -> None:
    model = make_small_cnn(softmax=False)
    plan, weights = compile_onnx(model)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 2, 12, 12)).astype(np.float32) * s for s in (1.0, 4.0)]
    xs.append(np.zeros((1, 2, 12, 12), dtype=np.float32))
    outs, cstats, sstats = secure(plan, weights, xs)
    for x, y in zip(xs, outs, strict=True):
        ref = plain_logits(model.SerializeToString(), x)
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() < 0.02 * max(1.0, np.abs(ref).max())
        assert np.argmax(y) == np.argmax(ref) or np.ptp(ref) < 0.02
    assert cstats.bytes_sent == sstats.bytes_received > 0
    assert cstats.bytes_received == sstats.bytes_sent > 0


def test_softmax_is_applied_by_client(make_small_cnn) -> None:
    model = make_small_cnn(softmax=True)
    plan, weights = compile_onnx(model)
    x = np.random.default_rng(4).standard_normal((1, 2, 12, 12)).astype(np.float32)
    (logits,), _, _ = secure(plan, weights, [x])
    probs = softmax(logits)
    ref = plain_logits(model.SerializeToString(), x)
    assert np.abs(probs - ref).max() < 0.01


def test_bundled_demo_matches_reference() -> None:
    path = demo_model_path()
    private = load_private(path)
    ref_path = reference_onnx(path)
    assert ref_path is not None
    x = np.random.default_rng(5).standard_normal(private.plan.input_shape).astype(np.float32)
    (y,), cstats, _ = secure(private.plan, private.weights, [x])
    ref = plain_logits(ref_path.read_bytes(), x)
    assert np.argmax(y) == np.argmax(ref)
    assert np.abs(y - ref).max() < 0.05
    assert cstats.rounds > 0


def test_client_refuses_wrong_input_shape() -> None:
    public = load_public(demo_model_path())
    client = ClientRuntime(public.plan)
    with pytest.raises(SnniError):
        client.infer(None, np.zeros((1, 3, 8, 8), dtype=np.float32))  # type: ignore[arg-type]


def _residual_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((4, 3, 3, 3)) * 0.4).astype(np.float32)
    w2 = (rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["s"], name="add"),  # raw + activation
        helper.make_node("Relu", ["s"], ["r2"], name="r2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_residual_add_stays_raw_and_matches() -> None:
    import onnx

    raw = _residual_model()
    plan, weights = compile_onnx(onnx.load_from_string(raw))
    kinds = [op.kind for op in plan.ops]
    assert "shift_left" in kinds and kinds.count("truncate") == 1  # only after the pool
    x = np.random.default_rng(8).standard_normal((1, 3, 8, 8)).astype(np.float32)
    (y,), _, _ = secure(plan, weights, [x])
    ref = plain_logits(raw, x)
    assert np.abs(y - ref).max() < 0.01


def _relu6_model() -> bytes:
    """Clip(0, 6) on the input (scale f), after a conv (raw scale: relu_truncate) and
    after a depthwise conv, as MobileNetV2 uses it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(9)
    w1 = (rng.standard_normal((6, 3, 3, 3)) * 1.5).astype(np.float32)
    dw = (rng.standard_normal((6, 1, 3, 3)) * 1.0).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(dw, "dw"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
    ]
    nodes = [
        helper.make_node("Clip", ["x", "zero", "six"], ["x6"], name="clip_in"),
        helper.make_node("Conv", ["x6", "w1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "zero", "six"], ["r1"], name="relu6_1"),
        helper.make_node("Conv", ["r1", "dw"], ["c2"], name="dw", pads=[1] * 4, group=6),
        helper.make_node("Clip", ["c2", "zero", "six"], ["r2"], name="relu6_2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    graph = helper.make_graph(
        nodes,
        "relu6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("input_bound", [None, 9.0])
def test_relu6_clip_is_a_capped_relu_and_matches(input_bound: float | None) -> None:
    import onnx

    from secfepas_sdk.snni.simulate import simulate

    raw = _relu6_model()
    plan, weights = compile_onnx(onnx.load_from_string(raw), input_bound=input_bound)
    caps = [op.cap for op in plan.ops if isinstance(op, Relu | ReluTruncate)]
    assert caps == [6 << 12] * 3
    rng = np.random.default_rng(10)
    x = np.clip(rng.standard_normal((1, 3, 8, 8)) * 4, -9, 9).astype(np.float32)
    (y,), _, _ = secure(plan, weights, [x])
    ref = plain_logits(raw, x)
    assert np.abs(ref).max() > 1.0
    assert np.abs(y - ref).max() < 0.01
    assert np.abs(simulate(plan, weights, x).reshape(-1) - ref).max() < 0.01
    # Without the cap the result would be far off: the test sees the clipping.
    uncapped = tuple(
        replace(op, cap=None) if isinstance(op, Relu | ReluTruncate) else op for op in plan.ops
    )
    loose = simulate(replace(plan, ops=uncapped), weights, x)
    assert np.abs(loose.reshape(-1) - ref).max() > 0.5


def test_clip_other_than_relu6_is_refused() -> None:
    import onnx
    from onnx import numpy_helper

    from secfepas_sdk.snni.compile import UnsupportedModelError

    model = onnx.load_from_string(_relu6_model())
    for init in model.graph.initializer:
        if init.name == "zero":
            init.CopyFrom(numpy_helper.from_array(np.array(-1.0, np.float32), "zero"))
    with pytest.raises(UnsupportedModelError, match=r"only Clip\(x, 0, c\)"):
        compile_onnx(model)


@pytest.mark.parametrize("model", ["small_cnn", "demo"])
def test_cache_policy_skips_layers_the_direct_path_serves_better(model, make_small_cnn) -> None:
    from secfepas_sdk.snni.he import direct
    from secfepas_sdk.snni.he.layers import ConvLayer
    from secfepas_sdk.snni.ops import LinearOp

    if model == "demo":
        private = load_private(demo_model_path())
        plan, weights = private.plan, private.weights
    else:
        plan, weights = compile_onnx(make_small_cnn(softmax=False))
    server = ServerRuntime(plan, weights, cache_bytes=1 << 40)
    run = server._run
    linear = [op for op in plan.ops if isinstance(op, LinearOp)]
    served = {
        op.name
        for op in linear
        if isinstance(layer := run.layers[op.name], ConvLayer)
        and direct.worth_it(layer.support_size, 2.0**op.l1_log2, run.params, cached=True)
    }
    # small_cnn's 1x1 conv has a 4 x 4 support; the demo's first conv (k = 24, 2 limbs) too
    assert served
    everything = server._cache_policy(linear, 1 << 40)
    assert everything == {op.name for op in linear} - served
    assert server._cache_policy(linear, 0) == set()
    for op in linear:  # a layer left out of the cache is one the direct path takes
        if op.name not in everything:
            assert server._prepared[op.name].direct is not None
    server.close()
