"""Which side of the two-party computation a piece of code runs on."""

from __future__ import annotations

import enum


class Party(enum.IntEnum):
    """CLIENT is the camera (holds the input, learns the output); SERVER is the
    edge (holds the weights). The integer value is the party index in
    protocols that need one (e.g. who adds a public constant)."""

    CLIENT = 0
    SERVER = 1
