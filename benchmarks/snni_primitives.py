"""Benchmark the 2PC core: OT extension, ReLU, truncation and max-pool.

Both parties run as separate processes on this machine and talk over loopback
TCP (SocketChannel). Each party measures its own wall time, CPU-seconds
(process_time: other users' load does not count), bytes and rounds per op; the
results are checked by reconstructing the outputs after timing. Each OT backend of
``--ot-extensions`` runs in its own pair of processes; the table has a column group
per backend (bytes include Ferret's LPN iterations).

    flock /tmp/secfepas-bench.lock python benchmarks/snni_primitives.py --json out.json
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
from secfepas_sdk.snni.ot.extension import DEFAULT_EXTENSION, DEFAULT_K, EXTENSIONS
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _relu6_side_by_side(engine: NonlinearEngine, share: Any, cap: int) -> Any:
    """ReLU6 as before relu_truncate_capped: the camera lowers its share by cap 2^f and
    one relu_truncate call on both (twice the comparisons, their leaf OTs apart)."""
    ring, f = engine.ring, engine.ring.frac_bits
    lowered = share
    if engine.party is Party.CLIENT:
        lowered = ring.sub(share, np.full(share.shape, cap << f, dtype=np.uint64))
    both = engine.relu_truncate(np.stack([share, lowered]), f)
    return ring.sub(both[0], both[1])


def _measure(channel: Channel, name: str, fn: Any) -> tuple[Any, dict[str, Any]]:
    sent0, recv0, rounds0 = (
        channel.stats.bytes_sent,
        channel.stats.bytes_received,
        channel.stats.rounds,
    )
    start, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    elapsed = time.perf_counter() - start
    return out, {
        "op": name,
        "seconds": elapsed,
        "cpu_seconds": time.process_time() - cpu0,
        "bytes_sent": channel.stats.bytes_sent - sent0,
        "bytes_received": channel.stats.bytes_received - recv0,
        "rounds": channel.stats.rounds - rounds0,
    }


def _party(
    who: int,
    port: int,
    args: argparse.Namespace,
    queue: mp.Queue[Any],  # type: ignore[type-arg]
) -> None:
    party = Party(who)
    ring = Ring(bits=args.bits, frac_bits=args.frac)
    if party is Party.SERVER:
        listener = socket.create_server(("127.0.0.1", port))
        conn, _ = listener.accept()
        listener.close()
    else:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
    channel = SocketChannel(conn, timeout_s=600)
    # Shares of a public-seeded random input: both processes derive the same x.
    rng = np.random.default_rng(1234)
    n = 1 << args.log_n
    quarter = 1 << (ring.bits - 2)
    x = ring.from_signed(rng.integers(-quarter, quarter, n))
    pool = ring.from_signed(rng.integers(-quarter, quarter, (1, 64, 112, 112)))
    # What a max-pool sees after relu_truncate(., f): values in [-1, 2^(l-1-f)).
    bound = ring.bits - 1 - ring.frac_bits
    pool_b = ring.from_signed(rng.integers(-1, 1 << bound, (1, 64, 112, 112)))
    share_prg = Prg(b"benchmark-shares")  # same stream in both processes: x0
    x0 = ring.random(share_prg, n)
    p0 = ring.random(share_prg, pool.shape)
    pb0 = ring.random(share_prg, pool.shape)
    mine = x0 if party is Party.CLIENT else ring.sub(x, x0)
    mine_pool = p0 if party is Party.CLIENT else ring.sub(pool, p0)
    mine_pool_b = pb0 if party is Party.CLIENT else ring.sub(pool_b, pb0)
    cap = 6 << ring.frac_bits  # ReLU6 at the output's scale (x - cap 2^f stays in range)
    engine = NonlinearEngine(
        channel, party=party, ring=ring, ot_extension=args.ot_extension, ot_k=args.ot_k
    )
    rows = []
    _, row = _measure(channel, "setup (base OTs)", engine.setup)
    rows.append(row)
    m_ot = 1 << args.log_ot
    if party is Party.CLIENT:
        choices = np.frombuffer(Prg().random_bytes(m_ot), dtype=np.uint8) & np.uint8(1)
        _, row = _measure(channel, "random OT", lambda: engine.ot.rot_recv(channel, choices, 64))
    else:
        _, row = _measure(channel, "random OT", lambda: engine.ot.rot_send(channel, m_ot, 64))
    row["count"] = m_ot
    rows.append(row)
    results = {}
    for name, fn in [
        ("relu", lambda: engine.relu(mine)),
        ("truncate", lambda: engine.truncate(mine, ring.frac_bits)),
        (
            "  same, bound_bits=l-2",
            lambda: engine.truncate(mine, ring.frac_bits, bound_bits=ring.bits - 2),
        ),
        ("relu_truncate", lambda: engine.relu_truncate(mine, ring.frac_bits)),
        ("relu6, two relu_truncate", lambda: _relu6_side_by_side(engine, mine, cap)),
        ("relu6, shared leaves", lambda: engine.relu_truncate_capped(mine, ring.frac_bits, cap)),
        ("maxpool 3x3 s2 64x112x112", lambda: engine.maxpool2d(mine_pool, (3, 3), (2, 2))),
        (
            "  same, bound_bits=l-1-f",
            lambda: engine.maxpool2d(mine_pool_b, (3, 3), (2, 2), bound_bits=bound),
        ),
    ]:
        out, row = _measure(channel, name, fn)
        row["count"] = int(out.size)
        rows.append(row)
        results[name] = out
    # Check (outside the timings): the server sends its output shares to the client.
    ok: dict[str, bool] = {}
    for name, out in results.items():
        if party is Party.SERVER:
            channel.send(out)
        else:
            other = channel.recv_uint64(out.shape)
            got = ring.to_signed(ring.add(out, other))
            if name == "relu":
                ref = np.maximum(ring.to_signed(x), 0)
                ok[name] = bool(np.array_equal(got, ref))
            elif name in ("truncate", "  same, bound_bits=l-2"):
                err = got - (ring.to_signed(x) >> ring.frac_bits)
                ok[name] = bool(np.isin(err, [-1, 0]).all())
            elif name == "relu_truncate":
                err = got - np.maximum(ring.to_signed(x) >> ring.frac_bits, 0)
                ok[name] = bool(np.isin(err, [-1, 0]).all())
            elif name.startswith("relu6"):
                err = got - np.clip(ring.to_signed(x) >> ring.frac_bits, 0, cap)
                ok[name] = bool(np.isin(err, [-1, 0]).all())
            else:
                v = ring.to_signed(pool if "bound" not in name else pool_b)[0]
                ref = np.full((64, 55, 55), np.iinfo(np.int64).min)
                for i in range(3):
                    for j in range(3):
                        ref = np.maximum(ref, v[:, i : i + 109 : 2, j : j + 109 : 2])
                ok[name] = bool(np.array_equal(got[0], ref))
    channel.close()
    queue.put({"party": party.name.lower(), "rows": rows, "ok": ok, "peak_rss_mb": _peak_rss_mb()})


def _run_backend(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Both parties for one OT backend: the merged rows and the peak RSS per party."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_party, args=(who, port, args, queue)) for who in (1, 0)]
    for p in procs:
        p.start()
    reports = {r["party"]: r for r in (queue.get(timeout=3600) for _ in procs)}
    for p in procs:
        p.join()
    client, server = reports["client"], reports["server"]
    table = []
    for crow, srow in zip(client["rows"], server["rows"], strict=True):
        total = crow["bytes_sent"] + srow["bytes_sent"]
        row = {
            "op": crow["op"],
            "count": crow.get("count"),
            "seconds": max(crow["seconds"], srow["seconds"]),
            "cpu_seconds": {"client": crow["cpu_seconds"], "server": srow["cpu_seconds"]},
            "client_to_server_mb": crow["bytes_sent"] / 1e6,
            "server_to_client_mb": srow["bytes_sent"] / 1e6,
            "total_mb": total / 1e6,
            "bytes_per_element": total / crow["count"] if crow.get("count") else None,
            "rounds": max(crow["rounds"], srow["rounds"]),
            "correct": client["ok"].get(crow["op"]),
        }
        if crow["op"] == "random OT":
            row["ots_per_second"] = crow["count"] / row["seconds"]
        table.append(row)
    rss = {"client": client["peak_rss_mb"], "server": server["peak_rss_mb"]}
    return table, rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--log-n", type=int, default=20, help="ReLU/truncation size 2^k")
    parser.add_argument("--log-ot", type=int, default=22, help="random OTs for throughput")
    parser.add_argument("--bits", type=int, default=37)
    parser.add_argument("--frac", type=int, default=12)
    parser.add_argument(
        "--ot-extensions",
        default="softspoken,ferret",
        help=f"comma-separated, from {list(EXTENSIONS)} (default extension: {DEFAULT_EXTENSION})",
    )
    parser.add_argument("--ot-k", type=int, default=DEFAULT_K, help="SoftSpokenOT's k")
    args = parser.parse_args(argv)
    backends = [b for b in args.ot_extensions.split(",") if b]
    if not backends or any(b not in EXTENSIONS for b in backends):
        parser.error(f"--ot-extensions must name some of {list(EXTENSIONS)}")
    results: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for backend in backends:
        args.ot_extension = backend
        results[backend] = _run_backend(args)
    first = results[backends[0]][0]
    head = f"{'op':<28}{'n':>10}"
    for b in backends:
        head += f" | {b[:10]:>10}{'s':>7}{'CPU c/s':>12}{'MB':>8}{'B/el':>8}{'rnd':>5} ok"
    print(head)
    for i, base_row in enumerate(first):
        line = f"{base_row['op']:<28}{base_row['count'] or '-':>10}"
        for b in backends:
            r = results[b][0][i]
            bpe = f"{r['bytes_per_element']:.1f}" if r["bytes_per_element"] else "-"
            cpu = f"{r['cpu_seconds']['client']:.1f}/{r['cpu_seconds']['server']:.1f}"
            line += (
                f" | {'':>10}{r['seconds']:>7.2f}{cpu:>12}{r['total_mb']:>8.1f}{bpe:>8}"
                f"{r['rounds']:>5} {'y' if r['correct'] is not False else 'N'}"
            )
        print(line)
    for b in backends:
        table, rss = results[b]
        ot_row = next(r for r in table if r["op"] == "random OT")
        print(
            f"{b}: {ot_row['ots_per_second'] / 1e6:.2f} M random OTs/s; peak RSS client "
            f"{rss['client']:.0f} MB, server {rss['server']:.0f} MB"
        )
    if args.json:
        doc = {
            "machine": {"python": sys.version.split()[0], "arch": platform.machine()},
            "ring": {"bits": args.bits, "frac_bits": args.frac},
            "ot_k": args.ot_k,
            "backends": {
                b: {"ops": table, "peak_rss_mb": rss} for b, (table, rss) in results.items()
            },
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
    ok = all(r["correct"] is not False for table, _ in results.values() for r in table)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
