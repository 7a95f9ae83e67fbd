"""The camera of one network-profile session: the product's SecureInferenceClient
over mutual TLS to a ``secfepas edge serve`` at a benchmark address, ``--count``
inferences in one session (the first includes the once-per-session setup).

It runs inside the camera's namespace (``ip netns exec``) and prints one JSON line
once connected and one per inference: seconds, protocol bytes each way, SNNI
rounds, the camera's CPU-seconds, and bytes and rounds per op kind. After each
line it waits for a line on stdin, so the benchmark can read the edge's CPU
between inferences while the session (and its worker process) is still open.
Counts and times only: the logits stay here. The input is a seeded random image
made into the model's input by its manifest's contract (public test data, never
on a file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import linkemu


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _report(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)
    sys.stdin.readline()  # the benchmark's go-ahead (EOF: go on)


async def session(args: argparse.Namespace) -> None:
    from secfepas_sdk.camera.client import ClientTimeouts, SecureInferenceClient
    from secfepas_sdk.camera.preprocess import PreprocessConfig, to_tensor
    from secfepas_sdk.cli.selftest import traffic_by_kind
    from secfepas_sdk.models.package import load_public
    from secfepas_sdk.protocol.transport import TlsFiles

    public = load_public(args.package)
    shape = tuple(int(d) for d in public.manifest.input_shape)
    image = np.random.default_rng(args.seed).integers(0, 256, (shape[2], shape[3], 3), np.uint8)
    x = to_tensor(image, PreprocessConfig.from_manifest(public.manifest))
    pki = args.pki
    tls = TlsFiles(
        ca=pki / "ca.pem", cert=pki / "cameras/camera-1.pem", key=pki / "cameras/camera-1.key"
    )
    timeouts = ClientTimeouts(hello_s=600.0, frame_s=1800.0, inference_s=7200.0)
    client = SecureInferenceClient((args.host, args.port), tls, args.model_id, timeouts=timeouts)
    t0 = time.perf_counter()
    await client.connect()
    _report({"connect_seconds": time.perf_counter() - t0})
    try:
        for i in range(args.count):
            c0 = _cpu()
            a = await client.infer(x, frame_index=i)
            stats = client.last_stats
            assert stats is not None
            row: dict[str, Any] = {
                "index": i,
                "setup": i == 0,
                "seconds": a.seconds,
                "bytes_up": a.bytes_sent,
                "bytes_down": a.bytes_received,
                "snni_bytes_up": stats.bytes_sent,
                "snni_bytes_down": stats.bytes_received,
                "rounds": stats.rounds,
                "camera_cpu_s": _cpu() - c0,
                "by_kind": traffic_by_kind(public.plan, stats.as_dict()),
                "by_label": stats.as_dict()["by_label"],
            }
            _report(row)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the camera of one network-profile session")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--package", type=Path, required=True, help="the model's package")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host not in linkemu.OUR_HOSTS:
        parser.error(f"{args.host} is not an address of the benchmark's namespaces")
    asyncio.run(session(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
