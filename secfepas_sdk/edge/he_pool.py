"""Split one inference's HE work across processes forked from the session's worker.

Why: a ResNet50 inference spends most of the edge's time in HE layers, and the
output ciphertexts (blocks) of one layer call are independent. With
``he_workers`` = W > 1 the session's process forks W block processes once
(after the session's setup, so they hold its public key and, copy-on-write,
the model host's encoded weights). For each layer call it sends every block
process the call's seed and its own share of the layer input, then the inputs
chunk by chunk as they arrive: it loads (SEAL checks) each camera ciphertext
once, adds its share and sends the sum's residues, so that the camera's bytes
are parsed in this process only, and not again in each block process (2-3 ms a
ciphertext at q218, W times). Process j computes the blocks
k = j, j + W, ... (:class:`~secfepas_sdk.snni.he.blocks.LayerPart`) and returns
their replies, which the session forwards in block order. Block k's randomness
is keyed by (seed, k), so the replies are the bytes one process would send.

Bytes move over one socketpair per block process (anonymous kernel buffers, no
file and no name anywhere); each end bounds what it reads. Memory is bounded:
a block process holds one layer call's input ciphertexts, and the socket
buffers hold a few replies. A block process that dies or stalls ends its
session only (:class:`HeWorkerLost`), and it dies with the session's process
(PR_SET_PDEATHSIG), so none is ever orphaned.

Who holds what: the block processes hold what the session's process holds (the
weights, the edge's shares, the camera's public key, the call seeds); never a
camera secret.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import select
import signal
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SecfepasError, SnniError
from secfepas_sdk.protocol.transport import read_exact
from secfepas_sdk.snni.channel import ChannelError
from secfepas_sdk.snni.he.blobs import INPUT_CHUNK
from secfepas_sdk.snni.prg import SEED_BYTES

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.blocks import LayerPart
    from secfepas_sdk.snni.he.engine import HeServer

__all__ = ["HePool", "HeWorkerLost", "start_pool"]

U64 = NDArray[np.uint64]

_HEADER = struct.Struct("!cQ")
_JOB_HEAD = struct.Struct(f"!I{SEED_BYTES}s")  # layer index, call seed
JOB, INPUT, ABORT, REPLY, FAIL, QUIT = b"J", b"I", b"A", b"R", b"X", b"Q"
_SOCKET_BUFFER = 2 << 20  # a block process may run about 15 replies ahead
_PR_SET_PDEATHSIG = 1
_QUIT_GRACE_S = 5.0
_MAX_JOB = 1 << 31  # a job is the head and the edge's share of one layer input (plan-bounded)


class HeWorkerLost(SecfepasError):
    """A block process died or stopped answering: the session ends (code ``internal``)."""


@dataclass(slots=True)
class _Block:
    pid: int
    sock: socket.socket
    pidfd: int


def _send(sock: socket.socket, tag: bytes, *parts: bytes | memoryview) -> None:
    sock.sendall(_HEADER.pack(tag, sum(len(p) for p in parts)))
    for part in parts:
        sock.sendall(part)


def _recv(sock: socket.socket, max_bytes: int, *, what: str) -> tuple[bytes, bytes]:
    tag, length = _HEADER.unpack(read_exact(sock, _HEADER.size, closed=f"{what} closed"))
    if length > max_bytes:
        raise ChannelError(f"{what} sent a {length}-byte frame (at most {max_bytes})")
    return tag, read_exact(sock, length, closed=f"{what} closed") if length else b""


class HePool:
    """The session side: W block processes, fed per layer call (a BlockPool)."""

    def __init__(
        self, server: HeServer, workers: int, *, close_in_child: Iterable[int], timeout_s: float
    ) -> None:
        if workers < 2:
            raise SnniError("a pool needs at least two block processes")
        self._server = server
        self._count = workers
        self._close_in_child = list(close_in_child)
        self._timeout_s = timeout_s
        self._blocks: list[_Block] = []
        self._broken = False
        self._in_call = False  # a call started and not all its replies read
        self._shares: U64 | None = None  # the call's packed edge share (its inputs' x1)
        self._fed = 0  # inputs of the call sent so far

    @property
    def pids(self) -> list[int]:
        return [b.pid for b in self._blocks]

    def cpu_seconds(self) -> float:
        """User + system CPU-seconds of the live block processes (/proc, clock ticks)."""
        return sum(proc_cpu_seconds(b.pid) for b in self._blocks)

    def open(self) -> None:
        """Fork the block processes (after the session's setup: they keep its key)."""
        parent = os.getpid()
        for part in range(self._count):
            ours, theirs = socket.socketpair()
            for end in (ours, theirs):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            pid = os.fork()
            if pid == 0:  # a block process: never returns into the session's code
                status = 1
                try:
                    for fd in (*self._close_in_child, ours.fileno(), *self._sibling_fds()):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                    _die_with(parent)
                    gc.freeze()  # the collector never walks (so copies) the inherited objects
                    self._server.after_fork_part()
                    _serve(theirs, self._server, part, self._count)
                    status = 0
                finally:
                    os._exit(status)
            theirs.close()
            ours.settimeout(self._timeout_s)
            self._blocks.append(_Block(pid=pid, sock=ours, pidfd=os.pidfd_open(pid)))

    def _sibling_fds(self) -> list[int]:
        return [fd for b in self._blocks for fd in (b.sock.fileno(), b.pidfd)]

    # -- BlockPool -------------------------------------------------------
    def start(self, layer: int, seed: bytes, polys: U64) -> None:
        if self._in_call:  # the last call was abandoned: the processes are mid-call
            self._broken = True
        self._check()
        self._in_call = True
        self._shares, self._fed = polys, 0
        head = _JOB_HEAD.pack(layer, seed)
        body = np.ascontiguousarray(polys, dtype=np.uint64).data.cast("B")
        self._each(lambda sock: _send(sock, JOB, head, body))

    def feed(self, raw: bytes, blobs: list[bytes]) -> None:
        """Load the chunk here once (SEAL refusing one fails the call: the block
        processes drop it and wait for the next), and send its residues to each."""
        if self._shares is None:
            raise SnniError("HE layer call not started")
        shares = self._shares[self._fed : self._fed + len(blobs)]
        try:
            residues = self._server.input_residues(blobs, shares)
        except SnniError:
            self._each(lambda sock: _send(sock, ABORT))
            self._in_call, self._shares = False, None
            raise
        self._fed += len(blobs)
        body = residues.data.cast("B")
        self._each(lambda sock: _send(sock, INPUT, body))

    def replies(self, count: int) -> Iterator[bytes]:
        """Block k's reply from process k mod W, in order. A failure (or a caller that
        stops early) leaves the processes mid-call: the pool is then broken."""
        self._check()
        done = 0
        bound = self._server.max_ct_bytes
        try:
            for k in range(count):
                block = self._blocks[k % self._count]
                try:
                    tag, payload = _recv(block.sock, bound, what="an HE block process")
                except ChannelError as exc:
                    raise HeWorkerLost(f"HE block process {block.pid} failed: {exc}") from None
                if tag == FAIL:
                    raise SnniError(payload.decode("utf-8", "replace"))
                if tag != REPLY:
                    raise HeWorkerLost(f"HE block process {block.pid} sent frame {tag!r}")
                yield payload
                done += 1
        finally:
            if done != count:
                self._broken = True
            self._in_call, self._shares = False, None

    def _check(self) -> None:
        if self._broken or not self._blocks:
            raise HeWorkerLost("the HE block processes are not running")

    def _each(self, send: Callable[[socket.socket], None]) -> None:
        self._check()
        for block in self._blocks:
            try:
                send(block.sock)
            except OSError as exc:
                self._broken = True
                raise HeWorkerLost(f"HE block process {block.pid} failed: {exc}") from None

    def close(self) -> None:
        """Stop every block process and reap it (killed if it does not quit in time)."""
        blocks, self._blocks = self._blocks, []
        stuck = self._broken or self._in_call  # mid-call: they would not read a QUIT
        for block in blocks:
            if not stuck:
                with contextlib.suppress(OSError):
                    block.sock.settimeout(1.0)
                    _send(block.sock, QUIT)
            block.sock.close()
        for block in blocks:
            grace = 0.0 if stuck else _QUIT_GRACE_S
            if not select.select([block.pidfd], [], [], grace)[0]:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(block.pidfd, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(block.pid, 0)
            os.close(block.pidfd)
        self._broken = self._in_call = False


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/PID/stat (0 once it is gone): a block
    process's CPU while it runs, before it is reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # after the command: state is field 3, utime 14 and stime 15 (proc(5))
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))


