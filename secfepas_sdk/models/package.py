"""Model packages: a public part for the camera and a private part for the edge.

Layout of a package directory::

    manifest.json        public: id, version, input shape, mean/std, l, f, HE set,
                         circuit-privacy budget, class names, sha256 of the two
                         public files below
    architecture.onnx    public: the ONNX graph with no parameter value (initializers
                         and Constants are typed inputs: shapes only)
    plan.json            public: the compiled secure plan (shapes only)
    private/weights.npz  edge only: quantised int64 weights (numpy, no pickle)
    private/weights.sha256  edge only: the weights' sha256 (public, it would let
                         anyone confirm a guessed weights file)
    private/reference.onnx  edge only, optional: the original float model

The camera needs only the public files; the edge verifies every hash before
it uses a weight. Any mismatch raises ModelPackageError.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from secfepas_sdk.errors import InvalidValueError, ModelPackageError, SecfepasError
from secfepas_sdk.models.contract import PreprocessContract, contract_from_manifest
from secfepas_sdk.snni.he.flooding import DEFAULT_BUDGET, MAX_INFERENCES, CircuitPrivacy
from secfepas_sdk.snni.plan import ModelWeights, Plan

MANIFEST = "manifest.json"
ARCHITECTURE = "architecture.onnx"
PLAN = "plan.json"
WEIGHTS = "private/weights.npz"
WEIGHTS_HASH = "private/weights.sha256"
REFERENCE = "private/reference.onnx"
PUBLIC_FILES = (ARCHITECTURE, PLAN)
# 3: the circuit-privacy budget; 2: the preprocessing contract; 1 (top-level mean/std)
# and 2 still load (an older manifest states the default budget)
FORMAT_VERSION = 3
_MAX_PUBLIC_BYTES = 64 << 20
_MAX_WEIGHTS_BYTES = 2 << 30


class CircuitPrivacyBudget(BaseModel):
    """The package's circuit-privacy budget (public): noise flooding leaves at most
    2^distance_log2 of statistical distance about the weights over ``inferences``
    inferences, all cameras together (docs/snni-he.md, "Circuit privacy")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    distance_log2: int = Field(default=DEFAULT_BUDGET.distance_log2, ge=-128, le=-1, strict=True)
    inferences: int = Field(default=DEFAULT_BUDGET.inferences, ge=1, le=MAX_INFERENCES, strict=True)

    @property
    def engine(self) -> CircuitPrivacy:
        return CircuitPrivacy(distance_log2=self.distance_log2, inferences=self.inferences)

    @staticmethod
    def of(budget: CircuitPrivacy) -> CircuitPrivacyBudget:
        return CircuitPrivacyBudget(
            distance_log2=budget.distance_log2, inferences=budget.inferences
        )


class Manifest(BaseModel):
    """The public description of a model package (validated at load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    model_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+\-]+$")
    description: str = ""
    input_shape: tuple[int, int, int, int]
    preprocess: PreprocessContract
    ring_bits: int = Field(ge=8, le=60)
    frac_bits: int = Field(ge=1, le=30)
    he_params: str
    circuit_privacy: CircuitPrivacyBudget = CircuitPrivacyBudget()
    class_names: tuple[str, ...] = Field(min_length=1)
    hashes: dict[str, str]

    @field_validator("hashes")
    @classmethod
    def _hashes(cls, v: dict[str, str]) -> dict[str, str]:
        for name in PUBLIC_FILES:
            h = v.get(name, "")
            if len(h) != 64 or any(ch not in "0123456789abcdef" for ch in h):
                raise InvalidValueError(f"missing or malformed sha256 for {name}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Format 1 had top-level mean/std and an implied RGB square-crop contract."""
        if isinstance(data, dict) and "preprocess" not in data and "mean" in data:
            data = dict(data)
            try:
                data["preprocess"] = contract_from_manifest(data, "format-1 manifest")
            except ModelPackageError as exc:
                raise InvalidValueError(str(exc)) from exc
            data.pop("mean", None)
            data.pop("std", None)
        return data

    @model_validator(mode="after")
    def _contract_fits(self) -> Manifest:
        if self.preprocess.input_shape != tuple(self.input_shape):
            raise InvalidValueError(
                f"the preprocessing contract's input {list(self.preprocess.input_shape)} "
                f"differs from input_shape {list(self.input_shape)}"
            )
        if self.format_version > FORMAT_VERSION:
            raise InvalidValueError(f"format {self.format_version} is newer than this SDK's")
        return self

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocess.std

    @property
    def fingerprint(self) -> str:
        """What two parties must agree on: id, version and the plan's hash."""
        return f"{self.model_id}@{self.version}#{self.hashes[PLAN][:16]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicModel:
    manifest: Manifest
    plan: Plan


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateModel:
    manifest: Manifest
    plan: Plan
    weights: ModelWeights

    @property
    def public(self) -> PublicModel:
        return PublicModel(manifest=self.manifest, plan=self.plan)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(root: Path, name: str, limit: int) -> bytes:
    path = root / name
    try:
        size = path.stat().st_size
        if size > limit:
            raise ModelPackageError(f"{path} is {size} bytes, above the {limit} limit")
        return path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"cannot read {path}: {exc}") from exc


