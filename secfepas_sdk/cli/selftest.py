"""Run one secure inference with the two parties as separate processes over
loopback TCP (the harness behind ``secfepas snni selftest``, ``secfepas bench``
and the Table III benchmark). It lives above the engine: it owns the sockets,
the child processes and the temporary input file that ``snni`` never touches.

Each party is ``python -m secfepas_sdk.cli.selftest --role client|server``;
it reports one JSON line on stdout (no pickle between processes). The input
tensor (pixels) travels to the client process through its stdin, as .npy bytes
(allow_pickle=False): it never touches a file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SecfepasError, SnniError
from secfepas_sdk.protocol.events import OT_EXTENSIONS

_HOST = "127.0.0.1"
MAX_TENSOR_BYTES = 1 << 28  # the client's input tensor (float32 NCHW)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries it across
    fork and exec, so a party started by a large parent (a test runner that built
    torch models) would report the parent's peak instead of its own."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux


def _cpu() -> float:
    """CPU-seconds of this process and of its children that have ended (the edge's
    HE block processes, reaped before the figure is read)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def he_workers_count(setting: int) -> int:
    """The selftest's ``--he-workers``: 0 means every core this process may use."""
    return setting if setting > 0 else len(os.sched_getaffinity(0))


def _server(
    package: str, timeout: float, he_workers: int, ot_extension: str | None
) -> dict[str, Any]:
    from secfepas_sdk.edge.he_pool import start_pool
    from secfepas_sdk.models.package import load_private
    from secfepas_sdk.protocol.transport import SocketChannel
    from secfepas_sdk.snni.runtime import ServerRuntime

    t0 = time.perf_counter()
    model = load_private(package)
    runtime = ServerRuntime(model.plan, model.weights)
    load_s = time.perf_counter() - t0
    with socket.create_server((_HOST, 0)) as listener:
        listener.settimeout(timeout)
        print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
        conn, _ = listener.accept()
    channel = SocketChannel(conn, timeout_s=timeout)
    workers = he_workers_count(he_workers)
    c0 = _cpu()
    runtime.setup(channel, ot_extension=ot_extension)
    pool = start_pool(runtime.he, workers, close_in_child=[conn.fileno()], timeout_s=timeout)
    try:
        runtime.infer(channel)
    finally:
        if pool is not None:
            pool.close()  # reaped: their CPU time joins ours
    cpu = _cpu() - c0
    channel.close()
    runtime.close()
    return {
        "load_seconds": load_s,
        "he_workers": workers,
        "compute": cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "timings": runtime.timings,
        "cpu_timings": runtime.cpu_timings,
    }


def _read_tensor() -> NDArray[np.float32]:
    raw = sys.stdin.buffer.read(MAX_TENSOR_BYTES + 1)
    if len(raw) > MAX_TENSOR_BYTES:
        raise SnniError("the input tensor is too large")
    try:
        x: NDArray[np.float32] = np.load(io.BytesIO(raw), allow_pickle=False).astype(np.float32)
    except (ValueError, OSError, EOFError) as exc:
        raise SnniError(f"the input tensor is not a .npy array: {exc}") from exc
    return x


def _client(package: str, port: int, timeout: float, ot_extension: str | None) -> dict[str, Any]:
    from secfepas_sdk.models.package import load_public
    from secfepas_sdk.protocol.transport import SocketChannel
    from secfepas_sdk.snni.runtime import ClientRuntime

    model = load_public(package)
    x = _read_tensor()
    runtime = ClientRuntime(model.plan)
    sock = socket.create_connection((_HOST, port), timeout=timeout)
    channel = SocketChannel(sock, timeout_s=timeout)
    t0, c0 = time.perf_counter(), _cpu()
    runtime.setup(channel, ot_extension=ot_extension)
    t1 = time.perf_counter()
    logits = runtime.infer(channel, x)
    t2 = time.perf_counter()
    cpu = _cpu() - c0
    stats = channel.stats
    channel.close()
    runtime.close()
    return {
        "logits": [float(v) for v in logits.reshape(-1)],
        "setup_seconds": t1 - t0,
        "infer_seconds": t2 - t1,
        "total": t2 - t0,
        "compute": cpu,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
        "rounds": stats.rounds,
        "peak_rss_mb": _peak_rss_mb(),
        "timings": runtime.timings,
        "cpu_timings": runtime.cpu_timings,
        "by_kind": traffic_by_kind(model.plan, stats.as_dict()),
        "ot_extension": runtime.ot_extension,
    }


def traffic_by_kind(plan: Any, stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Bytes each way and rounds per op kind (labels that are no op, such as the OT
    setup, stand for themselves), from the client channel's per-label counters:
    ``up`` is camera to edge."""
    kinds = {op.name: op.kind for op in plan.ops}
    out: dict[str, dict[str, int]] = {}
    for label, v in stats["by_label"].items():
        kind = kinds.get(label.split("/")[0], label.split("/")[0])
        row = out.setdefault(kind, {"bytes_up": 0, "bytes_down": 0, "rounds": 0})
        row["bytes_up"] += int(v["bytes_sent"])
        row["bytes_down"] += int(v["bytes_received"])
        row["rounds"] += int(v["rounds"])
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureRun:
    logits: NDArray[np.float64]
    client: dict[str, Any]
    server: dict[str, Any]


def run_two_processes(
    package: str | Path,
    x: NDArray[np.float32],
    *,
    timeout: float = 3600.0,
    he_workers: int = 1,
    ot_extension: str | None = None,
) -> SecureRun:
    """Server and client as two child processes over loopback TCP; the server splits its
    HE layers across ``he_workers`` block processes (0: every core it may use); both run
    the OT extension ``ot_extension`` (None: the library default)."""
    cmd = [sys.executable, "-m", "secfepas_sdk.cli.selftest"]
    if ot_extension is not None:
        cmd += ["--ot", ot_extension]
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    server_cmd = [*cmd, "--role", "server", "--package", str(package)]
    server_cmd += ["--timeout", str(timeout), "--he-workers", str(he_workers)]
    server = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        server_cmd, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first:
            raise SnniError("the server process failed to start")
        port = int(json.loads(first)["port"])
        client = subprocess.run(  # noqa: S603
            [
                *cmd, "--role", "client", "--package", str(package), "--port", str(port),
                "--timeout", str(timeout),
            ],
            input=buf.getvalue(), stdout=subprocess.PIPE, timeout=timeout, check=False,
        )  # fmt: skip
        rest = server.stdout.read()
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if client.returncode != 0 or server.returncode != 0:
        raise SnniError(
            f"a party failed (client exit {client.returncode}, server exit {server.returncode})"
        )
    c = json.loads(client.stdout.decode("utf-8").strip().splitlines()[-1])
    s = json.loads(rest.strip().splitlines()[-1])
    return SecureRun(logits=np.asarray(c["logits"], dtype=np.float64), client=c, server=s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one party of a loopback secure inference")
    parser.add_argument("--role", choices=["client", "server"], required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--he-workers", type=int, default=1)
    parser.add_argument("--ot", choices=OT_EXTENSIONS, help="OT extension (default: the library's)")
    args = parser.parse_args(argv)
    try:
        if args.role == "server":
            report = _server(args.package, args.timeout, args.he_workers, args.ot)
        else:
            report = _client(args.package, args.port, args.timeout, args.ot)
    except SecfepasError as exc:
        print(f"secfepas {args.role}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
