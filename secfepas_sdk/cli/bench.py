"""`secfepas bench`: time secure inference of a model package on this machine.

The client and the server run as two processes over loopback TCP (as in
`secfepas snni selftest`), once per repeat, on a seeded random input of the
model's shape. The full benchmark scripts (Table III, camera, edge load) live
in the repository's benchmarks/ directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "bench", help="time secure inference of a model package (two local processes)"
    )
    parser.add_argument("--model", help="model package directory (default: the bundled demo model)")
    parser.add_argument("--repeat", type=int, default=3, help="inferences to run (default: 3)")
    parser.add_argument(
        "--he-workers",
        type=int,
        default=1,
        help="processes the edge splits its HE layers across (default: 1, the edge's own "
        "process; 0 = every core), to measure the speed-up against cores",
    )
    parser.add_argument(
        "--ot",
        choices=("ferret", "softspoken"),
        help="OT extension of both parties (default: the library default, ferret)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as one JSON object, no table"
    )
    parser.add_argument(
        "--json-out",
        metavar="PATH",
        type=Path,
        help="also write the JSON results to PATH (default: no file)",
    )
    parser.set_defaults(handler=_bench)


def _row(run: Any) -> dict[str, float]:
    c, s = run.client, run.server
    return {
        "seconds": float(c["total"]),
        "setup_seconds": float(c["setup_seconds"]),
        "infer_seconds": float(c["infer_seconds"]),
        "mb_client_to_server": c["bytes_sent"] / 1e6,
        "mb_server_to_client": c["bytes_received"] / 1e6,
        "rounds": float(c["rounds"]),
        "client_cpu_seconds": float(c["compute"]),
        "server_cpu_seconds": float(s["compute"]),
        "client_rss_mb": float(c["peak_rss_mb"]),
        "server_rss_mb": float(s["peak_rss_mb"]),
    }


def _bench(args: argparse.Namespace) -> int:
    import numpy as np

    from secfepas_sdk.cli.progress import Progress
    from secfepas_sdk.cli.selftest import run_two_processes
    from secfepas_sdk.errors import ConfigError
    from secfepas_sdk.models.bundled import demo_model_path
    from secfepas_sdk.models.package import load_public

    if args.repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    if args.he_workers < 0:
        raise ConfigError("--he-workers must be 0 (every core) or more")
    package = Path(args.model) if args.model else demo_model_path()
    model = load_public(package)
    shape = tuple(int(d) for d in model.manifest.input_shape)
    # A public, seeded test image, made into the model's input by its manifest's
    # preprocessing contract (benchmarking needs no secret randomness).
    from secfepas_sdk.camera.preprocess import PreprocessConfig, to_tensor

    image = np.random.default_rng(0).integers(0, 256, (shape[2], shape[3], 3), dtype=np.uint8)
    x = to_tensor(image, PreprocessConfig.from_manifest(model.manifest))
    rows = []
    header = (
        f"{'run':>4} {'total s':>8} {'setup s':>8} {'infer s':>8} "
        f"{'MB up':>8} {'MB down':>8} {'rounds':>7} {'CPU c/s s':>11} {'RSS c/s MB':>12}"
    )
    say = print if not args.json else _quiet
    say(
        f"model {model.manifest.model_id} {model.manifest.version}, input {shape}, "
        f"edge HE processes {args.he_workers or 'every core'}"
    )
    extension = ""
    say(header)
    with Progress("bench", enabled=not args.json) as progress:
        for i in range(args.repeat):
            progress.update(f"secure inference {i + 1}/{args.repeat} (camera and edge processes)")
            run = run_two_processes(package, x, he_workers=args.he_workers, ot_extension=args.ot)
            row = _row(run)
            extension = run.client["ot_extension"]
            rows.append(row)
            with progress.paused():
                say(
                    f"{i + 1:>4} {row['seconds']:>8.2f} {row['setup_seconds']:>8.2f} "
                    f"{row['infer_seconds']:>8.2f} {row['mb_client_to_server']:>8.1f} "
                    f"{row['mb_server_to_client']:>8.1f} {row['rounds']:>7.0f} "
                    f"{row['client_cpu_seconds']:>5.1f}/{row['server_cpu_seconds']:<5.1f} "
                    f"{row['client_rss_mb']:>5.0f}/{row['server_rss_mb']:<5.0f}",
                    flush=True,
                )
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    say(
        f"median: {median['seconds']:.2f} s per inference including setup, "
        f"{median['mb_client_to_server'] + median['mb_server_to_client']:.1f} MB, "
        f"OT extension {extension}"
    )
    result = {
        "model_id": model.manifest.model_id,
        "version": model.manifest.version,
        "he_workers": args.he_workers,
        "ot_extension": extension,
        "runs": rows,
        "median": median,
    }
    if args.json:
        print(json.dumps(result))
    if args.json_out is not None:
        try:
            args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.json_out}: {exc.strerror}") from None
    return 0


def _quiet(*_args: object, **_kwargs: object) -> None:
    """``print`` when --json asked for one JSON object and nothing else."""
