"""The edge's model registry: private model packages found in one directory.

Every package is loaded once at start-up with its hashes verified (a tampered
package stops the server from starting). Only the public parts (manifest and
plan) stay in this process; the weights are loaded by the worker processes.
Each model's circuit-privacy budget is worked out here, from the public plan:
how many inferences its flooding covers (edge.budget counts them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secfepas_sdk.errors import ConfigError, InvalidValueError, ModelPackageError

__all__ = ["ModelRegistry", "RegisteredModel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredModel:
    """One servable model: where its package is, and what cameras may see of it."""

    model_id: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(hash=False)
    plan: dict[str, Any] = field(hash=False)
    # Inferences the circuit-privacy budget covers, and the budget in words (None: not
    # counted, for models built by hand).
    budget_covered: int | None = None
    budget_stated: str = ""

    def __post_init__(self) -> None:
        if not self.model_id:
            raise InvalidValueError("model_id must not be empty")


class ModelRegistry:
    """Model id -> RegisteredModel, read-only after construction."""

    def __init__(self, models: list[RegisteredModel]) -> None:
        self._models: dict[str, RegisteredModel] = {}
        for model in models:
            if model.model_id in self._models:
                raise ConfigError(
                    f"model id {model.model_id!r} is provided by both "
                    f"{self._models[model.model_id].path} and {model.path}"
                )
            self._models[model.model_id] = model

    @classmethod
    def load(cls, model_dir: Path) -> ModelRegistry:
        """Load and verify every package under ``model_dir`` (hidden entries skipped)."""
        from secfepas_sdk.models.package import load_private
        from secfepas_sdk.snni.privacy import budget_inferences, inference_distance_log2

        root = Path(model_dir)
        if not root.is_dir():
            raise ConfigError(f"model directory {root} does not exist")
        models = []
        for path in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
            try:
                private = load_private(path)
            except ModelPackageError as exc:
                raise ConfigError(f"model package {path} failed verification: {exc}") from exc
            manifest = private.manifest.model_dump(mode="json")
            budget = private.manifest.circuit_privacy.engine
            covered = budget_inferences(private.plan, budget)
            models.append(
                RegisteredModel(
                    model_id=str(manifest["model_id"]),
                    version=str(manifest.get("version", "")),
                    path=path,
                    manifest=manifest,
                    plan=json.loads(private.plan.to_json()),
                    budget_covered=covered,
                    budget_stated=budget.describe(),
                )
            )
            log.info(
                "model %s (version %s) verified from %s; circuit privacy 2^%.1f per "
                "inference, its budget (%s) covers %d inferences",
                models[-1].model_id,
                models[-1].version,
                path,
                inference_distance_log2(private.plan),
                budget.describe(),
                covered,
            )
            if covered < budget.inferences:
                log.warning(
                    "model %s: its plan's flooding covers only %d of the %d inferences its "
                    "circuit-privacy budget states (%s); re-import it with this SDK, which "
                    "sizes the flooding to the budget",
                    models[-1].model_id,
                    covered,
                    budget.inferences,
                    "a plan from before budgets"
                    if private.plan.circuit_privacy is None
                    else "a plan sized for another budget",
                )
        if not models:
            raise ConfigError(f"no model package found in {root}")
        return cls(models)

    def get(self, model_id: str) -> RegisteredModel | None:
        return self._models.get(model_id)

    def __iter__(self) -> Iterator[RegisteredModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