def _verified(root: Path, name: str, want: str, limit: int) -> bytes:
    data = _read(root, name, limit)
    if sha256(data) != want:
        raise ModelPackageError(f"{root / name}: sha256 mismatch (tampered or wrong version)")
    return data


def _load_manifest(root: Path) -> tuple[Manifest, str | None]:
    """The manifest, and the weights hash an older (format 1) manifest still carries."""
    raw = _read(root, MANIFEST, 1 << 20)
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ModelPackageError(f"{root / MANIFEST} is invalid: not a JSON object")
        legacy = data.pop("weights_hash", None)
        return Manifest.model_validate(data), legacy if isinstance(legacy, str) else None
    except (ValidationError, ValueError) as exc:
        raise ModelPackageError(f"{root / MANIFEST} is invalid: {exc}") from exc


def load_manifest(path: str | Path) -> Manifest:
    return _load_manifest(Path(path))[0]


def _weights_hash(root: Path, legacy: str | None) -> str:
    """The private weights hash (private/weights.sha256, or an old manifest's field)."""
    if (root / WEIGHTS_HASH).is_file() or legacy is None:
        legacy = _read(root, WEIGHTS_HASH, 1024).decode("ascii", "replace").strip()
    if len(legacy) != 64 or any(ch not in "0123456789abcdef" for ch in legacy):
        raise ModelPackageError(f"{root / WEIGHTS_HASH}: not a sha256 hex digest")
    return legacy


