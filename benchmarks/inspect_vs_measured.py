"""`secfepas model inspect`'s estimate against a measured two-party run, per op kind.

    python benchmarks/inspect_vs_measured.py TABLE3.json MODEL.onnx [--name squeezenet]

TABLE3.json is what ``benchmarks/table3.py --json`` wrote (per model: bytes each
way and rounds per op kind, of one inference including the session setup).
MODEL is the ONNX that run measured (imported here as table3.py imports it: its
l and f, four classes) or a package directory. The estimate is inspect's, from
the package's public part. It prints, per op kind and in total, the estimated
and measured MB up (camera to edge), MB down and rounds with the difference in %,
and exits 1 if any difference exceeds --tolerance (10% by default).

Rows: each op kind of the plan; ``setup`` is the session's one-off HE keys and
base OTs (table3's ``he`` and ``ot-setup`` labels); ``output`` is the edge's
share of the logits. A measured label that is none of these is a row of its
own that inspect does not estimate, so it fails unless it moved nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

SETUP_LABELS = ("he", "ot-setup")
FIELDS = ("bytes_up", "bytes_down", "rounds")
Row = dict[str, int]


def estimate_by_kind(report: dict[str, Any]) -> dict[str, Row]:
    """inspect's report (``--json``) summed per op kind, plus setup and output."""
    out: dict[str, Row] = {}
    for layer in report["layers"]:
        row = out.setdefault(layer["kind"], dict.fromkeys(FIELDS, 0))
        for f in FIELDS:
            row[f] += int(layer[f])
    totals = report["per_inference"]
    out["output"] = {f: int(totals[f]) - sum(r[f] for r in out.values()) for f in FIELDS}
    out["setup"] = {f: int(report["setup"][f]) for f in FIELDS}
    return out


def measured_by_kind(result: dict[str, Any]) -> dict[str, Row]:
    """table3's per-label counters, with the setup labels merged into ``setup``."""
    out: dict[str, Row] = {}
    for label, v in result["by_kind"].items():
        row = out.setdefault("setup" if label in SETUP_LABELS else label, dict.fromkeys(FIELDS, 0))
        for f in FIELDS:
            row[f] += int(v[f])
    return out


def difference(estimate: int, measured: int) -> float:
    """(estimate - measured) / measured in %; 0 if both are 0, inf if only one is."""
    if measured == 0:
        return 0.0 if estimate == 0 else math.inf
    return 100.0 * (estimate - measured) / measured


def compare(
    estimate: dict[str, Row], measured: dict[str, Row], tolerance: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """The table rows (kinds that move anything, then ``total``) and the failures."""
    zero = dict.fromkeys(FIELDS, 0)
    kinds = sorted(set(estimate) | set(measured))
    rows, failures = [], []
    total_e, total_m = dict(zero), dict(zero)
    for kind in kinds:
        e, m = estimate.get(kind, zero), measured.get(kind, zero)
        for f in FIELDS:
            total_e[f] += e[f]
            total_m[f] += m[f]
        if any(e[f] or m[f] for f in FIELDS):
            rows.append({"kind": kind, "estimate": e, "measured": m})
    rows.append({"kind": "total", "estimate": total_e, "measured": total_m})
    for row in rows:
        for f in FIELDS:
            d = difference(row["estimate"][f], row["measured"][f])
            row[f"{f}_diff_pct"] = d
            if abs(d) > tolerance:
                failures.append(
                    f"{row['kind']} {f}: estimate {row['estimate'][f]}, measured "
                    f"{row['measured'][f]} ({d:+.1f}%)"
                )
    return rows, failures


def print_table(name: str, rows: list[dict[str, Any]]) -> None:
    print(f"{name}: inspect's estimate against the measured run (one inference + setup)")
    print("| op kind | MB up est | MB up meas | diff | MB down est | MB down meas | diff "
          "| rounds est | rounds meas | diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        e, m = row["estimate"], row["measured"]
        cells = [row["kind"]]
        for f in FIELDS:
            scale = 1 if f == "rounds" else 1e6
            fmt = "{:.0f}" if f == "rounds" else "{:.3f}"
            cells += [fmt.format(e[f] / scale), fmt.format(m[f] / scale),
                      f"{row[f + '_diff_pct']:+.2f}%"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def _result(table3: dict[str, Any], name: str | None, path: Path) -> dict[str, Any]:
    results = table3.get("results")
    if not isinstance(results, list) or not results:
        raise SystemExit(f"inspect_vs_measured: {path} holds no table3 results")
    if name is None and len(results) == 1:
        return dict(results[0])
    found = [r for r in results if r.get("model") == name]
    if not found:
        have = ", ".join(str(r.get("model")) for r in results)
        raise SystemExit(f"inspect_vs_measured: no model {name!r} in {path} (it has {have})")
    return dict(found[0])


def inspect_report(model: Path, result: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from secfepas_sdk.models.importer import import_onnx
    from secfepas_sdk.models.inspect import inspect_package

    package = model
    if not model.is_dir():
        package = tmp / "pkg"
        import_onnx(
            model, package, model_id=str(result["model"]), ring_bits=int(result["ring_bits"]),
            frac_bits=int(result["frac_bits"]), keep_reference=False,
            class_names=["none", "little", "moderate", "extreme"],
        )  # fmt: skip
    report = inspect_package(package)
    ring = report["ring"]
    wanted = (result["ring_bits"], result["frac_bits"], result["he_params"])
    if (ring["bits"], ring["frac_bits"], report["he"]["params"]) != tuple(wanted):
        raise SystemExit(
            f"inspect_vs_measured: {model} has l={ring['bits']} f={ring['frac_bits']} "
            f"{report['he']['params']}, the measured run l={wanted[0]} f={wanted[1]} {wanted[2]}"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table3", type=Path, help="the JSON benchmarks/table3.py --json wrote")
    parser.add_argument("model", type=Path, help="the measured MODEL.onnx, or its package")
    parser.add_argument("--name", help="the model's name in the JSON (default: the only one, "
                        "or the file's stem)")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=10.0, help="in %% (default 10)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    table3 = json.loads(args.table3.read_text())
    name = args.name
    if name is None and len(table3.get("results", [])) != 1:
        name = args.model.stem if not args.model.is_dir() else args.model.name
    result = _result(table3, name, args.table3)
    with tempfile.TemporaryDirectory(prefix="secfepas-inspect-vs-") as tmp:
        report = inspect_report(args.model, result, Path(tmp))
    rows, failures = compare(estimate_by_kind(report), measured_by_kind(result), args.tolerance)
    print_table(str(result["model"]), rows)
    if args.json is not None:
        args.json.write_text(json.dumps({"model": result["model"], "rows": rows}, indent=2))
    if failures:
        print(f"FAIL: off by more than {args.tolerance:g}%: " + "; ".join(failures))
        return 1
    print(f"ok: every op kind within {args.tolerance:g}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
