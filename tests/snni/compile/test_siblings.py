"""Sibling convs under one channel concat become one conv: the same function as the
ONNX model (onnxruntime), one HE layer whose input is uploaded once, a secure run that
matches its plaintext simulation, and no merge where it would not be exact."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.compile.siblings import merge_sibling_convs
from secfepas_sdk.snni.ops import Concat, Conv, Relu, ReluTruncate
from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime
from secfepas_sdk.snni.simulate import simulate

Branch = tuple[int, tuple[int, int], tuple[int, int, int, int]]  # out channels, kernel, pads


def fire(
    branches: list[Branch],
    *,
    relu: bool = True,
    stride: int = 1,
    extra_reader: bool = False,
    size: int = 9,
    seed: int = 3,
) -> onnx.ModelProto:
    """x (1, 3, size, size) -> squeeze 1x1 -> ReLU -> the branches (each with its ReLU
    when ``relu``) -> Concat(axis 1) -> GlobalAveragePool -> Flatten.
    ``extra_reader``: the first branch's conv output is also added to the output."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array((rng.standard_normal((4, 3, 1, 1)) * 0.5).astype(np.float32), "ws")
    ]
    nodes = [
        helper.make_node("Conv", ["x", "ws"], ["s"], name="squeeze"),
        helper.make_node("Relu", ["s"], ["rs"], name="relu_s"),
    ]
    cat_in = []
    for i, (m, (kh, kw), pads) in enumerate(branches):
        w = rng.standard_normal((m, 4, kh, kw)) * 0.4
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(rng.uniform(-0.3, 0.3, m).astype(np.float32), f"b{i}"),
        ]
        nodes.append(
            helper.make_node(
                "Conv",
                ["rs", f"w{i}", f"b{i}"],
                [f"e{i}"],
                name=f"expand{i}",
                pads=list(pads),
                strides=[stride, stride],
            )
        )
        out = f"e{i}"
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            out = f"r{i}"
        cat_in.append(out)
    nodes += [
        helper.make_node("Concat", cat_in, ["c"], name="concat", axis=1),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flat"),
    ]
    total = sum(b[0] for b in branches)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, total])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["e0"], ["side"], name="side"))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "fire",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        outputs,
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


FIRE: list[Branch] = [(4, (1, 1), (0, 0, 0, 0)), (4, (3, 3), (1, 1, 1, 1))]


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["y"], {"x": x})[0])


def _x(size: int = 9, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)


def test_a_fire_module_becomes_one_conv_and_one_relu_with_the_same_function() -> None:
    model = fire(FIRE)
    merged = merge_sibling_convs(model)
    onnx.checker.check_model(merged)
    kinds = [n.op_type for n in merged.graph.node]
    assert kinds == ["Conv", "Relu", "Conv", "Relu", "GlobalAveragePool", "Flatten"]
    assert [n.op_type for n in model.graph.node].count("Conv") == 3  # the input is untouched
    x = _x()
    np.testing.assert_allclose(_ort(merged, x), _ort(model, x), rtol=1e-5, atol=1e-5)
    names = {i.name for i in merged.graph.initializer}
    assert not names & {"w0", "w1", "b0", "b1"}  # the branches' weights are gone


def test_the_plan_holds_one_he_layer_per_fire_and_the_secure_run_matches() -> None:
    model = fire(FIRE)
    plan, weights = compile_onnx(model)
    plain, _ = compile_onnx(model, fuse=False)
    convs = [op for op in plan.ops if isinstance(op, Conv)]
    assert len(convs) == 2 and convs[1].kernel == (3, 3) and convs[1].shape[0] == 8
    assert not any(isinstance(op, Concat) for op in plan.ops)
    assert sum(isinstance(op, Relu | ReluTruncate) for op in plan.ops) < sum(
        isinstance(op, Relu | ReluTruncate) for op in plain.ops
    )
    x = _x()
    client, server = ClientRuntime(plan), ServerRuntime(plan, weights)

    def c(ch):  # type: ignore[no-untyped-def]
        client.setup(ch)
        return client.infer(ch, x)

    def s(ch):  # type: ignore[no-untyped-def]
        server.setup(ch)
        server.infer(ch)

    y, _ = run_pair(c, s)
    client.close()
    server.close()
    sim = simulate(plan, weights, x).reshape(-1)
    assert np.abs(y - sim).max() <= 8 / 2**plan.frac_bits  # secure truncation: floor or 1 low
    assert np.abs(y - _ort(model, x).reshape(-1)).max() < 0.02


@pytest.mark.parametrize(
    ("branches", "kwargs"),
    [
        ([(4, (1, 1), (0, 0, 0, 0)), (4, (3, 3), (0, 0, 0, 0))], {}),  # output grids differ
        (FIRE, {"extra_reader": True}),  # a branch's conv has another reader
        ([(4, (1, 1), (0, 0, 0, 0))], {}),  # one input: nothing to merge
    ],
)
def test_no_merge_where_it_would_not_be_exact(
    branches: list[Branch], kwargs: dict[str, bool]
) -> None:
    model = fire(branches, **kwargs)
    merged = merge_sibling_convs(model)
    assert [n.op_type for n in merged.graph.node] == [n.op_type for n in model.graph.node]


def test_branches_without_relu_and_strided_merge_too() -> None:
    model = fire(FIRE, relu=False, stride=2)
    merged = merge_sibling_convs(model)
    assert [n.op_type for n in merged.graph.node].count("Conv") == 2
    assert "Concat" not in [n.op_type for n in merged.graph.node]
    x = _x()
    np.testing.assert_allclose(_ort(merged, x), _ort(model, x), rtol=1e-5, atol=1e-5)


@st.composite
def same_grid_branch(draw: st.DrawFn) -> Branch:
    """A branch whose window covers k taps per axis, t of them before the output
    position (pads t before, k - 1 - t after): every such branch has the input's grid."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    top, left = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    return draw(st.integers(1, 3)), (kh, kw), (top, left, kh - 1 - top, kw - 1 - left)


@settings(max_examples=25, deadline=None)
@given(
    branches=st.lists(same_grid_branch(), min_size=2, max_size=3),
    stride=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_any_merge_keeps_the_function(branches: list[Branch], stride: int, seed: int) -> None:
    """Whatever the kernels and their offsets, the merged conv computes what
    onnxruntime computes on the original."""
    model = fire(branches, stride=stride, seed=seed)
    merged = merge_sibling_convs(model)
    assert [n.op_type for n in merged.graph.node].count("Conv") == 2
    x = _x(seed=seed)
    np.testing.assert_allclose(_ort(merged, x), _ort(model, x), rtol=1e-4, atol=1e-4)