def load_public(path: str | Path) -> PublicModel:
    """Camera side: the manifest and the plan, hashes verified; never any weight."""
    root = Path(path)
    manifest = load_manifest(root)
    _verified(root, ARCHITECTURE, manifest.hashes[ARCHITECTURE], _MAX_PUBLIC_BYTES)
    plan_raw = _verified(root, PLAN, manifest.hashes[PLAN], _MAX_PUBLIC_BYTES)
    try:
        plan = Plan.from_json(plan_raw.decode("utf-8"))
    except (SecfepasError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{root / PLAN}: {exc}") from exc
    _check_plan_matches(manifest, plan)
    return PublicModel(manifest=manifest, plan=plan)


def _check_plan_matches(manifest: Manifest, plan: Plan) -> None:
    if (
        tuple(plan.input_shape) != tuple(manifest.input_shape)
        or plan.ring_bits != manifest.ring_bits
        or plan.frac_bits != manifest.frac_bits
        or plan.he_params != manifest.he_params
    ):
        raise ModelPackageError("the plan does not match the manifest")
    budget = plan.circuit_privacy
    if budget is not None and budget != manifest.circuit_privacy.engine:
        raise ModelPackageError(
            f"the plan is sized for the circuit-privacy budget {budget.describe()}, the "
            f"manifest states {manifest.circuit_privacy.engine.describe()}"
        )
    if int(np.prod(plan.output_shape)) != len(manifest.class_names):
        raise ModelPackageError("the number of class names does not match the model output")


def load_weights_npz(data: bytes) -> ModelWeights:
    """Parse weights.npz without pickle; every array must be int64."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ModelPackageError(f"weights are not a valid npz: {exc}") from exc
    bad = [k for k, a in arrays.items() if a.dtype != np.int64]
    if bad:
        raise ModelPackageError(f"weights {bad} are not int64")
    return ModelWeights({k: a.astype(np.int64, copy=False) for k, a in arrays.items()})


def load_private(path: str | Path) -> PrivateModel:
    """Edge side: public part plus weights, every sha256 verified."""
    root = Path(path)
    public = load_public(root)
    want = _weights_hash(root, _load_manifest(root)[1])
    data = _verified(root, WEIGHTS, want, _MAX_WEIGHTS_BYTES)
    weights = load_weights_npz(data)
    try:
        weights.check_against(public.plan)
    except SecfepasError as exc:
        raise ModelPackageError(f"weights do not match the plan: {exc}") from exc
    return PrivateModel(manifest=public.manifest, plan=public.plan, weights=weights)


def reference_onnx(path: str | Path) -> Path | None:
    """The original float model, if the package kept one (edge side only)."""
    ref = Path(path) / REFERENCE
    return ref if ref.is_file() else None


def ensure_same_model(camera: Manifest, edge: Manifest) -> None:
    """Refuse a session whose two ends hold different models or versions."""
    if camera.fingerprint != edge.fingerprint:
        raise ModelPackageError(
            f"model mismatch: camera has {camera.fingerprint}, edge has {edge.fingerprint}"
        )


def write_package(
    out_dir: str | Path,
    *,
    architecture: bytes,
    plan: Plan,
    weights: ModelWeights,
    meta: dict[str, Any],
    reference: bytes | None = None,
) -> Manifest:
    """Write a package directory; ``meta`` holds model_id, version, preprocess, class_names."""
    root = Path(out_dir)
    plan_raw = plan.to_json().encode("utf-8")
    buf = io.BytesIO()
    np.savez_compressed(buf, **weights.arrays)  # type: ignore[arg-type]
    weights_raw = buf.getvalue()
    try:
        manifest = Manifest(
            input_shape=plan.input_shape,  # type: ignore[arg-type]
            ring_bits=plan.ring_bits,
            frac_bits=plan.frac_bits,
            he_params=plan.he_params,
            circuit_privacy=CircuitPrivacyBudget.of(plan.circuit_privacy or DEFAULT_BUDGET),
            hashes={ARCHITECTURE: sha256(architecture), PLAN: sha256(plan_raw)},
            **meta,
        )
    except ValidationError as exc:
        raise ModelPackageError(f"invalid package metadata: {exc}") from exc
    _check_plan_matches(manifest, plan)
    files = {
        ARCHITECTURE: architecture,
        PLAN: plan_raw,
        WEIGHTS: weights_raw,
        WEIGHTS_HASH: (sha256(weights_raw) + "\n").encode("ascii"),
        MANIFEST: (
            json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        ).encode("utf-8"),
    }
    if reference is not None:
        files[REFERENCE] = reference
    _write_atomically(root, files)
    return manifest


def _write_atomically(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a fresh sibling folder, then rename it to ``root``: no
    half-written package ever exists. An older package at ``root`` is replaced
    whole; any other non-empty folder there is refused."""
    foreign = root.exists() and not (root / MANIFEST).is_file()
    if foreign and (not root.is_dir() or any(root.iterdir())):
        raise ModelPackageError(f"{root} exists and is not a model package; not replacing it")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    except OSError as exc:
        raise ModelPackageError(f"cannot write the package {root}: {exc}") from exc
    old = tmp.with_suffix(".old")
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - the public part is meant to be readable
        (tmp / "private").mkdir(mode=0o700)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
    except OSError as exc:
        if old.exists() and not root.exists():
            os.replace(old, root)
        raise ModelPackageError(f"cannot write the package {root}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
