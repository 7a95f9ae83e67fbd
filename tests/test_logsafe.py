"""Peer text in logs: no control or formatting character survives, length is bounded."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.logsafe import safe_text

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def test_line_forging_and_terminal_escapes_become_visible() -> None:
    forged = "bad\r\n2026-12-01 INFO edge: camera admin logged in\x1b[2J\u202eevil"
    out = safe_text(forged)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out and "\u202e" not in out
    assert out == ("bad\\x0d\\x0a2026-12-01 INFO edge: camera admin logged in\\x1b[2J\\u202eevil")


def test_plain_text_and_non_latin_letters_pass_unchanged() -> None:
    assert safe_text("unknown model 'pain-v2' (Schmerz, боль, 痛み)") == (
        "unknown model 'pain-v2' (Schmerz, боль, 痛み)"
    )


def test_long_text_is_cut_and_says_how_much() -> None:
    assert safe_text("x" * 1000, max_chars=10) == "xxxxxxxxxx...[990 more]"
    with pytest.raises(ValueError):
        safe_text("x", max_chars=0)


def test_exceptions_give_their_message() -> None:
    assert safe_text(ValueError("a\nb")) == "a\\x0ab"


@given(st.text(max_size=400), st.integers(min_value=1, max_value=500))
def test_output_never_holds_an_unsafe_character(text: str, limit: int) -> None:
    out = safe_text(text, max_chars=limit)
    assert not _FORBIDDEN.search(out)
    assert len(out) <= 6 * limit + 40


def test_one_log_record_stays_one_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("secfepas_sdk.test")
    with caplog.at_level(logging.INFO, logger="secfepas_sdk.test"):
        log.info("edge said: %s", safe_text("ok\nCRITICAL forged"))
    assert "\n" not in caplog.text.rstrip("\n")
