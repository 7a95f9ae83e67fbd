"""HE scratch memory: SEAL objects round-trip through anonymous memory, and no
file under /dev/shm or the temp dir ever holds a share's coefficients, not even
after the camera-side process is SIGKILLed in the middle of its HE work."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.he import sealio
from secfepas_sdk.snni.he.engine import HeClient
from secfepas_sdk.snni.he.params import BFV_N8192, make_context
from secfepas_sdk.snni.he.scratch import SealScratch
from secfepas_sdk.snni.ring import Ring

seal = pytest.importorskip("tenseal.sealapi")

RING = Ring(bits=37, frac_bits=12)
SCAN_DIRS = ("/dev/shm", tempfile.gettempdir())
MAX_SCANNED_FILE = 64 << 20


def _fd_links(pid: int | str = "self") -> list[str]:
    links = []
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{entry}"))
        except OSError:
            continue  # closed meanwhile
    return links


def _memfds(pid: int | str = "self") -> list[str]:
    return [link for link in _fd_links(pid) if link.startswith("/memfd:secfepas-he")]


def test_round_trip_through_anonymous_memory() -> None:
    context = make_context(BFV_N8192, RING.bits)
    scratch = SealScratch()
    coeffs = np.arange(BFV_N8192.poly_degree, dtype=np.uint64)
    pt = seal.Plaintext()
    scratch.load(pt, context, sealio.plaintext_bytes(coeffs))
    assert np.array_equal(sealio.plaintext_coeffs(scratch.save(pt)), coeffs)
    scratch.close()


def test_memfds_are_bounded_by_concurrency_and_released_on_close() -> None:
    before = len(_memfds())
    context = make_context(BFV_N8192, RING.bits)
    scratch = SealScratch()
    raw = sealio.plaintext_bytes(np.ones(16, dtype=np.uint64))

    def work() -> None:
        for _ in range(20):
            scratch.load(seal.Plaintext(), context, raw)

    threads = [threading.Thread(target=work) for _ in range(8)]  # fresh threads, one scratch
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert 1 <= len(_memfds()) - before <= 8
    scratch.close()
    assert len(_memfds()) == before
    with pytest.raises(SnniError, match="closed"):
        scratch.save(seal.Plaintext())


def test_seal_rejects_garbage_as_snni_error() -> None:
    context = make_context(BFV_N8192, RING.bits)
    scratch = SealScratch()
    with pytest.raises(SnniError, match="SEAL rejected"):
        scratch.load(seal.Plaintext(), context, b"\x00" * 64)
    scratch.close()


# A camera-side process: the HE client encrypts polynomials that carry the marker
# (its "share") over and over, as the first layer of an inference does with the image.
_CAMERA = textwrap.dedent(
    """
    import sys
    import numpy as np
    from secfepas_sdk.snni.he.engine import HeClient
    from secfepas_sdk.snni.he.params import BFV_N8192
    from secfepas_sdk.snni.ring import Ring

    marker = np.frombuffer(bytes.fromhex(sys.argv[1]), dtype=np.uint64)
    polys = np.zeros((4, BFV_N8192.poly_degree), dtype=np.uint64)
    polys[:, : marker.size] = marker
    client = HeClient(BFV_N8192, Ring(bits=37, frac_bits=12))
    client.encrypt(polys)
    print("encrypting", flush=True)
    while True:
        client.encrypt(polys)
    """
)


def _files_holding(needle: bytes) -> list[str]:
    hits = []
    for base in SCAN_DIRS:
        for root, _dirs, files in os.walk(base):
            for name in files:
                path = os.path.join(root, name)
                try:
                    if not os.path.isfile(path) or os.path.getsize(path) > MAX_SCANNED_FILE:
                        continue
                    if needle in Path(path).read_bytes():
                        hits.append(path)
                except OSError:
                    continue  # another test's file, gone or unreadable
    return hits


def test_no_file_ever_holds_the_share_even_after_sigkill() -> None:
    # 16 random coefficients below t = 2^37 (as a share's are), little endian as SEAL stores them.
    marker = (np.frombuffer(secrets.token_bytes(128), dtype=np.uint64) & RING.mask).copy()
    needle = marker.tobytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CAMERA, needle.hex()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # not pytest's capture file, which lives in the temp dir
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if first != "encrypting":
            proc.wait(30)
            pytest.fail(f"the camera process failed: {proc.stderr.read() if proc.stderr else ''}")
        # While it works: its SEAL paths are memfds, no descriptor points into a directory.
        links = _fd_links(proc.pid)
        assert any(link.startswith("/memfd:secfepas-he") for link in links), links
        assert not [link for link in links if link.startswith(SCAN_DIRS)], links
        assert _files_holding(needle) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert _files_holding(needle) == []


def test_the_scan_finds_a_share_written_to_a_file() -> None:
    """The scan above can fail: a share in a temp file is found."""
    marker = np.frombuffer(secrets.token_bytes(128), dtype=np.uint64)
    leaked = Path(tempfile.gettempdir()) / f"scan-check-{secrets.token_hex(4)}"
    leaked.write_bytes(b"x" + sealio.plaintext_bytes(marker))
    try:
        assert str(leaked) in _files_holding(marker.tobytes())
    finally:
        leaked.unlink()


def test_client_scratch_is_released_on_close() -> None:
    before = len(_memfds())
    client = HeClient(BFV_N8192, RING)
    client.encrypt(np.zeros((1, BFV_N8192.poly_degree), dtype=np.uint64))
    assert len(_memfds()) > before
    client.close()
    assert len(_memfds()) == before
