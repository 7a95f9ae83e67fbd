"""SNNI messages over DATA frames: split and reassemble, with the size bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.errors import RemoteProtocolError
from secfepas_sdk.protocol.events import Data
from secfepas_sdk.protocol.messages import MessageAssembler, split_message


@given(st.binary(max_size=2000), st.integers(1, 300))
def test_split_then_assemble_is_the_identity(message: bytes, chunk: int) -> None:
    frames = split_message(message, chunk)
    assert all(len(f.payload) <= chunk for f in frames)
    assert [f.more for f in frames] == [True] * (len(frames) - 1) + [False]
    asm = MessageAssembler(len(message))
    out = [asm.add(f) for f in frames]
    assert out[:-1] == [None] * (len(frames) - 1) and out[-1] == message
    assert not asm.pending


def test_an_oversized_message_is_refused_and_leaves_nothing_behind() -> None:
    asm = MessageAssembler(10)
    assert asm.add(Data(payload=b"x" * 6, more=True)) is None
    with pytest.raises(RemoteProtocolError) as exc:
        asm.add(Data(payload=b"y" * 5, more=True))
    assert exc.value.code == "frame_too_large"
    assert not asm.pending
    assert asm.add(Data(payload=b"z" * 10)) == b"z" * 10  # the bound counts from zero again
