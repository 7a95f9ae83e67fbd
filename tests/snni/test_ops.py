"""Typed plan ops: one class per kind with its three methods registered, and a
crafted plan (the edge or a file is untrusted) is one clear SnniError, never a
crash, a hang or a huge allocation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import op_bound
from secfepas_sdk.snni.ops import MAX_ELEMENTS, OP_TYPES, Conv, MaxPool, Relu, op_from_dict
from secfepas_sdk.snni.plan import MAX_OPS, Plan
from secfepas_sdk.snni.runtime import ClientRuntime
from secfepas_sdk.snni.share_ops import run_op
from secfepas_sdk.snni.simulate import simulate_op

GOLDEN = Path(__file__).parent / "golden"
DEMO: dict[str, Any] = json.loads((GOLDEN / "demo_plan.json").read_text(encoding="utf-8"))
SMALL: dict[str, Any] = json.loads((GOLDEN / "small_cnn_plan.json").read_text(encoding="utf-8"))


def _first(plan: dict[str, Any], kind: str) -> int:
    return next(i for i, op in enumerate(plan["ops"]) if op["kind"] == kind)


def _with(plan: dict[str, Any], kind: str, **attrs: Any) -> dict[str, Any]:
    out = copy.deepcopy(plan)
    out["ops"][_first(out, kind)]["attrs"].update(attrs)
    return out


def test_every_kind_has_a_protocol_a_simulation_and_a_bound() -> None:
    assert set(OP_TYPES) == {
        "conv", "gemm", "truncate", "relu", "relu_truncate", "maxpool", "avgpool",
        "global_avgpool", "add", "shift_left", "concat", "reshape",
    }  # fmt: skip
    for cls in OP_TYPES.values():
        for dispatcher in (run_op, simulate_op, op_bound):
            assert dispatcher.dispatch(cls) is not dispatcher.dispatch(object), (cls, dispatcher)


def test_ops_are_frozen_typed_and_checked_when_built() -> None:
    op = op_from_dict(SMALL["ops"][_first(SMALL, "maxpool")])
    assert isinstance(op, MaxPool) and op.kernel == (2, 2) and op.window.kernel == (2, 2)
    with pytest.raises(AttributeError):
        op.kernel = (3, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        MaxPool("p", ("x",), "y", (1, 2, 2))  # type: ignore[misc]  # keyword-only
    with pytest.raises(SnniError, match="bound_bits"):
        Relu(name="r", inputs=("x",), output="y", shape=(4,), bound_bits=0)


@pytest.mark.parametrize(
    ("plan", "match"),
    [
        (_with(DEMO, "conv", kernel=[1 << 30, 3]), "kernel"),
        (_with(DEMO, "conv", stride=[0, 1]), "stride"),
        (_with(DEMO, "conv", pads=[-1, 0, 0, 0]), "pads"),
        (_with(DEMO, "conv", out_channels=1 << 40), "out_channels"),
        (_with(DEMO, "conv", groups=3), "groups"),
        (_with(DEMO, "conv", l1_log2=-5), "l1_log2"),
        (_with(DEMO, "conv", tiling={"cp": 0, "th": 1, "tw": 1, "no": 1}), "tiling"),
        (_with(DEMO, "conv", tiling={"cp": 1, "th": 1, "tw": 1, "no": 1, "x": 2}), "tiling"),
        (_with(DEMO, "conv", tiling=[1, 2]), "tiling"),
        (_with(DEMO, "relu_truncate", shift=-3), "shift"),
        (_with(DEMO, "relu_truncate", shift=37), "ring"),
        (_with(DEMO, "relu_truncate", shift=True), "shift"),
        (_with(DEMO, "relu_truncate", shift=12.5), "shift"),
        (_with(DEMO, "relu_truncate", ot_k=5), "ot_k"),
        (_with(DEMO, "relu_truncate", ot_k=1 << 70), "ot_k"),
        (_with(DEMO, "relu_truncate", cap=0), "cap"),
        (_with(DEMO, "relu_truncate", cap=1 << 40), "ring"),
        (_with(SMALL, "maxpool", bound_bits=-1), "bound_bits"),
        (_with(SMALL, "maxpool", bound_bits=40), "ring"),
        (_with(SMALL, "maxpool", bound_bits=3), "not implied"),
        (_with(SMALL, "maxpool", drop_bits=13), "drop_bits"),
        (_with(SMALL, "maxpool", bound_bits="7"), "bound_bits"),
        (_with(SMALL, "avgpool", ceil_pads=[9, 9]), "ceil_pads"),
        (_with(SMALL, "avgpool", count_include_pad=2), "count_include_pad"),
        (_with(SMALL, "concat", axis=5), "axis"),
        (_with(DEMO, "conv", colour="red"), "unknown attributes"),
    ],
)
def test_crafted_attributes_are_clear_errors(plan: dict[str, Any], match: str) -> None:
    with pytest.raises(SnniError, match=match):
        Plan.from_dict(plan)


def _with_op(plan: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(plan)
    out["ops"][index].update(changes)
    return out


@pytest.mark.parametrize(
    ("plan", "match"),
    [
        (_with_op(DEMO, 0, shape=[1 << 20, 1 << 20, 1]), "shape"),
        (_with_op(DEMO, 0, shape=[16, 32, 31]), "claims shape"),
        (_with_op(DEMO, 0, shape=[16, 32, 32, 1]), "shape"),
        (_with_op(DEMO, 0, shape=[0, 32, 32]), "shape"),
        (_with_op(DEMO, 0, kind="softmax"), "unknown plan op kind"),
        (_with_op(DEMO, 0, attrs=[1, 2]), "attrs"),
        (_with_op(DEMO, 0, inputs=["input"] * 3), "inputs"),
        (_with_op(DEMO, 0, inputs="input"), "inputs"),
        (_with_op(DEMO, 0, name="x" * 10_000), "name"),
        (_with_op(DEMO, 1, inputs=["nowhere"]), "undefined"),
        (_with_op(DEMO, 1, output="input"), "overwrites"),
        ({**DEMO, "input_shape": [1, 3, 1 << 13, 1 << 13]}, "elements"),
        ({**DEMO, "ops": [DEMO["ops"][0]] * (MAX_OPS + 1)}, "at most"),
        ({**DEMO, "ops": "conv"}, "list"),
        ({**DEMO, "ops": [7]}, "object"),
    ],
)
def test_crafted_structure_is_a_clear_error(plan: dict[str, Any], match: str) -> None:
    with pytest.raises(SnniError, match=match):
        Plan.from_dict(plan)


def test_missing_attribute_is_a_clear_error() -> None:
    plan = copy.deepcopy(DEMO)
    del plan["ops"][0]["attrs"]["kernel"]
    with pytest.raises(SnniError, match="kernel"):
        Plan.from_dict(plan)


def test_a_linear_op_with_too_many_weights_is_refused() -> None:
    conv = copy.deepcopy(DEMO["ops"][0])
    conv["attrs"]["out_channels"] = 1 << 14
    conv["shape"] = [1 << 14, 32, 32]
    plan = {**DEMO, "input_shape": [1, 1 << 14, 64, 1], "ops": [conv], "output": conv["output"]}
    conv["attrs"]["kernel"], conv["attrs"]["pads"] = [3, 1], [1, 0, 1, 0]
    conv["shape"] = [1 << 14, 32, 1]
    with pytest.raises(SnniError, match="weights"):
        Plan.from_dict(plan)


def test_a_tiling_that_does_not_fit_fails_before_any_traffic() -> None:
    plan = Plan.from_dict(
        _with(DEMO, "conv", tiling={"cp": 3, "th": 1 << 10, "tw": 1 << 10, "no": 16})
    )
    with pytest.raises(SnniError, match="tiling"):
        ClientRuntime(plan)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(SMALL["ops"]) - 1),
    key=st.sampled_from(["kernel", "stride", "pads", "shift", "bound_bits", "drop_bits", "ot_k",
                         "axis", "tiling", "l1_log2", "w_l1_log2", "groups", "ceil_pads",
                         "out_features", "count_include_pad", "cap", "shape", "inputs", "name"]),
    value=_JSON,
)  # fmt: skip
def test_any_mutated_field_parses_or_is_a_snni_error(index: int, key: str, value: Any) -> None:
    plan = copy.deepcopy(SMALL)
    op = plan["ops"][index]
    if key in ("shape", "inputs", "name"):
        op[key] = value
    else:
        op["attrs"][key] = value
    try:
        parsed = Plan.from_dict(plan)
    except SnniError:
        return
    assert Plan.from_json(parsed.to_json()) == parsed


def test_conv_fields_are_typed() -> None:
    conv = op_from_dict(DEMO["ops"][0])
    assert isinstance(conv, Conv)
    assert conv.kernel == (3, 3) and conv.stride == (2, 2) and conv.pads == (1, 1, 1, 1)
    assert conv.tiling is not None and conv.tiling.to_dict() == DEMO["ops"][0]["attrs"]["tiling"]
    assert conv.weight_shape((3, 64, 64)) == (16, 3, 3, 3)
    assert MAX_ELEMENTS >= 64 * 112 * 112  # ResNet50's largest activation fits
