"""Fusing a depthwise conv and the pointwise conv after it (Xception's separable
convs): one HE op and one truncation instead of two of each, and the secure run
of the fused plan matches its plaintext simulation and onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.ops import Conv, Truncate
from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime
from secfepas_sdk.snni.simulate import simulate


def separable_net(*, bn: bool = True, shared: bool = False) -> onnx.ModelProto:
    """Depthwise 3x3 (stride 2) [+ BN] -> pointwise 1x1 -> ReLU -> GAP -> Gemm.
    With ``shared`` the depthwise output also feeds the Gemm's side (no fusion)."""
    rng = np.random.default_rng(4)

    def init(name: str, arr: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(arr.astype(np.float32), name)

    inits = [
        init("dw", rng.standard_normal((4, 1, 3, 3)) * 0.5),
        init("dwb", rng.uniform(-0.2, 0.2, 4)),
        init("pw", rng.standard_normal((6, 4, 1, 1)) * 0.5),
        init("pwb", rng.uniform(-0.2, 0.2, 6)),
        init("g", rng.uniform(0.5, 1.5, 4)),
        init("beta", rng.uniform(-0.2, 0.2, 4)),
        init("mu", rng.uniform(-0.2, 0.2, 4)),
        init("var", rng.uniform(0.5, 1.5, 4)),
        init("fc", rng.standard_normal((3, 6)) * 0.5),
        init("fcb", rng.uniform(-0.1, 0.1, 3)),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "dw", "dwb"], ["d"], name="dw", group=4, pads=[1, 1, 1, 1], strides=[2, 2]
        )
    ]
    mid = "d"
    if bn:
        nodes.append(
            helper.make_node(
                "BatchNormalization", ["d", "g", "beta", "mu", "var"], ["n"], name="bn"
            )
        )
        mid = "n"
    nodes += [
        helper.make_node("Conv", [mid, "pw", "pwb"], ["p"], name="pw"),
        helper.make_node("Relu", ["p"], ["r"], name="relu"),
    ]
    last = "r"
    if shared:
        nodes += [
            helper.make_node("Relu", [mid], ["side"], name="side"),
            helper.make_node("Concat", ["r", "side"], ["cat"], name="cat", axis=1),
        ]
        last = "cat"
        inits[-2] = init("fc", rng.standard_normal((3, 10)) * 0.5)
    nodes += [
        helper.make_node("GlobalAveragePool", [last], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "separable",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def _secure(plan, weights, x):  # type: ignore[no-untyped-def]
    client, server = ClientRuntime(plan), ServerRuntime(plan, weights)

    def c(ch):  # type: ignore[no-untyped-def]
        client.setup(ch)
        return client.infer(ch, x), ch.stats.bytes_sent + ch.stats.bytes_received

    def s(ch):  # type: ignore[no-untyped-def]
        server.setup(ch)
        server.infer(ch)

    (y, traffic), _ = run_pair(c, s)
    client.close()
    server.close()
    return y, traffic


def test_depthwise_then_pointwise_becomes_one_conv_and_stays_exact() -> None:
    model = separable_net()
    fused, fused_w = compile_onnx(model)
    plain, plain_w = compile_onnx(model, fuse=False)
    convs = [op for op in fused.ops if isinstance(op, Conv)]
    assert len(convs) == 1 and len([op for op in plain.ops if isinstance(op, Conv)]) == 2
    assert convs[0].groups == 1 and convs[0].kernel == (3, 3) and convs[0].stride == (2, 2)
    assert convs[0].inputs == ("x",)  # straight from the input: no truncation before it
    assert sum(isinstance(op, Truncate) for op in fused.ops) < sum(
        isinstance(op, Truncate) for op in plain.ops
    )
    assert set(fused_w.arrays) == {"pw/w", "pw/b", "fc/w", "fc/b"}
    x = np.random.default_rng(8).standard_normal((1, 4, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0].reshape(-1)
    y, traffic = _secure(fused, fused_w, x)
    y_plain, traffic_plain = _secure(plain, plain_w, x)
    sim = simulate(fused, fused_w, x).reshape(-1)
    # Secure truncation is floor or 1 ulp low: a few ulps at the logits.
    assert np.abs(y - sim).max() <= 8 / 2**fused.frac_bits
    assert np.abs(y - ref).max() < 0.02 * max(1.0, np.abs(ref).max())
    assert np.abs(y_plain - ref).max() < 0.02 * max(1.0, np.abs(ref).max())
    assert traffic < traffic_plain


def test_no_fusion_when_the_depthwise_output_has_another_reader() -> None:
    plan, _ = compile_onnx(separable_net(shared=True))
    assert len([op for op in plan.ops if isinstance(op, Conv)]) == 2


def test_fusion_without_batchnorm() -> None:
    plan, _ = compile_onnx(separable_net(bn=False))
    assert len([op for op in plan.ops if isinstance(op, Conv)]) == 1
