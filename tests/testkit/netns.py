"""What the network-profile tests need: root, iproute2 and /dev/net/tun."""

from __future__ import annotations

import os
import shutil

import pytest


def require_netns() -> None:
    """Fail (not skip) where the link emulation cannot run: the suite must show it.
    This project's machines and CI run as root with iproute2 (tools/test.sh installs it)."""
    missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing or not os.path.exists("/dev/net/tun"):
        pytest.fail(
            "the network-profile tests need root, iproute2 (ip, tc) and /dev/net/tun; "
            f"euid {os.geteuid()}, missing {missing or 'none'}"
        )
