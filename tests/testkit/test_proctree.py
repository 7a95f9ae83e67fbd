"""testkit.proctree: a tree's CPU keeps a reaped worker's time; memory sums the tree."""

from __future__ import annotations

import os
import subprocess
import sys

from testkit.proctree import cpu_s, descendants, memory, tree_cpu_s, tree_memory

# A parent that runs a CPU-burning child to its end (reaping it), then holds 64 MB
# in a second, live child until its stdin closes.
_TREE = """
import subprocess, sys
burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"
subprocess.run([sys.executable, "-c", burn], check=True)
hold = "import sys\\nb = bytearray(64 << 20)\\nb[::4096] = b'x' * len(b[::4096])\\n"
hold += "print('held', flush=True)\\nsys.stdin.read()"
child = subprocess.Popen([sys.executable, "-c", hold], stdin=sys.stdin, stdout=sys.stdout)
child.wait()
"""


def test_tree_cpu_includes_reaped_children_and_memory_sums_the_tree() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "held"
        (holder,) = descendants(proc.pid)
        assert proc.pid in descendants(os.getpid())
        # The burner is gone; its 0.3 CPU-s live on in its parent's cutime.
        assert cpu_s(proc.pid) >= 0.3
        assert tree_cpu_s(proc.pid) >= cpu_s(proc.pid) + cpu_s(holder) - 1e-9
        held = memory(holder)
        assert held.rss_mb >= 64 and 0 < held.pss_mb <= held.rss_mb
        total = tree_memory(proc.pid)
        assert total.rss_mb >= held.rss_mb + memory(proc.pid).rss_mb - 1
    finally:
        proc.stdin.close()
        proc.wait(10)


def test_a_process_that_has_gone_reads_as_zero() -> None:
    gone = 2**22 + 1  # above Linux's default pid_max: never a live process
    assert cpu_s(gone) == 0.0 and memory(gone).rss_mb == 0.0 and descendants(gone) == []
