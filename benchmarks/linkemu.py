"""Link emulation between two network namespaces, without netem (this kernel has none).

Topology: namespace A holds TUN device ``npa`` (198.18.0.1), namespace B holds
``npb`` (198.18.0.2), point to point. One user-space forwarder process owns both
devices: it reads each packet the kernel routes into one TUN, holds it for half
the RTT (less half the forwarder's own measured base RTT) and writes it into the
other. Bandwidth is the kernel's ``tbf`` on each TUN's egress (the queue in front
of the forwarder), so TCP sees a real bottleneck and a real RTT. The devices run
with virtio-net headers and TSO offload: the stacks keep a 1500-byte MTU (TCP's
window and slow start count real segments) while the forwarder moves GSO batches
of up to 64 KB, which keeps Python's per-packet cost off the data path. It still
costs CPU on the same 2 cores as the parties: the benchmark reports its CPU-seconds.

Addresses are 198.18.0.0/15, the range set aside for network benchmarks (RFC 2544),
and exist only inside the namespaces this module creates: neither namespace has any
other route, so no packet can leave them. Namespace names start with ``PREFIX`` and
carry the owner's pid; ``remove_stale`` deletes those whose owner is gone (a killed
run), killing the processes left inside them.

Stdlib only: TUN through fcntl/ioctl on /dev/net/tun, setns through ctypes (os.setns
is Python 3.12+), shaping and namespaces through iproute2's ``ip`` and ``tc``.
Run ``python linkemu.py forward ...`` only through :class:`Link`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import fcntl
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "secfepas-np"
ADDR_A, ADDR_B = "198.18.0.1", "198.18.0.2"
OUR_HOSTS = frozenset({ADDR_A, ADDR_B, "127.0.0.1"})  # the only addresses anything dials
NETNS_DIR = Path("/run/netns")

_TUNSETIFF, _TUNSETOFFLOAD = 0x400454CA, 0x400454D0
_IFF_TUN, _IFF_NO_PI, _IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
_TUN_F_CSUM, _TUN_F_TSO4, _TUN_F_TSO6 = 0x01, 0x02, 0x04
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG, _PR_SET_TIMERSLACK = 1, 29
_MAX_PACKET = 65536 + 64  # a GSO batch plus its virtio-net header
_DEV_A, _DEV_B = "npa", "npb"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """preexec_fn for children: the kernel signals them when the benchmark dies,
    even by SIGKILL (so no camera, edge or forwarder outlives a killed run)."""
    _libc().prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _run(*cmd: str) -> str:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


# -- namespaces --------------------------------------------------------------


def list_namespaces() -> list[str]:
    """Our namespaces that exist now (any owner)."""
    names = []
    for line in _run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX + "-"):
            names.append(name)
    return names


def _owner(name: str) -> int | None:
    m = re.fullmatch(re.escape(PREFIX) + r"-(\d+)-[a-z0-9]+", name)
    return int(m.group(1)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_namespace(name: str) -> None:
    """Kill what still runs inside ``name`` (by pid, from ``ip netns pids``), then delete it."""
    with contextlib.suppress(subprocess.CalledProcessError):
        for _ in range(50):
            pids = [int(p) for p in _run("ip", "netns", "pids", name).split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
    subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def scratch_dirs() -> list[Path]:
    """Where our runs leave files named like the namespaces (the forwarder's control
    file in /dev/shm, the benchmark's temporary directory)."""
    return [Path("/dev/shm"), Path(tempfile.gettempdir())]


def remove_stale() -> list[str]:
    """Delete our namespaces whose owning process is gone, with what runs inside,
    and the files such a run left in :func:`scratch_dirs`; returns what went."""
    stale = [n for n in list_namespaces() if (pid := _owner(n)) is None or not _alive(pid)]
    for name in stale:
        delete_namespace(name)
    for folder in scratch_dirs():
        for path in folder.glob(f"{PREFIX}-*"):
            m = re.match(re.escape(PREFIX) + r"-(\d+)-", path.name)
            if m and not _alive(int(m.group(1))):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                stale.append(str(path))
    return stale


def make_namespace(tag: str) -> str:
    name = f"{PREFIX}-{os.getpid()}-{tag}"
    _run("ip", "netns", "add", name)
    _run("ip", "-n", name, "link", "set", "lo", "up")
    return name


def netns_cmd(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


# -- the link ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """A link profile: ``rate_mbit`` per direction and ``rtt_ms`` round trip. Both None:
    loopback (camera and edge in one namespace over its ``lo``, no forwarder)."""

    name: str
    rate_mbit: float | None = None
    rtt_ms: float | None = None

    def __post_init__(self) -> None:
        if self.rate_mbit is not None and not self.rate_mbit > 0:
            raise ValueError(f"{self.name}: rate must be > 0")
        if self.rtt_ms is not None and not 0 <= self.rtt_ms <= 1000:
            raise ValueError(f"{self.name}: RTT must be within 0..1000 ms")
        if self.rtt_ms is None and self.rate_mbit is not None:
            raise ValueError(f"{self.name}: a shaped link needs an RTT (0 for none)")

    @property
    def loopback(self) -> bool:
        return self.rtt_ms is None


class Link:
    """Two fresh namespaces joined by the forwarder; ``with Link(shape) as link:``.

    The camera runs in ``ns_a``, the edge in ``ns_b`` at ``addr_b`` (for loopback
    both are one namespace and ``127.0.0.1``). ``set_delay`` changes the one-way
    delay the running forwarder adds (SIGUSR1 re-reads its control file), so the
    base RTT can be measured first and subtracted. Leaving the block kills the
    forwarder and deletes the namespaces.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.ns_a = self.ns_b = ""
        self.addr_a, self.addr_b = ("127.0.0.1",) * 2 if shape.loopback else (ADDR_A, ADDR_B)
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl = Path(f"/dev/shm/{PREFIX}-{os.getpid()}-{id(self):x}.delay")

    def __enter__(self) -> Link:
        try:
            self.ns_a = make_namespace("a")
            if self.shape.loopback:
                self.ns_b = self.ns_a
                return self
            self.ns_b = make_namespace("b")
            self._ctl.write_text("0\n")
            cmd = [sys.executable, __file__, "forward", self.ns_a, self.ns_b, str(self._ctl)]
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, preexec_fn=die_with_parent)
            assert self._proc.stdout is not None
            if self._proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("the link forwarder failed to start")
            for ns, dev, mine, peer in (
                (self.ns_a, _DEV_A, ADDR_A, ADDR_B),
                (self.ns_b, _DEV_B, ADDR_B, ADDR_A),
            ):
                _run("ip", "-n", ns, "addr", "add", mine, "peer", f"{peer}/32", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "txqueuelen", "10000", "up")
                if self.shape.rate_mbit is not None:
                    _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                         *_tbf(self.shape.rate_mbit))  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def set_delay(self, one_way_s: float) -> None:
        if self._proc is None:
            raise RuntimeError("a loopback link has no delay to set")
        self._ctl.write_text(f"{max(0.0, one_way_s):.9f}\n")
        self._proc.send_signal(signal.SIGUSR1)

    def forwarder_cpu_s(self) -> float:
        """CPU-seconds the forwarder has used so far (0 on loopback: there is none)."""
        if self._proc is None:
            return 0.0
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for ns in dict.fromkeys((self.ns_a, self.ns_b)):
            if ns:
                delete_namespace(ns)
        self._ctl.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tbf(rate_mbit: float) -> list[str]:
    """tbf arguments: the rate, a burst of 2 ms at that rate (at least 128 KB, so a
    64 KB GSO batch passes whole) and a queue of 50 ms (at least 1 MB)."""
    rate_bps = rate_mbit * 1e6 / 8
    burst = max(128 * 1024, int(rate_bps * 0.002))
    limit = max(1 << 20, int(rate_bps * 0.05))
    return ["tbf", "rate", f"{rate_mbit}mbit", "burst", str(burst), "limit", str(limit)]


