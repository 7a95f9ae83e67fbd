"""Recompile the bundled demo package with this SDK's compiler, keeping its identity.

Why: the demo package is a compiled artefact (plan and quantised weights), so compiler
improvements (a cheaper HE parameter set, tiling, max-pool comparisons on fewer bits)
reach `secfepas demo` only when it is rebuilt. The reference ONNX (seeded random
weights), the weight-free architecture, the id, the preprocessing contract and the
class names stay as they are; the plan, the weights and the hashes are written anew, and
the version takes the one given (the plan's hash changes the fingerprint anyway).

    python tools/rebuild_demo_package.py --version 0.2.0
    SECFEPAS_REGEN_GOLDEN=1 python -m pytest tests/snni/test_plan_golden.py   # review the diff
"""

from __future__ import annotations

import argparse
import sys

import onnx

from secfepas_sdk.models.bundled import demo_model_path
from secfepas_sdk.models.package import ARCHITECTURE, REFERENCE, load_manifest, write_package
from secfepas_sdk.snni.compile import compile_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the rebuilt package's version")
    args = parser.parse_args(argv)
    root = demo_model_path()
    manifest = load_manifest(root)
    reference = (root / REFERENCE).read_bytes()
    # The demo plan has no input range or activation bounds: tests feed it
    # standard-normal tensors (docs/models.md), so compile without them.
    plan, weights = compile_onnx(onnx.load_from_string(reference))
    meta = {
        "model_id": manifest.model_id,
        "version": args.version,
        "description": manifest.description,
        "preprocess": manifest.preprocess,
        "class_names": manifest.class_names,
    }
    write_package(
        root,
        architecture=(root / ARCHITECTURE).read_bytes(),
        plan=plan,
        weights=weights,
        meta=meta,
        reference=reference,
    )
    print(f"rebuilt {manifest.model_id} {args.version}: {plan.he_params}, {len(plan.ops)} ops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
