"""What each party receives during a ReLU looks uniform and carries no trace of
the plaintext: run a ReLU on a recognisable ramp and inspect the server's view."""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray
from testkit.snni import CHI2_LIMIT, chi_square_uniform_bytes, recording_pair

from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)
N = 1 << 12


def run_relu(values: NDArray[np.int64]) -> tuple[list[bytes], list[bytes], NDArray[np.int64]]:
    client_end, server_end = recording_pair()
    x0, x1 = RING.share(RING.from_signed(values), Prg())
    outs: dict[str, NDArray[np.uint64]] = {}

    def party(name: str, who: Party, ch: Channel, share: NDArray[np.uint64]) -> None:
        engine = NonlinearEngine(ch, party=who, ring=RING)
        engine.setup()
        outs[name] = engine.relu(share)

    t = threading.Thread(target=party, args=("c", Party.CLIENT, client_end, x0))
    t.start()
    party("s", Party.SERVER, server_end, x1)
    t.join(60)
    result = RING.to_signed(RING.add(outs["c"], outs["s"]))
    # Drop the base-OT messages (group elements, not uniform bytes).
    return client_end.view[2:], server_end.view[2:], result


def ramp() -> NDArray[np.int64]:
    return np.linspace(-8.0 * RING.scale, 8.0 * RING.scale, N).astype(np.int64)


def test_server_view_has_no_trace_of_the_ramp() -> None:
    values = ramp()
    _, server_view, result = run_relu(values)
    np.testing.assert_array_equal(result, np.maximum(values, 0))
    assert chi_square_uniform_bytes(b"".join(server_view)) < CHI2_LIMIT
    signal = values.astype(np.float64)
    sign = (values >= 0).astype(np.float64)
    for message in server_view:
        # Read each message as per-element columns of bytes and of bits, whatever
        # its layout (bit-packed messages included); no column may track the input.
        raw = np.frombuffer(message, dtype=np.uint8)
        for cells in (raw, np.unpackbits(raw, bitorder="little")):
            per = len(cells) // N
            if per == 0:
                continue
            columns = cells[: per * N].reshape(N, per).astype(np.float64)
            for col in range(min(per, 64)):
                if columns[:, col].std() == 0:
                    raise AssertionError("a constant column in the server's view")
                for ref in (signal, sign):
                    corr = np.corrcoef(columns[:, col], ref)[0, 1]
                    assert abs(corr) < 0.1, "server's view correlates with the input"


def test_server_view_same_distribution_for_ramp_and_zeros() -> None:
    """Ramp input or all-zero input: the server's views have the same sizes and
    both look uniform, so it cannot tell them apart by size or byte statistics."""
    _, view_ramp, _ = run_relu(ramp())
    _, view_zero, _ = run_relu(np.zeros(N, dtype=np.int64))
    assert [len(m) for m in view_ramp] == [len(m) for m in view_zero]
    assert chi_square_uniform_bytes(b"".join(view_zero)) < CHI2_LIMIT


def test_client_view_is_uniform() -> None:
    client_view, _, _ = run_relu(ramp())
    assert chi_square_uniform_bytes(b"".join(client_view)) < CHI2_LIMIT
