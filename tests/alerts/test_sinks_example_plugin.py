"""The third-party plugin from docs/writing-a-sink.md, pip-installed, then loaded by scheme."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.alerts import make_alert

from secfepas_sdk.alerts import AlertService, available_schemes, load_sink
from secfepas_sdk.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "integrations" / "example"


def _setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example into a private target directory (the env stays clean)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "example"  # build a copy: the tree stays clean
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    if _setuptools_major() >= 77:
        cmd.append("--no-build-isolation")  # build offline with the setuptools we have
    subprocess.run([*cmd, str(source)], check=True, capture_output=True, timeout=180)
    return target


@pytest.fixture
def example_on_path(installed_example: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_example))
    return installed_example


def test_example_plugin_loads_through_its_entry_point(
    example_on_path: Path, tmp_path: Path
) -> None:
    dist = importlib.metadata.distribution("secfepas-sink-example")
    assert [ep.name for ep in dist.entry_points] == ["jsonl"]
    assert "jsonl" in available_schemes()
    out = tmp_path / "alerts.jsonl"
    sink = load_sink(f"jsonl://{out}")
    assert type(sink).__module__ == "secfepas_sink_example"
    assert str(example_on_path) in sys.modules["secfepas_sink_example"].__file__  # type: ignore[operator]
    alerts = [make_alert() for _ in range(3)]
    with AlertService([sink], outbox=tmp_path / "o.db") as service:
        for alert in alerts:
            service.publish(alert)
        assert service.wait_idle(5)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["alert_id"] for line in lines] == [str(a.alert_id) for a in alerts]


def test_example_plugin_checks_its_uri_at_load(example_on_path: Path) -> None:
    with pytest.raises(ConfigError, match="absolute"):
        load_sink("jsonl://relative/x.jsonl")
    with pytest.raises(ConfigError, match="does not exist"):
        load_sink("jsonl:///no/such/dir/x.jsonl")


def test_docs_show_the_example_verbatim() -> None:
    doc = (EXAMPLE.parents[1] / "docs" / "writing-a-sink.md").read_text()
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", doc, re.S)
    for path in ("pyproject.toml", "secfepas_sink_example/__init__.py"):
        assert (EXAMPLE / path).read_text() in blocks, f"docs/writing-a-sink.md lags {path}"
