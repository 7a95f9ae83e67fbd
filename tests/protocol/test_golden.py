"""Golden bytes pin wire protocol v1: the encoder must reproduce them exactly and the
decoder must read them back. Regenerate ONLY for a new version:
``python tests/protocol/test_golden.py`` (v1's files are frozen).

The hellos carry the SNNI suite of their time, snni-cheetah-v1; the peers that replay
them are configured to speak it (a suite is a value in the frame, not its format)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from secfepas_sdk.protocol.connection import NEED_DATA, Connection, Role, State
from secfepas_sdk.protocol.events import (
    ClientHello,
    Close,
    Data,
    Error,
    InferenceBegin,
    InferenceEnd,
    ServerHello,
    encode_control,
)
from secfepas_sdk.protocol.framing import FLAG_MORE, FrameLimits, encode_frame

GOLDEN_DIR = Path(__file__).parent / "golden" / "v1"
GOLDEN_SUITES = ("snni-cheetah-v1",)

GOLDEN: dict[str, ClientHello | ServerHello | InferenceBegin | InferenceEnd | Error | Close | Data]
GOLDEN = {
    "client_hello": ClientHello(versions=(1,), model_id="pain-demo", suites=("snni-cheetah-v1",)),
    "server_hello": ServerHello(
        version=1,
        suite="snni-cheetah-v1",
        session_id="3f2a9c",
        manifest={"model_id": "pain-demo", "version": "1", "input_shape": [1, 3, 8, 8]},
        plan={"ops": [{"kind": "conv"}], "ring": {"bits": 37, "frac_bits": 12}},
    ),
    "inference_begin_setup": InferenceBegin(seq=0, setup=True),
    "inference_begin": InferenceBegin(seq=7, setup=False),
    "data": Data(payload=bytes(range(16))),
    "data_more": Data(payload=b"\x00\xff" * 4, more=True),
    "data_empty": Data(payload=b""),
    "inference_end": InferenceEnd(seq=7),
    "error_busy": Error(code="busy", message="all 4 session slots are taken; retry later"),
    "close": Close(reason="bye"),
    "close_empty": Close(),
}

# The state each side must be in to send the frame, reached by a real exchange.
_PRELUDE = {
    "client_hello": [],
    "server_hello": ["client_hello"],
    "inference_begin_setup": ["client_hello", "server_hello"],
    "inference_begin": ["client_hello", "server_hello"],
    "data": ["client_hello", "server_hello", "inference_begin"],
    "data_more": ["client_hello", "server_hello", "inference_begin"],
    "data_empty": ["client_hello", "server_hello", "inference_begin"],
    "inference_end": ["client_hello", "server_hello", "inference_begin"],
    "error_busy": ["client_hello"],
    "close": ["client_hello", "server_hello"],
    "close_empty": ["client_hello", "server_hello"],
}
_SENDER = {
    "client_hello": Role.CLIENT,
    "server_hello": Role.SERVER,
    "inference_begin_setup": Role.CLIENT,
    "inference_begin": Role.CLIENT,
    "data": Role.CLIENT,
    "data_more": Role.SERVER,
    "data_empty": Role.CLIENT,
    "inference_end": Role.SERVER,
    "error_busy": Role.SERVER,
    "close": Role.CLIENT,
    "close_empty": Role.SERVER,
}


def _raw(event: object) -> bytes:
    limits = FrameLimits()
    if isinstance(event, Data):
        flags = FLAG_MORE if event.more else 0
        return encode_frame(event.frame_type, event.payload, flags=flags, limits=limits)
    return encode_frame(event.frame_type, encode_control(event), limits=limits)  # type: ignore[attr-defined,arg-type]


def _pair_after(prelude: list[str]) -> dict[Role, Connection]:
    peers = {
        Role.CLIENT: Connection(Role.CLIENT, suites=GOLDEN_SUITES),
        Role.SERVER: Connection(Role.SERVER, suites=GOLDEN_SUITES),
    }
    for name in prelude:
        sender = _SENDER[name]
        receiver = Role.SERVER if sender is Role.CLIENT else Role.CLIENT
        peers[receiver].receive_data(peers[sender].send(GOLDEN[name]))  # type: ignore[arg-type]
        assert peers[receiver].next_event() == GOLDEN[name]
    return peers


def test_every_pinned_frame_has_a_fixture() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.bin")} == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_encoder_reproduces_golden_bytes(name: str) -> None:
    peers = _pair_after(_PRELUDE[name])
    wire = peers[_SENDER[name]].send(GOLDEN[name])  # type: ignore[arg-type]
    assert wire == (GOLDEN_DIR / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_decoder_reads_golden_bytes_byte_by_byte(name: str) -> None:
    peers = _pair_after(_PRELUDE[name])
    receiver = peers[Role.SERVER if _SENDER[name] is Role.CLIENT else Role.CLIENT]
    raw = (GOLDEN_DIR / f"{name}.bin").read_bytes()
    for i in range(len(raw) - 1):
        receiver.receive_data(raw[i : i + 1])
        assert receiver.next_event() is NEED_DATA
    receiver.receive_data(raw[-1:])
    assert receiver.next_event() == GOLDEN[name]


def test_header_layout_is_documented_one() -> None:
    raw = (GOLDEN_DIR / "data_more.bin").read_bytes()
    assert raw[:4] == b"SFPS"
    assert raw[4] == 1  # wire version
    assert raw[5] == 0x04  # DATA
    assert raw[6:8] == b"\x00\x01"  # MORE
    assert int.from_bytes(raw[8:12], "big") == len(raw) - 12


def test_error_frame_is_accepted_in_any_live_state() -> None:
    peers = _pair_after(["client_hello"])
    peers[Role.CLIENT].receive_data((GOLDEN_DIR / "error_busy.bin").read_bytes())
    assert peers[Role.CLIENT].next_event() == GOLDEN["error_busy"]
    assert peers[Role.CLIENT].state is State.CLOSED


def _regenerate() -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, event in GOLDEN.items():
        (GOLDEN_DIR / f"{name}.bin").write_bytes(_raw(event))
    return 0


if __name__ == "__main__":
    sys.exit(_regenerate())
