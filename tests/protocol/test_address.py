"""One HOST:PORT parser for the camera's --edge and the edge's --listen."""

from __future__ import annotations

import pytest

from secfepas_sdk.errors import InvalidValueError
from secfepas_sdk.protocol.address import parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [("edge.local:7443", ("edge.local", 7443)), ("[::1]:1", ("::1", 1)), (("h", 9), ("h", 9))],
)
def test_host_port(text: str | tuple[str, int], expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["edge.local", "edge:http", ":7443", "edge:0", "edge:65536"])
def test_a_bad_address_names_what_and_the_form(text: str) -> None:
    with pytest.raises(InvalidValueError, match=r"--edge must be HOST:PORT"):
        parse_host_port(text, what="--edge")


def test_a_listen_address_may_let_the_system_pick_the_port() -> None:
    assert parse_host_port("127.0.0.1:0", what="--listen", listen=True) == ("127.0.0.1", 0)
