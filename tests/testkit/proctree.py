"""Memory and CPU of a process and its descendants, read from Linux's /proc.

The edge is a tree (the server, its model host, one worker per session), so
its cost is the tree's. Used by the fault tests and by the load and soak
benchmarks. A process that exits while it is being read is skipped; the CPU
of a child its parent has reaped is in the parent's ``cutime``/``cstime``, so
the tree's CPU total never drops when a worker ends.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state is index 0)."""
    text = (_PROC / str(pid) / "stat").read_text()
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie waiting for a reaper."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier}
        found.extend(sorted(frontier))
    return found


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory in MB: RSS counts a shared page in every sharer, PSS splits it."""

    rss_mb: float
    pss_mb: float


def memory(pid: int) -> Memory:
    """One process's RSS and PSS (smaps_rollup); zero if it has gone."""
    rss = pss = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return Memory(rss_mb=rss / 1024, pss_mb=pss / 1024)


def tree_memory(pid: int) -> Memory:
    """The sums of RSS and PSS over ``pid`` and its descendants."""
    parts = [memory(p) for p in [pid, *descendants(pid)]]
    return Memory(rss_mb=sum(m.rss_mb for m in parts), pss_mb=sum(m.pss_mb for m in parts))


def cpu_s(pid: int) -> float:
    """CPU-seconds (user + system) of ``pid`` and of the children it has reaped."""
    try:
        fields = _stat_fields(pid)
        return sum(int(v) for v in fields[11:15]) / _TICK
    except (OSError, ValueError, IndexError):
        return 0.0


def tree_cpu_s(pid: int) -> float:
    """CPU-seconds used so far by ``pid``'s tree, reaped descendants included."""
    return cpu_s(pid) + sum(cpu_s(p) for p in descendants(pid))
