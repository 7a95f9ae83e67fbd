"""Fuzz a live edge over mutual TLS with mutated protocol frames.

Starts one `secfepas edge serve` process (demo model, throwaway PKI, short
timeouts) and sends N cases, one connection each, several at a time. Each
case is one mutated frame: bit flips of a valid hello, truncations, oversize
length fields, frames the state table refuses, garbage SNNI payloads after a
valid InferenceBegin, or random bytes. A case passes when the edge closes the
connection within its own timeouts plus a margin; otherwise it is a hang. A
crash is the edge process exiting or /healthz failing. The edge's peak RSS
(its process tree) is sampled after every batch. Prints a table, writes JSON.

    python benchmarks/fuzz_edge.py                 # 1,000,000 cases (hours)
    python benchmarks/fuzz_edge.py -n 10000 --json fuzz.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from testkit.edgeproc import Edge, http_get  # noqa: E402

from secfepas_sdk.certs import init_pki  # noqa: E402
from secfepas_sdk.models.bundled import demo_model_dir  # noqa: E402
from secfepas_sdk.protocol.events import (  # noqa: E402  # noqa: E402
    PROTOCOL_VERSIONS,
    SUITES,
    ClientHello,
    InferenceBegin,
    encode_control,
)
from secfepas_sdk.protocol.framing import HEADER, MAGIC, WIRE_VERSION, FrameType  # noqa: E402
from secfepas_sdk.protocol.transport import TlsFiles, client_context  # noqa: E402

MODEL = "demo-pain-cnn"
EDGE_TIMEOUT_S = 2.0  # the fuzzed edge's handshake, message and idle timeouts
HANG_S = EDGE_TIMEOUT_S + 8.0  # no close within this: a hang
KINDS = ("bitflip", "truncate", "oversize", "wrong_state", "snni_garbage", "random")
WEIGHTS = (0.3, 0.2, 0.15, 0.2, 0.05, 0.1)  # snni_garbage starts a worker: keep it rarer
Rng = np.random.Generator


def hello_bytes() -> bytes:
    hello = ClientHello(versions=PROTOCOL_VERSIONS, model_id=MODEL, suites=SUITES)
    return frame(FrameType.CLIENT_HELLO, encode_control(hello))


def begin_bytes() -> bytes:
    return frame(FrameType.INFERENCE_BEGIN, encode_control(InferenceBegin(seq=0, setup=True)))


def frame(frame_type: int, payload: bytes, *, length: int | None = None, flags: int = 0) -> bytes:
    size = len(payload) if length is None else length
    return HEADER.pack(MAGIC, WIRE_VERSION, frame_type, flags, size) + payload


def make_case(kind: str, rng: Rng, hello: bytes, begin: bytes) -> tuple[bytes, bytes]:
    """(bytes before the edge's ServerHello, bytes after it; empty: no wait)."""
    if kind == "bitflip":
        data = bytearray(hello)
        for bit in rng.integers(0, len(data) * 8, size=int(rng.integers(1, 9))):
            data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data), b""
    if kind == "truncate":
        return hello[: int(rng.integers(0, len(hello)))], b""
    if kind == "oversize":
        ftype = int(rng.integers(1, 8))
        length = int(rng.integers(1 << 20, 1 << 32))
        return frame(ftype, rng.bytes(int(rng.integers(0, 64))), length=length), b""
    if kind == "wrong_state":
        ftype = int(rng.choice([FrameType.DATA, FrameType.INFERENCE_END, FrameType.SERVER_HELLO,
                                FrameType.CLIENT_HELLO, 0, 8, 255]))  # fmt: skip
        payload = b'{"seq": 0}' if ftype != FrameType.DATA else rng.bytes(64)
        return hello, frame(ftype, payload)
    if kind == "snni_garbage":
        return hello, begin + frame(FrameType.DATA, rng.bytes(int(rng.integers(1, 1 << 16))))
    return rng.bytes(int(rng.integers(1, 4096))), b""