def start_pool(
    server: HeServer, workers: int, *, close_in_child: Iterable[int], timeout_s: float
) -> HePool | None:
    """Fork ``workers`` block processes for a set-up ``server`` and split its layer calls
    across them (none, and the calls stay in this process, when ``workers`` is 1).
    ``close_in_child``: this process's links that the block processes must not hold open."""
    server.pool = None
    if workers < 2:
        return None
    pool = HePool(server, workers, close_in_child=close_in_child, timeout_s=timeout_s)
    try:
        pool.open()
    except OSError as exc:
        pool.close()
        raise HeWorkerLost(f"cannot start the HE block processes: {exc}") from exc
    server.pool = pool
    return pool


def _die_with(parent: int) -> None:
    """SIGKILL this process when the session's process ends (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it ended before the prctl took effect
        os._exit(1)


def _serve(sock: socket.socket, server: HeServer, part: int, parts: int) -> None:
    """A block process: serve layer calls until QUIT or the session's end of the link closes.

    A call that fails here (a residue outside its limbs, say) is answered with FAIL and
    the rest of its input is read and dropped, and one the session aborts (SEAL refused
    a camera ciphertext there) is dropped, so the session stays in step either way."""
    while True:
        try:
            tag, job = _recv(sock, _MAX_JOB, what="the session")
        except ChannelError:
            return
        if tag == QUIT:
            return
        if tag != JOB or len(job) < _JOB_HEAD.size:
            raise SnniError(f"unexpected frame {tag!r} from the session")
        index, seed = _JOB_HEAD.unpack_from(job)
        layout = server.layer(index).layout
        polys = np.frombuffer(job, dtype=np.uint64, offset=_JOB_HEAD.size)
        failure: str | None = None
        layer_part: LayerPart | None = None
        try:
            layer_part = server.part(
                index, seed, polys.reshape(layout.n_in, layout.n), part=part, parts=parts
            )
        except (SnniError, ValueError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        shape = server.residue_shape
        aborted = False
        for start in range(0, layout.n_in, INPUT_CHUNK):
            count = min(INPUT_CHUNK, layout.n_in - start)
            size = count * math.prod(shape) * 8
            tag, raw = _recv(sock, size, what="the session")
            if tag == ABORT:
                aborted = True
                break
            if tag != INPUT or len(raw) != size:
                raise SnniError(f"unexpected frame {tag!r} from the session")
            if layer_part is not None and failure is None:
                try:
                    residues = np.frombuffer(raw, dtype=np.uint64).reshape(count, *shape)
                    layer_part.add_residues(residues)
                except SnniError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
        if aborted:
            continue
        try:
            if layer_part is not None and failure is None:
                for reply in layer_part.replies():
                    _send(sock, REPLY, reply)
        except SnniError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            _send(sock, FAIL, failure[:300].encode("utf-8", "replace"))
