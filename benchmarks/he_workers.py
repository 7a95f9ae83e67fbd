"""Speed-up of one HE layer against the edge's block processes (``he_workers``).

For each ResNet50-sized conv it times the edge's side of one layer call with
1, 2, ... block processes: wall time, and CPU-seconds of the edge (this process,
whose camera thread only replays pre-encrypted messages, plus every block
process, read from /proc). The camera's ciphertexts are encrypted once and
replayed, so each run sees the same bytes; the replies must be byte-identical
for every process count, and the camera's decryption must give W x exactly.
By default the kernels are NTT'd per inference, as most of ResNet50's are under
the edge's default 512 MiB cache (``--cache`` pre-encodes them instead).

    flock /tmp/secfepas-bench.lock python benchmarks/he_workers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from secfepas_sdk.edge.he_pool import proc_cpu_seconds, start_pool
from secfepas_sdk.snni.channel import Channel, run_pair
from secfepas_sdk.snni.he.blobs import INPUT_CHUNK, REPLY_CHUNK, pack_blobs, unpack_blobs
from secfepas_sdk.snni.he.engine import HeClient, HeServer
from secfepas_sdk.snni.he.layers import ConvLayer, ConvSpec
from secfepas_sdk.snni.he.params import BFV_N8192_Q200, HeParams, get_params
from secfepas_sdk.snni.he.reply import ReplyFormat
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
# name: (in channels, out channels, kernel, size): ResNet50's layer3 convs at 14x14
LAYERS = {
    "3x3-256-256-14": (256, 256, 3, 14),
    "1x1-1024-256-14": (1024, 256, 1, 14),
    "3x3-96-96-8": (96, 96, 3, 8),  # small: the smoke test
}


def _peak_rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    return {"cpu": model, "cores": cores, "python": platform.python_version()}


def _reference(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    c, h, wd = x.shape
    p = k // 2
    xp = np.zeros((c, h + 2 * p, wd + 2 * p), dtype=np.int64)
    xp[:, p : p + h, p : p + wd] = RING.to_signed(x)
    y = np.zeros((w.shape[0], h, wd), dtype=np.int64)
    for di in range(k):
        for dj in range(k):
            y += np.tensordot(w[:, :, di, dj], xp[:, di : di + h, dj : dj + wd], axes=(1, 0))
    return RING.reduce(y).reshape(-1)


def _layer(
    name: str, args: argparse.Namespace, client: HeClient, params: HeParams
) -> list[dict[str, Any]]:
    cin, cout, k, size = LAYERS[name]
    spec = ConvSpec(
        in_shape=(cin, size, size), out_channels=cout, kernel=(k, k), pads=(k // 2,) * 4
    )
    layer = ConvLayer(spec, params.poly_degree)
    rng = np.random.default_rng(0)
    w = rng.integers(-(1 << 9), 1 << 9, size=(cout, cin, k, k), dtype=np.int64)
    x = RING.random(Prg(), spec.in_shape)
    x0, x1 = RING.share(x, Prg())
    polys = layer.pack(x0)
    messages = [
        pack_blobs(client.uploads(polys[s : s + INPUT_CHUNK]))
        for s in range(0, len(polys), INPUT_CHUNK)
    ]
    lay = layer.layout
    server = HeServer(params, RING, prg=Prg(bytes(16)))
    run_pair(client.setup, server.setup)
    # as the edge's runtime does: the sparse view lets the cost model pick the direct path
    source, sparse = layer.kernel_views(w)
    if args.cache:
        source = layer.kernel_polys(w)
    # trimmed replies, as every plan with a circuit-privacy budget has (a flood of 2^115,
    # SqueezeNet's largest; d0 = 20, d1 = 8): c0 is then needed at the outputs only
    fmt = None if args.whole_replies else ReplyFormat(c0_drop=20, c1_drop=8)
    prepared = server.prepare(
        lay, source, layer.l1_bound(w), cache=args.cache, sparse=None if args.seal else sparse,
        flood_bits=None if fmt is None else 115, reply=fmt,
    )  # fmt: skip
    codec = None if fmt is None else client.codec(lay, fmt)
    share1 = layer.pack(x1)

    def camera(ch: Channel) -> list[bytes]:
        for message in messages:
            ch.send(message)
        replies: list[bytes] = []
        for start in range(0, lay.n_out, REPLY_CHUNK):
            count = min(REPLY_CHUNK, lay.n_out - start)
            replies += unpack_blobs(ch.recv(), count=count, max_each=server.max_ct_bytes)
        return replies

    rows, first = [], None
    for workers in args.workers:
        pool = start_pool(server, workers, close_in_child=[], timeout_s=3600)
        try:
            walls, cpus, paths = [], [], []
            for _ in range(args.repeat):
                server._prg = Prg(bytes(16))  # every run: the same call seed
                blocks = pool.pids if pool is not None else []
                m0, b0 = time.process_time(), [proc_cpu_seconds(p) for p in blocks]
                t0 = time.perf_counter()
                replies, y1 = run_pair(camera, lambda ch: server.linear(ch, prepared, share1))
                walls.append(time.perf_counter() - t0)
                main = time.process_time() - m0
                each = [proc_cpu_seconds(p) - c for p, c in zip(blocks, b0, strict=True)]
                cpus.append(main + sum(each))
                # The busiest process's CPU time: the wall time with a free core each.
                paths.append(max([main, *each]))
                if first is None:
                    y0 = client.decrypt(replies, codec).reshape(-1)[lay.out_index]
                    if not np.array_equal(RING.add(y0, y1), _reference(x, w, k)):
                        raise SystemExit(f"{name}: the secure conv is wrong")
                    first = replies
                elif replies != first:
                    raise SystemExit(f"{name}: {workers} processes changed the replies")
            block_rss = [_peak_rss_mb(p) for p in (pool.pids if pool is not None else [])]
        finally:
            server.pool = None
            if pool is not None:
                pool.close()
        row = {
            "layer": name,
            "params": params.name,
            "n_in": lay.n_in,
            "n_out": lay.n_out,
            "n_mul": lay.n_mul,
            "kernels_cached": args.cache,
            "direct_path": prepared.direct is not None,
            "trimmed_replies": fmt is not None,
            "he_workers": workers,
            "wall_s": walls,
            "cpu_s": cpus,
            "wall_median_s": statistics.median(walls),
            "cpu_median_s": statistics.median(cpus),
            "busiest_process_cpu_s": paths,
            "busiest_median_s": statistics.median(paths),
            "load_after": os.getloadavg()[0],
            "session_peak_rss_mb": _peak_rss_mb(),
            "block_peak_rss_mb": block_rss,
        }
        rows.append(row)
        print(
            f"{name:>16} {'direct' if row['direct_path'] else 'SEAL'} W={workers}: "
            f"wall {row['wall_median_s']:.2f} s "
            f"({', '.join(f'{v:.2f}' for v in walls)}), CPU {row['cpu_median_s']:.2f} s "
            f"(busiest process {row['busiest_median_s']:.2f} s), "
            f"load {row['load_after']:.1f}",
            flush=True,
        )
    server.close()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=list(LAYERS)[:2], choices=list(LAYERS))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", action="store_true", help="pre-encode the kernels")
    parser.add_argument(
        "--seal", action="store_true", help="SEAL's products only (no direct path), as before"
    )
    parser.add_argument(
        "--whole-replies",
        action="store_true",
        help="replies as whole SEAL ciphertexts (plans without a budget), not trimmed",
    )
    parser.add_argument(
        "--params",
        default=BFV_N8192_Q200.name,
        help="HE parameter set (default: the one "
        "every model compiled with the default circuit-privacy budget uses)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    params = get_params(args.params)
    client = HeClient(params, RING)
    result: dict[str, Any] = {
        "machine": _machine(),
        "params": params.name,
        "load_before": os.getloadavg()[0],
    }
    rows = []
    for name in args.layers:
        rows += _layer(name, args, client, params)
    client.close()
    for row in rows:
        one = next(r for r in rows if r["layer"] == row["layer"] and r["he_workers"] == 1)
        row["speedup_wall"] = one["wall_median_s"] / row["wall_median_s"]
        row["cpu_ratio"] = row["cpu_median_s"] / one["cpu_median_s"]
        row["speedup_busiest"] = one["busiest_median_s"] / row["busiest_median_s"]
    result["rows"] = rows
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