async def run_case(address: tuple[str, int], ctx: ssl.SSLContext, first: bytes, then: bytes) -> str:
    """'closed' (the edge ended the session), 'hang', or 'refused' (could not connect)."""
    try:
        async with asyncio.timeout(HANG_S):
            reader, writer = await asyncio.open_connection(
                *address, ssl=ctx, server_hostname="localhost"
            )
    except (OSError, ssl.SSLError, TimeoutError):
        return "refused"
    try:
        async with asyncio.timeout(HANG_S):
            writer.write(first)
            if then:
                await reader.read(1)  # the ServerHello (or the edge's refusal) began
                writer.write(then)
            await writer.drain()
            while await reader.read(65536):
                pass
        return "closed"
    except TimeoutError:
        return "hang"
    except (OSError, ssl.SSLError):
        return "closed"  # reset by the edge
    finally:
        writer.transport.abort()


def tree_rss(edge: Edge) -> int:
    """Resident bytes of the edge and its workers right now."""
    assert edge.proc is not None
    pids = [edge.proc.pid, *edge.descendant_pids()]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


async def fuzz(
    n: int, concurrency: int, seed: int, progress: Callable[[int, Counter[str]], None]
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="secfepas-fuzz-") as tmp:
        root = Path(tmp)
        pki = init_pki(root / "pki")
        edge = Edge(
            "fuzz-edge",
            root,
            pki,
            demo_model_dir(root / "models"),
            extra=(
                f"handshake_timeout_s = {EDGE_TIMEOUT_S}\nmessage_timeout_s = {EDGE_TIMEOUT_S}\n"
                f"idle_timeout_s = {EDGE_TIMEOUT_S}\nqueue_timeout_s = {EDGE_TIMEOUT_S}\n"
                "max_queue = 64\n"
            ),
        )
        cam = pki.camera("camera-1")
        ctx = client_context(TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key))
        hello, begin = hello_bytes(), begin_bytes()
        outcomes: Counter[str] = Counter()
        by_kind: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
        crashes, peak = 0, 0
        started = time.monotonic()
        try:
            edge.start()
            idle_rss = tree_rss(edge)
            done, batch = 0, max(concurrency * 25, 100)
            sem = asyncio.Semaphore(concurrency)
            while done < n:
                kinds = rng.choice(KINDS, size=min(batch, n - done), p=WEIGHTS)

                async def one(kind: str) -> None:
                    first, then = make_case(kind, rng, hello, begin)
                    async with sem:
                        result = await run_case(("127.0.0.1", edge.port), ctx, first, then)
                    outcomes[result] += 1
                    by_kind[kind][result] += 1

                await asyncio.gather(*(one(str(k)) for k in kinds))
                done += len(kinds)
                peak = max(peak, tree_rss(edge))
                alive = edge.proc is not None and edge.proc.poll() is None
                if not alive or http_get(edge.health_port, "/healthz")[0] != 200:
                    crashes += 1
                    break
                progress(done, outcomes)
        finally:
            edge.cleanup()
        return {
            "cases": sum(outcomes.values()),
            "seed": seed,
            "seconds": round(time.monotonic() - started, 1),
            "crashes": crashes,
            "hangs": outcomes["hang"],
            "refused": outcomes["refused"],
            "closed": outcomes["closed"],
            "idle_rss_bytes": idle_rss,
            "peak_rss_bytes": peak,
            "by_kind": {k: dict(v) for k, v in by_kind.items()},
        }


def table(report: dict[str, Any]) -> str:
    rows = [f"{'kind':<14}{'closed':>10}{'hang':>8}{'refused':>9}"]
    for kind, counts in report["by_kind"].items():
        rows.append(
            f"{kind:<14}{counts.get('closed', 0):>10}{counts.get('hang', 0):>8}"
            f"{counts.get('refused', 0):>9}"
        )
    rows.append(
        f"{report['cases']} cases in {report['seconds']} s: {report['crashes']} crash(es), "
        f"{report['hangs']} hang(s), peak edge RSS {report['peak_rss_bytes'] / 2**20:.0f} MiB "
        f"(idle {report['idle_rss_bytes'] / 2**20:.0f} MiB)"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--cases", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    seed = secrets.randbits(32) if args.seed is None else args.seed

    def progress(done: int, outcomes: Counter[str]) -> None:
        print(f"\r{done}/{args.cases} {dict(outcomes)}", end="", file=sys.stderr, flush=True)

    report = asyncio.run(fuzz(args.cases, args.concurrency, seed, progress))
    print(file=sys.stderr)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["crashes"] == 0 and report["hangs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
