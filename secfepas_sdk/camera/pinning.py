"""Model pinning: the camera runs only the model its operator installed.

Without a pin the camera trusts whatever manifest and plan the edge sends (it
checks only that they agree with each other). With a locally installed public
package (``--model-package DIR``), the edge's manifest and plan must be exactly
that package's, so a swapped or retrained model on the edge ends the session
before any pixel is shared.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.logsafe import safe_text
from secfepas_sdk.models.package import PublicModel, load_public
from secfepas_sdk.snni.plan import Plan

__all__ = ["check_pinned", "load_pin", "manifest_digest"]


def load_pin(package: str | Path, model_id: str) -> PublicModel:
    """Load the camera's public package (hashes verified) and check it is ``model_id``."""
    pinned = load_public(package)
    if pinned.manifest.model_id != model_id:
        raise ModelPackageError(
            f"the model package {package} holds {pinned.manifest.model_id!r}, "
            f"but the camera asks for {model_id!r}"
        )
    return pinned


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plan_digest(plan: Plan) -> str:
    return hashlib.sha256(plan.to_json().encode("utf-8")).hexdigest()


def check_pinned(pinned: PublicModel, manifest: dict[str, Any], plan: Plan) -> None:
    """Refuse an edge whose manifest or plan differs from the pinned package."""
    ours = pinned.manifest.model_dump(mode="json")
    theirs_hash, ours_hash = (_plan_digest(p) for p in (plan, pinned.plan))
    if theirs_hash != ours_hash:
        raise ModelPackageError(
            f"the edge's plan for {pinned.manifest.model_id} differs from the pinned package "
            f"(plan sha256 {theirs_hash[:16]}..., pinned {ours_hash[:16]}...)"
        )
    try:
        same = manifest_digest(manifest) == manifest_digest(ours)
    except (TypeError, ValueError) as exc:
        raise ModelPackageError(f"the edge's manifest is not plain JSON: {exc}") from exc
    if not same:
        differ = sorted(k for k in set(manifest) | set(ours) if manifest.get(k) != ours.get(k))
        raise ModelPackageError(
            f"the edge's manifest for {pinned.manifest.model_id} differs from the pinned "
            f"package in: {safe_text(', '.join(map(str, differ)), 200)}"
        )
