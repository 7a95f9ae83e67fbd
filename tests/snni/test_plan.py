"""The ONNX -> plan compiler: folding, quantisation, shapes, JSON, clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.compile import UnsupportedModelError, compile_onnx, quantise
from secfepas_sdk.snni.plan import Plan


def test_compile_small_cnn(make_small_cnn) -> None:
    plan, weights = compile_onnx(make_small_cnn())
    kinds = [op.kind for op in plan.ops]
    assert "conv" in kinds and "gemm" in kinds and plan.softmax
    assert not any("bn" in op.name for op in plan.ops)  # folded into conv1
    # ReLU commutes with max: the compiler pools first, then runs ReLU on 4x fewer values.
    assert kinds[:3] == ["conv", "maxpool", "relu_truncate"]
    assert plan.ops[1].inputs == ("conv1:out",)
    assert plan.output_shape == (3,)
    assert set(weights.arrays) == {
        f"{n}/{k}" for n in ("conv1", "conv2", "conv3", "fc") for k in ("w", "b")
    }
    assert all(a.dtype == np.int64 for a in weights.arrays.values())
    assert plan.shapes["pool1:out"] == (4, 6, 6)
    assert plan.shapes["avg:out"] == (8, 3, 3)


def test_plan_json_round_trip(make_small_cnn) -> None:
    plan, _ = compile_onnx(make_small_cnn())
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.to_json() == plan.to_json()


def test_plan_json_rejects_garbage() -> None:
    with pytest.raises(SnniError):
        Plan.from_json("[1, 2]")
    with pytest.raises(SnniError):
        Plan.from_json('{"version": 99}')


def test_quantise_goes_through_fp16() -> None:
    q = quantise(np.array([0.1, -1.0, 1.0 / 3.0]), 12)
    assert q.tolist() == [
        round(float(np.float16(0.1)) * 4096),
        -4096,
        round(float(np.float16(1 / 3)) * 4096),
    ]


def test_unsupported_nodes_are_all_listed() -> None:
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
        helper.make_node("Tanh", ["s"], ["t"], name="tanh"),
        helper.make_node("Relu", ["t"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedModelError) as info:
        compile_onnx(model)
    assert "sig (Sigmoid)" in str(info.value) and "tanh (Tanh)" in str(info.value)


def test_old_opset_is_refused(make_small_cnn) -> None:
    model = make_small_cnn()
    model.opset_import[0].version = 11
    with pytest.raises(UnsupportedModelError, match="opset 11"):
        compile_onnx(model)


def test_loose_batchnorm_is_refused() -> None:
    bn = [helper.make_tensor(n, TensorProto.FLOAT, [1], [1.0]) for n in ("g", "b", "m", "v")]
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn")],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        bn,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(UnsupportedModelError, match="not right after a Conv"):
        compile_onnx(model)


def test_weights_too_large_for_noise_budget(make_small_cnn) -> None:
    model = make_small_cnn()
    for init in model.graph.initializer:
        if init.name == "w4":
            arr = onnx.numpy_helper.to_array(init) * 6e4
            init.CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float32), "w4"))
    with pytest.raises(SnniError, match="noise budget"):
        compile_onnx(model, ring_bits=43, frac_bits=20, circuit_privacy=None)
    # bfv-n8192-q218's 60 more bits of modulus have room for them (and the budget).
    plan, _ = compile_onnx(model, ring_bits=43, frac_bits=20)
    assert plan.he_params == "bfv-n8192-q218"


def test_weights_are_checked_against_plan(make_small_cnn) -> None:
    plan, weights = compile_onnx(make_small_cnn())
    weights.arrays["fc/w"] = weights.arrays["fc/w"][:, :4]
    with pytest.raises(SnniError, match="shape"):
        weights.check_against(plan)
