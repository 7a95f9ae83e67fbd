"""Circuit privacy over a deployment: the statistical distance flooding leaves per
inference, counted from the public plan, and the flooding sized to a budget."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.he.flooding import DEFAULT_BUDGET, CircuitPrivacy
from secfepas_sdk.snni.he.params import get_params
from secfepas_sdk.snni.plan import Plan
from secfepas_sdk.snni.privacy import (
    budget_inferences,
    inference_distance,
    inference_distance_log2,
    layer_floods,
)

GOLDEN = Path(__file__).parent / "golden"
N = 8192
ALLOWED = DEFAULT_BUDGET.total / DEFAULT_BUDGET.inferences  # 2^-40 / 10^8 = 2^-66.6


def _plan(name: str) -> Plan:
    return Plan.from_json((GOLDEN / name).read_text(encoding="utf-8"))


def _unbudgeted(plan: Plan) -> Plan:
    """The plan as compiled before budgets: bfv-n8192-q180, flooded at the most."""
    return dataclasses.replace(plan, he_params="bfv-n8192-q180", circuit_privacy=None)


def _demo_model() -> onnx.ModelProto:
    return onnx.load(str(demo_model_path() / "private" / "reference.onnx"))


def test_each_layer_counts_every_c0_coefficient_at_its_sigma() -> None:
    plan = _unbudgeted(_plan("demo_plan.json"))
    floods = layer_floods(plan)
    assert [f.name for f in floods] == [op.name for op in plan.ops if op.kind in ("conv", "gemm")]
    for f in floods:
        assert f.coefficients == f.replies * N
        # sigma = F - log2(noise bound) - 1, with F = 120 - 37 - 4 at bfv-n8192-q180
        assert f.flood_bits == 79 and 40 <= f.sigma < 79
        assert f.distance_log2 == pytest.approx(math.log2(f.replies * N) - f.sigma)
    total = sum(f.replies * N * 2.0**-f.sigma for f in floods)
    assert inference_distance_log2(plan) == pytest.approx(math.log2(total))


@pytest.mark.parametrize(
    ("name", "replies", "log2_distance"),
    # SqueezeNet: 562 replies with the edge-time tilings, 626 with those for a 100 Mbit/s link.
    [("demo_plan.json", 22, -37.11), ("squeezenet11_plan.json", 626, -32.22)],
)
def test_distance_per_inference_without_a_budget(
    name: str, replies: int, log2_distance: float
) -> None:
    """The figures docs/snni-he.md states for plans compiled before budgets (ResNet50's,
    -28.2, comes from the same code on the exported model): 2^-40 is gone within a
    few inferences."""
    plan = _unbudgeted(_plan(name))
    assert sum(f.replies for f in layer_floods(plan)) == replies
    assert inference_distance_log2(plan) == pytest.approx(log2_distance, abs=0.01)
    assert budget_inferences(plan, DEFAULT_BUDGET) == 0
    lax = CircuitPrivacy(distance_log2=-20)
    assert budget_inferences(plan, lax) == math.floor(lax.total / inference_distance(plan))
    assert budget_inferences(plan, lax) == pytest.approx(2.0 ** (-20 - log2_distance), rel=0.01)


@pytest.mark.parametrize(
    ("name", "params"),
    [("demo_plan.json", "bfv-n8192-q200"), ("squeezenet11_plan.json", "bfv-n8192-q200")],
)
def test_golden_plans_meet_the_default_budget_with_the_least_flood(name: str, params: str) -> None:
    plan = _plan(name)
    assert plan.circuit_privacy == DEFAULT_BUDGET and plan.he_params == params
    floods = layer_floods(plan)
    assert inference_distance(plan) <= ALLOWED
    share = ALLOWED / sum(f.coefficients for f in floods)
    for f in floods:
        one = f.distance / f.coefficients
        assert one <= share < 2 * one  # the least flood: one bit less would miss the share
        assert f.flood_bits <= get_params(params).flood_bits(plan.ring_bits)  # it decrypts
    assert budget_inferences(plan, DEFAULT_BUDGET) == DEFAULT_BUDGET.inferences


def test_the_compiler_takes_the_cheapest_set_that_meets_the_budget() -> None:
    model = _demo_model()
    plan, _ = compile_onnx(model)
    assert (plan.he_params, plan.version, plan.circuit_privacy) == (
        "bfv-n8192-q200",
        3,
        DEFAULT_BUDGET,
    )
    # 2^-60 over 10^10 inferences needs floods q200's D = 162 cannot hold
    strict = CircuitPrivacy(distance_log2=-60, inferences=10**10)
    plan, _ = compile_onnx(model, circuit_privacy=strict)
    assert plan.he_params == "bfv-n8192-q218" and inference_distance(plan) <= strict.total / 10**10
    assert max(f.flood_bits for f in layer_floods(plan)) > get_params("bfv-n8192-q200").flood_bits(
        37
    )
    lax = CircuitPrivacy(distance_log2=-20, inferences=1000)
    plan, _ = compile_onnx(model, circuit_privacy=lax)
    assert plan.he_params == "bfv-n8192-q180" and inference_distance(plan) <= lax.total / 1000
    plan, _ = compile_onnx(model, circuit_privacy=None)
    assert plan.he_params == "bfv-n8192-q180" and plan.circuit_privacy is None
    assert plan.version < 3


def test_a_budget_no_parameter_set_meets_is_one_clear_error() -> None:
    model = _demo_model()
    with pytest.raises(SnniError, match=r"out of reach: layer .* bfv-n8192-q218") as info:
        compile_onnx(model, circuit_privacy=CircuitPrivacy(distance_log2=-128, inferences=10**15))
    assert "\n" not in str(info.value) and "fewer inferences" in str(info.value)
    with pytest.raises(SnniError, match=r"out of reach: layer .* bfv-n8192-q180"):
        compile_onnx(model, he_params="bfv-n8192-q180")  # the default budget, forced set


def test_a_plan_carries_its_budget_only_as_version_3(
    make_small_cnn: Callable[..., onnx.ModelProto],
) -> None:
    plan, _ = compile_onnx(make_small_cnn(), circuit_privacy=CircuitPrivacy(inferences=12345))
    data = plan.to_dict()
    assert data["version"] == 3
    assert data["circuit_privacy"] == {"distance_log2": -40, "inferences": 12345}
    assert Plan.from_dict(data) == plan
    for bad in (
        {**data, "version": 2},
        {k: v for k, v in data.items() if k != "circuit_privacy"},
        {**data, "circuit_privacy": {"distance_log2": -40}},
        {**data, "circuit_privacy": {"distance_log2": 3, "inferences": 1}},
        {**data, "circuit_privacy": {"distance_log2": -40, "inferences": 1.5}},
    ):
        with pytest.raises(SnniError, match="circuit_privacy"):
            Plan.from_dict(bad)


def test_budgeted_plans_count_only_the_coefficients_the_camera_receives() -> None:
    from secfepas_sdk.snni.he.reply import ReplyFormat
    from secfepas_sdk.snni.plan import he_layer

    plan = _plan("demo_plan.json")
    linear = [op for op in plan.ops if op.kind in ("conv", "gemm")]
    for f, op in zip(layer_floods(plan), linear, strict=True):
        layout = he_layer(op, plan.shapes[op.inputs[0]], N).layout  # type: ignore[arg-type]
        assert f.coefficients == layout.out_index.size < layout.n_out * N
        assert f.reply == ReplyFormat(c0_drop=20, c1_drop=8)  # c0 keeps 40 bits, c1 52
    assert sum(f.coefficients for f in layer_floods(plan)) == 28676  # 2^14.8, not 2^16.9
    assert all(f.reply is None for f in layer_floods(_unbudgeted(plan)))


def test_reply_bytes_per_op_are_pinned() -> None:
    """Edge -> camera bytes of the demo's HE layers in one inference: trimmed replies
    (c1 at 52 bits, c0 only at the outputs, at 40 bits). As whole SEAL ciphertexts at
    the same parameters they are 2,755,296 (conv) and 131,208 (gemm): 54 % less."""
    import numpy as np

    from secfepas_sdk.models.package import load_private
    from secfepas_sdk.snni.channel import run_pair
    from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime

    private = load_private(demo_model_path())
    x = np.random.default_rng(0).standard_normal(private.plan.input_shape).astype(np.float32)
    got = {}
    whole = dataclasses.replace(private.plan, circuit_privacy=None)
    for plan in (private.plan, whole):
        client, server = ClientRuntime(plan), ServerRuntime(plan, private.weights)

        def camera(ch, c=client):
            c.setup(ch)
            c.infer(ch, x)
            return {k: v.bytes_received for k, v in ch.stats.by_label.items()}

        def edge(ch, s=server):
            s.setup(ch)
            s.infer(ch)

        try:
            got["whole" if plan is whole else "trimmed"], _ = run_pair(camera, edge)
        finally:
            client.close()
            server.close()
    trimmed, whole_bytes = got["trimmed"], got["whole"]
    assert (trimmed["conv"], trimmed["gemm"]) == (1_261_664, 53_276)
    assert whole_bytes["conv"] > 2 * trimmed["conv"] and whole_bytes["gemm"] > 2 * trimmed["gemm"]
