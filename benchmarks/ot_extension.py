"""Benchmark OT extension: IKNP, SoftSpokenOT for several k, and Ferret silent OT.

Both parties run as separate processes on this machine over loopback TCP
(SocketChannel). For each extension: setup (base OTs + SoftSpokenOT's PPRF
message; for Ferret also its bootstrap and first 10 M-COT LPN iteration), then
2^log-ot random OTs (client receives, server sends), then
optionally a ReLU over 2^log-relu elements through NonlinearEngine. Each figure
is the slower party's wall time; outputs are checked after the timings.

    flock /tmp/secfepas-bench.lock python benchmarks/ot_extension.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import socket
import sys
import time
from typing import Any

import numpy as np

from secfepas_sdk.protocol.transport import SocketChannel
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

CONFIGS = {"iknp": ("iknp", 4), "ss2": ("softspoken", 2), "ss4": ("softspoken", 4)}
CONFIGS["ss8"] = ("softspoken", 8)
CONFIGS["ferret"] = ("ferret", 4)  # bootstrapped from SoftSpokenOT k = 4


def _connect(party: Party, port: int) -> socket.socket:
    if party is Party.SERVER:
        listener = socket.create_server(("127.0.0.1", port))
        conn, _ = listener.accept()
        listener.close()
        return conn
    for _ in range(200):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("could not connect to the server process")


def _timed(channel: Channel, fn: Any) -> tuple[Any, dict[str, Any]]:
    sent, recv = channel.stats.bytes_sent, channel.stats.bytes_received
    start = time.perf_counter()
    out = fn()
    return out, {
        "seconds": time.perf_counter() - start,
        "bytes_sent": channel.stats.bytes_sent - sent,
        "bytes_received": channel.stats.bytes_received - recv,
    }


def _party(who: int, port: int, name: str, args: argparse.Namespace, queue: Any) -> None:
    party = Party(who)
    extension, k = CONFIGS[name]
    channel = SocketChannel(_connect(party, port), timeout_s=900)
    ring = Ring(bits=37, frac_bits=12)
    engine = NonlinearEngine(channel, party=party, ring=ring, ot_extension=extension, ot_k=k)
    result: dict[str, Any] = {"party": party.name.lower()}
    _, result["setup"] = _timed(channel, engine.setup)
    m = 1 << args.log_ot
    if party is Party.CLIENT:
        choices = np.frombuffer(Prg().random_bytes(m), dtype=np.uint8) & np.uint8(1)
        got, result["rot"] = _timed(channel, lambda: engine.ot.rot_recv(channel, choices, 64))
        sample = channel.recv_uint64((2, 4096))
        ok = np.array_equal(got[:4096], np.where(choices[:4096] == 1, sample[1], sample[0]))
        result["rot_ok"] = bool(ok)
    else:
        (k0, k1), result["rot"] = _timed(channel, lambda: engine.ot.rot_send(channel, m, 64))
        channel.send(np.stack([k0[:4096], k1[:4096]]))
    if args.log_relu:
        rng = np.random.default_rng(99)  # public-seeded: both processes derive the same x
        n = 1 << args.log_relu
        x = ring.from_signed(rng.integers(-(1 << 35), 1 << 35, n))
        x0 = ring.random(Prg(b"benchmark-share0"), n)
        mine = x0 if party is Party.CLIENT else ring.sub(x, x0)
        y, result["relu"] = _timed(channel, lambda: engine.relu(mine))
        if party is Party.SERVER:
            channel.send(y)
        else:
            other = channel.recv_uint64(y.shape)
            ref = np.maximum(ring.to_signed(x), 0)
            result["relu_ok"] = bool(np.array_equal(ring.to_signed(ring.add(y, other)), ref))
    channel.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put(result)


def _run(name: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs = [ctx.Process(target=_party, args=(w, port, name, args, queue)) for w in (1, 0)]
    for p in procs:
        p.start()
    parts = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(60)
    by = {r["party"]: r for r in parts}
    cl, sv = by["client"], by["server"]
    m = 1 << args.log_ot
    rot_s = max(cl["rot"]["seconds"], sv["rot"]["seconds"])
    row: dict[str, Any] = {
        "extension": name,
        "setup_s": max(cl["setup"]["seconds"], sv["setup"]["seconds"]),
        "setup_bytes": cl["setup"]["bytes_sent"] + sv["setup"]["bytes_sent"],
        "ots": m,
        "rot_s": rot_s,
        "ots_per_s": m / rot_s,
        "rot_bytes_c2s": cl["rot"]["bytes_sent"],
        "rot_bytes_s2c": sv["rot"]["bytes_sent"],
        "bytes_per_ot": (cl["rot"]["bytes_sent"] + sv["rot"]["bytes_sent"]) / m,
        "rot_ok": cl["rot_ok"],
        "peak_rss_mb": max(cl["peak_rss_mb"], sv["peak_rss_mb"]),
    }
    if args.log_relu:
        row["relu_n"] = 1 << args.log_relu
        row["relu_s"] = max(cl["relu"]["seconds"], sv["relu"]["seconds"])
        row["relu_mb"] = (cl["relu"]["bytes_sent"] + sv["relu"]["bytes_sent"]) / 1e6
        row["relu_ok"] = cl["relu_ok"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--log-ot", type=int, default=22, help="random OTs: 2^k")
    parser.add_argument("--log-relu", type=int, default=0, help="also a ReLU over 2^k (0: skip)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"from {list(CONFIGS)}")
    args = parser.parse_args(argv)
    names = [c for c in args.configs.split(",") if c]
    rows = [_run(name, args) for name in names]
    header = f"{'extension':<10}{'OTs/s':>12}{'s':>8}{'B/OT':>8}{'setup s':>9}{'setup B':>9}"
    if args.log_relu:
        header += f"{'ReLU s':>9}{'ReLU MB':>9}"
    print(header)
    for r in rows:
        line = (
            f"{r['extension']:<10}{r['ots_per_s']:>12.3g}{r['rot_s']:>8.2f}"
            f"{r['bytes_per_ot']:>8.2f}{r['setup_s']:>9.2f}{r['setup_bytes']:>9d}"
        )
        if args.log_relu:
            line += f"{r['relu_s']:>9.2f}{r['relu_mb']:>9.1f}"
        print(line)
    ok = all(r["rot_ok"] and r.get("relu_ok", True) for r in rows)
    if args.json:
        meta = {"python": sys.version.split()[0], "machine": platform.machine(), "ok": ok}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)
    if not ok:
        print("CHECK FAILED: outputs did not reconstruct", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
