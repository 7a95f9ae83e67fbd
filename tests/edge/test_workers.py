"""Session processes forked from the model host share the encoded weights but
never the randomness or the HE scratch memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from secfepas_sdk.edge.worker import load_runtime
from secfepas_sdk.snni.runtime import ServerRuntime


def _scratch_inodes(runtime: ServerRuntime) -> set[int]:
    """The memfds (by inode: fd numbers are reused) the HE scratch holds."""
    return {os.fstat(fd).st_ino for fd in runtime._he._s.scratch._fds}


def _fingerprint(runtime: ServerRuntime) -> bytes:
    """What a session would draw first from each of the runtime's PRGs, and the
    memfds its HE scratch uses."""
    he = runtime._he
    he._s.plaintext(np.zeros(4, dtype=np.uint64))  # goes through the scratch
    inodes = ",".join(str(i) for i in sorted(_scratch_inodes(runtime)))
    draws = (runtime._prg.fork().random_bytes(16), he._prg.fork().random_bytes(16))
    # hex: a raw draw holds the separator byte about one time in eight
    return b"|".join((*(d.hex().encode() for d in draws), inodes.encode()))


def _forked_fingerprint(runtime: ServerRuntime) -> bytes:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            runtime.after_fork()
            os.write(write, _fingerprint(runtime))
            runtime.close()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        got = fh.read()
    os.waitpid(pid, 0)
    return got


def test_forked_sessions_draw_fresh_randomness_and_scratch(demo_models: Path) -> None:
    runtime = load_runtime(str(demo_models / "demo"), 1 << 30)
    try:
        first, second = _forked_fingerprint(runtime), _forked_fingerprint(runtime)
        first_parts, second_parts = first.split(b"|"), second.split(b"|")
        assert len(first_parts) == len(second_parts) == 3
        for a, b in zip(first_parts, second_parts, strict=True):
            assert a != b  # without after_fork both children would draw the same stream
        # Neither child touched the host's memfds.
        host = {str(i).encode() for i in _scratch_inodes(runtime)}
        assert host and not host & set(first_parts[2].split(b",") + second_parts[2].split(b","))
    finally:
        runtime.close()
