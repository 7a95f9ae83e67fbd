"""Golden plans pin the public JSON plan format: parsing a plan and writing it
back gives the same bytes, and the compiler still emits the same plans for the
same models. Both parties (and plans stored in model packages) depend on this.

Regenerate only for a deliberate change of the compiler's output (never of the
format): ``SECFEPAS_REGEN_GOLDEN=1 python -m pytest tests/snni/test_plan_golden.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.importer import pixel_input_bound
from secfepas_sdk.models.package import load_private, reference_onnx
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.plan import Plan

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("SECFEPAS_REGEN_GOLDEN") == "1"
# The importer's default: pixels in [0, 1], ImageNet normalisation.
BOUND = pixel_input_bound((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.write_bytes(text.encode("utf-8"))
    assert text.encode("utf-8") == path.read_bytes(), f"{name} changed"


@pytest.mark.parametrize(
    "name",
    ["demo_plan.json", "squeezenet11_plan.json", "small_cnn_plan.json", "residual_v1_plan.json"],
)
def test_parse_then_serialise_is_byte_identical(name: str) -> None:
    raw = (GOLDEN / name).read_bytes()
    assert Plan.from_json(raw.decode("utf-8")).to_json().encode("utf-8") == raw


def test_the_packaged_demo_plan_is_the_golden_one() -> None:
    _check("demo_plan.json", (demo_model_path() / "plan.json").read_text(encoding="utf-8"))


def test_the_packaged_demo_is_what_this_compiler_makes() -> None:
    """`secfepas demo` shows the compiler's current costs only if the bundled package
    was compiled by it: after a deliberate compiler change, run
    ``python tools/rebuild_demo_package.py --version X.Y.Z`` (and regenerate the goldens)."""
    private = load_private(demo_model_path())
    reference = reference_onnx(demo_model_path())
    assert reference is not None
    plan, weights = compile_onnx(onnx.load(str(reference)))
    assert plan == private.plan, "the bundled demo plan is stale: rebuild the demo package"
    assert sorted(weights.arrays) == sorted(private.weights.arrays)
    for name, values in weights.arrays.items():
        assert np.array_equal(values, private.weights.arrays[name]), name


def test_compiling_squeezenet_gives_the_golden_plan(squeezenet_model: onnx.ModelProto) -> None:
    plan, _ = compile_onnx(squeezenet_model, input_bound=BOUND)
    _check("squeezenet11_plan.json", plan.to_json())


def test_compiling_the_small_cnn_gives_the_golden_plans(
    make_small_cnn: Callable[..., onnx.ModelProto],
) -> None:
    plan, _ = compile_onnx(make_small_cnn(), input_bound=BOUND, ot_k={"maxpool": 8, "relu": 2})
    _check("small_cnn_plan.json", plan.to_json())


def residual_cnn() -> onnx.ModelProto:
    """Conv, ReLU, a residual Add of a raw and a truncated tensor (a shift_left),
    a ReLU of a truncated tensor (a plain relu), Flatten, Gemm: no pooling and no
    bounds, so its plan is a version-1 plan."""
    rng = np.random.default_rng(3)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
        helper.make_node("Flatten", ["a"], ["flat"], name="flat", axis=1),
        helper.make_node("Relu", ["flat"], ["r2"], name="relu2"),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    inits = [init("w1", 3, 2, 3, 3), init("b1", 3), init("w2", 3, 3, 3, 3)]
    inits += [init("w3", 3, 48), init("b3", 3)]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_compiling_a_residual_net_gives_the_golden_v1_plan() -> None:
    plan, _ = compile_onnx(residual_cnn(), ring_bits=41, frac_bits=14, circuit_privacy=None)
    assert json.loads(plan.to_json())["version"] == 1
    _check("residual_v1_plan.json", plan.to_json())
