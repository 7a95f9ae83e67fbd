"""Edge settings: TOML file, environment and explicit values, in that order of strength."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import pytest

from secfepas_sdk.edge.settings import EdgeSettings, he_workers_for, load_settings
from secfepas_sdk.errors import ConfigError
from secfepas_sdk.protocol.events import OT_EXTENSIONS

TOML = """
model_dir = "models"
ca = "pki/ca.pem"
cert = "pki/edge.pem"
key = "pki/edge.key"
port = 9000
max_sessions = 3
"""


def test_toml_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text(TOML)
    s = load_settings(tmp_path / "edge.toml")
    assert s.model_dir == tmp_path / "models"
    assert s.ca == tmp_path / "pki" / "ca.pem"
    assert (s.port, s.max_sessions) == (9000, 3)


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "edge.toml").write_text(TOML)
    monkeypatch.setenv("SECFEPAS_EDGE_MAX_SESSIONS", "5")
    monkeypatch.setenv("SECFEPAS_EDGE_PORT", "9100")
    s = load_settings(tmp_path / "edge.toml", port=9200, host=None)
    assert s.max_sessions == 5  # env beats the file
    assert s.port == 9200  # an explicit value beats the env
    assert s.host == "127.0.0.1"  # None means "not given"


def test_unknown_and_invalid_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text(TOML + "\nmax_sesions = 4\n")
    with pytest.raises(ConfigError, match="max_sesions"):
        load_settings(tmp_path / "edge.toml")
    (tmp_path / "edge.toml").write_text(TOML.replace("max_sessions = 3", "max_sessions = 0"))
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "edge.toml")
    (tmp_path / "edge.toml").write_text("this is not toml")
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "edge.toml")


def test_required_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model_dir"):
        load_settings(None, ca="a", cert="b", key="c")


def test_metrics_can_be_switched_off_from_file_env_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "edge.toml").write_text(TOML)
    assert load_settings(tmp_path / "edge.toml").metrics_enabled is True
    (tmp_path / "edge.toml").write_text(TOML + "metrics_enabled = false\n")
    assert load_settings(tmp_path / "edge.toml").metrics_enabled is False
    (tmp_path / "edge.toml").write_text(TOML)
    monkeypatch.setenv("SECFEPAS_EDGE_METRICS_ENABLED", "false")
    assert load_settings(tmp_path / "edge.toml").metrics_enabled is False
    monkeypatch.delenv("SECFEPAS_EDGE_METRICS_ENABLED")
    assert load_settings(tmp_path / "edge.toml", metrics_enabled=False).metrics_enabled is False


def test_a_typo_in_the_file_names_the_file_and_the_closest_key(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text(TOML + "metrics_prot = 9500\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "edge.toml")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "edge.toml") in message
    assert "'metrics_prot'" in message and "did you mean 'metrics_port'?" in message


def test_unknown_environment_variables_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "edge.toml").write_text(TOML)
    monkeypatch.setenv("SECFEPAS_EDGE_MAX_SESION", "4")
    monkeypatch.setenv("SECFEPAS_EDGE_PORT", "9300")  # a known one: no warning
    with caplog.at_level("WARNING", logger="secfepas_sdk.edge.settings"):
        s = load_settings(tmp_path / "edge.toml")
    assert s.max_sessions == 3 and s.port == 9300
    (record,) = caplog.records
    assert "SECFEPAS_EDGE_MAX_SESION" in record.getMessage()
    assert "did you mean SECFEPAS_EDGE_MAX_SESSIONS?" in record.getMessage()


def test_missing_and_invalid_values_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert str(info.value).startswith("missing edge setting(s) model_dir, ca, cert, key")
    with pytest.raises(ConfigError) as info:
        load_settings(None, model_dir="m", ca="a", cert="c", key="k", max_sessions=0)
    assert "\n" not in str(info.value)
    assert "max_sessions=0" in str(info.value)


def test_he_workers_default_to_one_sessions_share_of_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "edge.toml").write_text(TOML)  # max_sessions = 3
    s = load_settings(tmp_path / "edge.toml")
    assert s.he_workers == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert he_workers_for(s) == 2  # 8 usable cores, 3 sessions
    assert he_workers_for(load_settings(tmp_path / "edge.toml", max_sessions=16)) == 1
    assert he_workers_for(load_settings(tmp_path / "edge.toml", he_workers=1)) == 1
    monkeypatch.setenv("SECFEPAS_EDGE_HE_WORKERS", "5")
    assert he_workers_for(load_settings(tmp_path / "edge.toml")) == 5
    for bad in ("-1", "257", "two"):
        monkeypatch.setenv("SECFEPAS_EDGE_HE_WORKERS", bad)
        with pytest.raises(ConfigError, match="he_workers"):
            load_settings(tmp_path / "edge.toml")


def test_ot_extensions_from_file_env_and_flags_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The allowed OT extensions: a TOML list, a comma list in the variable or flag,
    both by default; an unknown or repeated one is a one-line error naming the choices."""
    (tmp_path / "edge.toml").write_text(TOML + 'ot_extensions = ["ferret"]\n')
    assert load_settings(tmp_path / "edge.toml").ot_extensions == ("ferret",)
    monkeypatch.setenv("SECFEPAS_EDGE_OT_EXTENSIONS", "ferret, softspoken")
    assert load_settings(tmp_path / "edge.toml").ot_extensions == ("ferret", "softspoken")
    monkeypatch.delenv("SECFEPAS_EDGE_OT_EXTENSIONS")
    (tmp_path / "edge.toml").write_text(TOML)
    assert load_settings(tmp_path / "edge.toml").ot_extensions == ("ferret", "softspoken")
    assert load_settings(tmp_path / "edge.toml", ot_extensions="softspoken").ot_extensions == (
        "softspoken",
    )
    for bad, why in (("iknp", "unknown OT extension 'iknp'"), ("ferret,ferret", "twice"), ("", "")):
        with pytest.raises(ConfigError) as exc:
            load_settings(tmp_path / "edge.toml", ot_extensions=bad)
        assert "ot_extensions" in str(exc.value) and why in str(exc.value)
        assert "\n" not in str(exc.value)
    # The setting's choices are the protocol's (one list, no drift).
    field = EdgeSettings.model_fields["ot_extensions"]
    assert get_args(get_args(field.annotation)[0]) == OT_EXTENSIONS
