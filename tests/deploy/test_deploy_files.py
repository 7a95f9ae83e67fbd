"""The shipped deployment files parse: the HAProxy config by HAProxy itself, the
example edge.toml by the edge's own settings loader, the units by their keys."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from secfepas_sdk.edge.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def test_haproxy_config_is_valid_with_the_example_environment() -> None:
    env = dict(os.environ)
    for line in (DEPLOY / "haproxy" / "haproxy.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["SECFEPAS_LB_STATS_SOCKET"] = "/nonexistent/admin.sock"  # -c binds nothing
    out = subprocess.run(
        [HAPROXY, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    for needed in ("mode tcp", "balance leastconn", "option httpchk", "/healthz", "check port"):
        assert needed in text


def test_example_edge_toml_loads() -> None:
    settings = load_settings(DEPLOY / "systemd" / "edge.toml.example")
    assert settings.metrics_enabled and settings.metrics_host == "0.0.0.0"


@pytest.mark.parametrize("unit", ["secfepas-edge@.service", "secfepas-lb.service"])
def test_units_are_hardened(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / unit)
    service = parser["Service"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    if unit.startswith("secfepas-edge"):
        assert "--config /etc/secfepas/%i.toml" in service["ExecStart"]
        assert service["KillMode"] == "control-group"


def test_alert_rules_and_docs_name_only_metrics_the_edge_exports() -> None:
    import re

    from secfepas_sdk.edge.metrics import EdgeMetrics

    exported = set(re.findall(r"^# TYPE (secfepas_edge_\w+)", EdgeMetrics().render(), re.M))
    exported |= {f"{name}_bucket" for name in exported}
    docs = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
    for path in (DEPLOY / "prometheus" / "secfepas-edge.rules.yml", docs):
        named = set(re.findall(r"secfepas_edge_\w+", path.read_text()))
        assert named and named <= exported, f"{path.name}: {sorted(named - exported)}"
