"""The edge counts inferences per loaded model against its circuit-privacy budget: a
metric, one warning at 90 %, one error past it, and refusal only when enforced."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from testkit.edge import ONE_TRY, running

from secfepas_sdk.camera.client import SecureInferenceClient
from secfepas_sdk.edge.budget import BudgetExhausted, ModelBudget, PrivacyBudgets
from secfepas_sdk.edge.metrics import EdgeMetrics
from secfepas_sdk.edge.registry import ModelRegistry
from secfepas_sdk.errors import PeerError
from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import MANIFEST, PLAN, load_manifest, load_public, sha256

MODEL = "demo-pain-cnn"


def _budgets(covered: int, *, enforce: bool = False) -> PrivacyBudgets:
    budget = ModelBudget(model_id="m", version="1", covered=covered, stated="2^-40 over 10")
    return PrivacyBudgets([budget], enforce=enforce)


def _levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if "circuit-privacy" in r.msg]


def test_one_warning_at_90_percent_and_one_error_past_the_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="secfepas_sdk.edge.budget")
    budgets = _budgets(10)
    seen = []
    for _ in range(14):
        budgets.begin("m")
        seen.append([level for level, _msg in _levels(caplog)])
    assert seen[7] == [] and seen[8] == [logging.WARNING]  # the 9th of 10: 90 %
    assert seen[9] == [logging.WARNING]
    assert seen[10] == seen[13] == [logging.WARNING, logging.ERROR]  # the 11th, then silence
    warning, error = (msg for _level, msg in _levels(caplog))
    assert "9 inferences in this process" in warning and "the 10 its" in warning
    assert "exhausted: 11 inferences" in error and "serving on" in error
    assert budgets.get("m") is not None and budgets.get("m").used == 14  # type: ignore[union-attr]
    budgets.begin("another model")  # a model without a budget is not counted


def test_enforced_budget_refuses_once_spent(caplog: pytest.LogCaptureFixture) -> None:
    budgets = _budgets(3, enforce=True)
    for _ in range(3):
        budgets.check("m")
        budgets.begin("m")
    with pytest.raises(BudgetExhausted, match=r"covers 3 inference.* has run 3") as info:
        budgets.begin("m")
    assert info.value.code == "unknown_model"
    with pytest.raises(BudgetExhausted):
        budgets.check("m")
    assert budgets.get("m").used == 3  # type: ignore[union-attr]


def test_metrics_show_inferences_and_what_the_budget_covers() -> None:
    metrics = EdgeMetrics()
    assert "# TYPE secfepas_edge_model_inferences_total counter" in metrics.render()
    metrics.budgets = _budgets(10)
    metrics.budgets.begin("m")
    text = metrics.render()
    assert 'secfepas_edge_model_inferences_total{model="m",version="1"} 1' in text
    assert 'secfepas_edge_circuit_privacy_covered_inferences{model="m",version="1"} 10' in text


def _pre_budget_package(root: Path, distance_log2: int) -> Path:
    """The demo package as imported before budgets (plan flooded at q180's most), its
    manifest stating a budget of 2^distance_log2 over 10^8 inferences."""
    pkg = root / "demo"
    shutil.copytree(demo_model_path(), pkg)
    plan = dataclasses.replace(
        load_public(pkg).plan, he_params="bfv-n8192-q180", circuit_privacy=None
    )
    raw = plan.to_json().encode("utf-8")
    (pkg / PLAN).write_bytes(raw)
    manifest = json.loads((pkg / MANIFEST).read_text())
    manifest.update(he_params="bfv-n8192-q180")
    manifest["circuit_privacy"]["distance_log2"] = distance_log2
    manifest["hashes"][PLAN] = sha256(raw)
    (pkg / MANIFEST).write_text(json.dumps(manifest))
    return root


def test_registry_works_out_what_each_budget_covers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="secfepas_sdk.edge.registry")
    demo_dir = tmp_path / "sized"
    demo_dir.mkdir()
    (demo_dir / "demo").symlink_to(demo_model_path(), target_is_directory=True)
    (model,) = ModelRegistry.load(demo_dir)
    assert model.budget_covered == 10**8
    assert model.budget_stated == "2^-40 over 100000000 inferences"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # A plan from before budgets: 2^-37.1 per inference, so 2^-37 covers one inference.
    (old,) = ModelRegistry.load(_pre_budget_package(tmp_path / "old", -37))
    assert old.budget_covered == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "covers only 1 of the 100000000" in warning and "before budgets" in warning


def test_edge_counts_warns_and_enforces_over_real_sessions(
    make_settings: Any,
    camera_tls: Any,
    demo_input: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A budget that covers one inference: the first gives the 90 % warning, the second
    the exhaustion error and, served on by default, a result; enforced, the second is
    refused with unknown_model (fatal for the camera) and a new session too."""
    caplog.set_level(logging.INFO)
    models = _pre_budget_package(tmp_path / "models", -37)

    async def main(enforce: bool) -> list[str]:
        outcomes = []
        settings = make_settings(model_dir=models, circuit_privacy_enforce=enforce)
        async with running(settings) as server:
            async with SecureInferenceClient(
                server.address, camera_tls(), MODEL, retry=ONE_TRY
            ) as client:
                for _ in range(2):
                    try:
                        await client.infer(demo_input)
                        outcomes.append("ok")
                    except PeerError as exc:
                        outcomes.append(str(exc.code))
            if enforce:
                with pytest.raises(PeerError, match="circuit-privacy budget"):
                    async with SecureInferenceClient(
                        server.address, camera_tls(), MODEL, retry=ONE_TRY
                    ) as again:
                        await again.infer(demo_input)
            text = server.metrics.render()
            used = 1 if enforce else 2  # a refused inference is not counted
            version = load_manifest(demo_model_path()).version
            label = f'{{model="{MODEL}",version="{version}"}}'
            assert f"secfepas_edge_model_inferences_total{label} {used}" in text
            assert "secfepas_edge_circuit_privacy_covered_inferences" in text
        return outcomes

    assert asyncio.run(main(False)) == ["ok", "ok"]
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("budget")]
    assert [level for level, _ in levels] == [logging.WARNING, logging.ERROR]
    caplog.clear()
    # What earlier tests (or the run above) left for the collector is not this run's:
    # collect it first, so that only transports of the sessions below can show here.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert asyncio.run(main(True)) == ["ok", "unknown_model"]
        gc.collect()  # an unclosed transport or unretrieved task is reported when collected
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []  # every session, refused or not, closed its transport
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
