"""`secfepas edge serve`: run the edge server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("edge", help="run the edge server (holds the model weights)")
    sub = parser.add_subparsers(dest="edge_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser(
        "serve",
        help="serve secure inference to cameras over mutual TLS",
        description="Settings come from --config (TOML), SECFEPAS_EDGE_* variables and "
        "these flags (strongest). See docs/edge.md.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        help="edge.toml settings file (default: none; flags and SECFEPAS_EDGE_* only)",
    )
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="address for cameras (default: 127.0.0.1:7443)"
    )
    serve.add_argument(
        "--model-dir",
        type=Path,
        help="directory of private model packages (no default: this flag, edge.toml or "
        "SECFEPAS_EDGE_MODEL_DIR)",
    )
    serve.add_argument(
        "--ca",
        type=Path,
        help="site CA certificate (PEM) that signs cameras (no default, like --model-dir)",
    )
    serve.add_argument(
        "--cert", type=Path, help="edge certificate (PEM) (no default, like --model-dir)"
    )
    serve.add_argument(
        "--key", type=Path, help="edge private key (PEM) (no default, like --model-dir)"
    )
    serve.add_argument(
        "--metrics-port", type=int, help="Prometheus/health HTTP port on 127.0.0.1 (default: 9464)"
    )
    serve.add_argument(
        "--no-metrics", action="store_true", help="serve no metrics or health endpoint"
    )
    serve.add_argument(
        "--max-sessions", type=int, help="concurrent sessions (worker processes; default: 2)"
    )
    serve.add_argument(
        "--ot",
        metavar="EXT[,EXT]",
        help="OT extensions cameras may choose: ferret, softspoken (default: both; a camera "
        "gets the first of its own proposal that is listed here)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds that open inferences get to finish on SIGINT/SIGTERM",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from secfepas_sdk._extras import require

    require("pydantic_settings", "edge")
    from secfepas_sdk.edge.settings import load_settings
    from secfepas_sdk.protocol.address import parse_host_port

    host: str | None = None
    port: int | None = None
    if args.listen:
        host, port = parse_host_port(args.listen, what="--listen", listen=True)
    settings = load_settings(
        args.config,
        host=host,
        port=port,
        model_dir=args.model_dir,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        metrics_port=args.metrics_port,
        metrics_enabled=False if args.no_metrics else None,
        max_sessions=args.max_sessions,
        ot_extensions=args.ot,
    )
    asyncio.run(_run(settings, args.grace))
    return 0


async def _run(settings: Any, grace: float) -> None:
    from secfepas_sdk.edge.server import Server, reload_on_sighup, stop_on_signals

    async with Server(settings, grace_s=grace) as server:
        host, port = server.address
        metrics = server.metrics_port
        print(
            f"secfepas edge: listening on {host}:{port}"
            + (f", metrics on http://{settings.metrics_host}:{metrics}/metrics" if metrics else ""),
            flush=True,
        )
        stop_on_signals(server)
        reload_on_sighup(server)
        await server.serve_forever()
