"""The edge's model registry: private model packages found in one directory.

Every package is loaded once at start-up with its hashes verified (a tampered
package stops the server from starting). Only the public parts (manifest and
plan) stay in this process; the weights are loaded by the worker processes.
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
            models.append(
                RegisteredModel(
                    model_id=str(manifest["model_id"]),
                    version=str(manifest.get("version", "")),
                    path=path,
                    manifest=manifest,
                    plan=json.loads(private.plan.to_json()),
                )
            )
            log.info(
                "model %s (version %s) verified from %s",
                models[-1].model_id,
                models[-1].version,
                path,
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
