"""The two-process selftest harness hands the input tensor (pixels) to the client
process through a pipe, never a file, and refuses anything but a .npy array."""

from __future__ import annotations

import subprocess
import sys

from secfepas_sdk.models.bundled import demo_model_path


def _client(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable, "-m", "secfepas_sdk.cli.selftest", "--role", "client",
            "--package", str(demo_model_path()), "--port", "1", "--timeout", "5",
        ],
        input=stdin, capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def test_client_reads_its_tensor_from_stdin_and_refuses_garbage() -> None:
    done = _client(b"\x93NUMPY not really")
    assert done.returncode == 1
    assert done.stderr.decode().strip().startswith("secfepas client: error: the input tensor")


def test_client_takes_no_tensor_path() -> None:
    done = _client(b"")
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    flags = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.selftest", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "--tensor" not in flags


def test_a_partys_peak_rss_is_its_own_not_its_parents() -> None:
    """ru_maxrss survives fork and exec on Linux: a party started by a test runner that
    had grown to gigabytes reported the runner's peak (3.3 GB for SqueezeNet in CI)."""
    import subprocess
    import sys

    big = bytearray(600 * 1024 * 1024)
    big[::4096] = b"\x01" * len(big[::4096])
    code = "from secfepas_sdk.cli.selftest import _peak_rss_mb; print(_peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    del big
    assert float(out.stdout) < 300