# -- the forwarder process -----------------------------------------------------


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH22x", name.encode(), _IFF_TUN | _IFF_NO_PI | _IFF_VNET_HDR)
    fcntl.ioctl(fd, _TUNSETIFF, ifr)
    fcntl.ioctl(fd, _TUNSETOFFLOAD, _TUN_F_CSUM | _TUN_F_TSO4 | _TUN_F_TSO6)
    return fd


def _enter(ns: str) -> None:
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if _libc().setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
    finally:
        os.close(fd)


def forward(ns_a: str, ns_b: str, ctl: Path) -> None:
    """Create the two TUN devices (one in each namespace) and forward between them,
    each packet delayed by the control file's one-way delay. Runs until killed."""
    _libc().prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)  # 1 µs wake-up slack, not 50
    _enter(ns_a)
    fd_a = _open_tun(_DEV_A)
    _enter(ns_b)
    fd_b = _open_tun(_DEV_B)
    delay = [float(ctl.read_text())]
    signal.signal(signal.SIGUSR1, lambda *_: delay.__setitem__(0, float(ctl.read_text())))
    print("ready", flush=True)
    # Constant delay: each direction's queue is FIFO in due time.
    queues: dict[int, collections.deque[tuple[float, bytes]]] = {
        fd_b: collections.deque(),  # read from A, due on B
        fd_a: collections.deque(),
    }
    peer = {fd_a: fd_b, fd_b: fd_a}
    clock = time.monotonic
    while True:
        now = clock()
        due = [q[0][0] for q in queues.values() if q]
        timeout = max(0.0, min(due) - now) if due else None
        try:
            readable, _, _ = select.select([fd_a, fd_b], [], [], timeout)
        except InterruptedError:
            continue
        now = clock()
        for fd in readable:
            q = queues[peer[fd]]
            for _ in range(256):
                try:
                    q.append((now + delay[0], os.read(fd, _MAX_PACKET)))
                except BlockingIOError:
                    break
        for out, q in queues.items():
            while q and q[0][0] <= now:
                packet = q.popleft()[1]
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(out, packet)  # a refused write is a lost packet, as on a wire


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the link forwarder (started by Link)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fw = sub.add_parser("forward")
    fw.add_argument("ns_a")
    fw.add_argument("ns_b")
    fw.add_argument("ctl", type=Path)
    args = parser.parse_args(argv)
    for ns in (args.ns_a, args.ns_b):
        if not ns.startswith(PREFIX + "-"):
            parser.error(f"not one of our namespaces: {ns}")
    forward(args.ns_a, args.ns_b, args.ctl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
