"""Fixtures for alert tests; plain helpers live in testkit.alerts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, str], None]:
    """Install a plugin as a bare dist-info plus module on sys.path (no pip)."""
    counter = [0]

    def install(module_source: str, entry_points: str, dist: str = "fakeplug") -> None:
        counter[0] += 1
        root = tmp_path / f"site{counter[0]}"
        info = root / f"{dist}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[secfepas_sdk.alert_sinks]\n" + entry_points + "\n")
        (root / f"{dist}_mod.py").write_text(module_source)
        monkeypatch.syspath_prepend(str(root))

    return install
