"""Circuit privacy over a deployment: the statistical distance flooding leaves per
inference, counted from the public plan."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from secfepas_sdk.snni.plan import Plan
from secfepas_sdk.snni.privacy import inference_distance_log2, layer_floods

GOLDEN = Path(__file__).parent / "golden"
N = 8192


def _plan(name: str) -> Plan:
    return Plan.from_json((GOLDEN / name).read_text(encoding="utf-8"))


def test_each_layer_counts_every_c0_coefficient_at_its_sigma() -> None:
    plan = _plan("demo_plan.json")
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
    [("demo_plan.json", 15, -37.20), ("squeezenet11_plan.json", 562, -32.53)],
)
def test_distance_per_inference_today(name: str, replies: int, log2_distance: float) -> None:
    """The figures docs/snni-he.md states (ResNet50's, -28.3, comes from the same code
    on the exported model)."""
    plan = _plan(name)
    assert sum(f.replies for f in layer_floods(plan)) == replies
    assert inference_distance_log2(plan) == pytest.approx(log2_distance, abs=0.01)
