"""Make peer-controlled text safe to put in a log line.

A peer's error message, close reason or certificate name is untrusted: raw, it
could forge log lines (CR/LF), drive a terminal (ESC sequences) or reorder what
an operator reads (Unicode bidi overrides). :func:`safe_text` turns every such
character into a visible escape and bounds the length, so one log call stays
one honest line. Both the camera and the edge use it.
"""

from __future__ import annotations

import re

from secfepas_sdk.errors import InvalidValueError

__all__ = ["DEFAULT_MAX_CHARS", "safe_text"]

DEFAULT_MAX_CHARS = 300

# C0 and C1 controls and DEL; zero-width and bidi formatting characters; the
# Unicode line and paragraph separators; word joiners, invisible operators and
# bidi isolates; the byte-order mark.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """``str(value)`` with control and formatting characters escaped, cut to about
    ``max_chars`` (an exception works too: its message is usually the peer's text)."""
    if max_chars < 1:
        raise InvalidValueError("max_chars must be >= 1")
    text = str(value)
    shown = _UNSAFE.sub(_escape, text[:max_chars])
    return f"{shown}...[{len(text) - max_chars} more]" if len(text) > max_chars else shown
