"""tools/*.sh on a distribution Python: the venv helper and the wheel builder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRO_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _bash(script: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def fake_debian(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH where python3 lacks ensurepip (as Debian without python3-venv) until
    a stub apt-get "installs" python3-venv; apt-get logs its arguments."""
    real = shutil.which("python3", path=DISTRO_PATH) or sys.executable
    bin_dir, marker, log = tmp_path / "bin", tmp_path / "venv-installed", tmp_path / "apt.log"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        "#!/bin/bash\n"
        f'if [ ! -e {marker} ] && [[ "$*" == *ensurepip* || "$*" == *"-m venv"* ]]; then\n'
        "  echo 'The virtual environment was not created successfully because ensurepip"
        " is not available.' >&2; exit 1\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    (bin_dir / "apt-get").write_text(
        f'#!/bin/bash\necho "$*" >> {log}\n[[ "$*" == *python3-venv* ]] && touch {marker}\nexit 0\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir, log


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt path runs only as root")
def test_venv_helper_installs_python3_venv_when_venv_fails_then_reuses_it(
    tmp_path: Path, fake_debian: tuple[Path, Path]
) -> None:
    bin_dir, apt_log = fake_debian
    venv = tmp_path / "venv"
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{bin_dir}:{DISTRO_PATH}"}
    env["SECFEPAS_VENV"] = str(venv)
    script = '. tools/_venv.sh && secfepas_venv && "$VENV_PY" -c "import sys; print(sys.prefix)"'
    first = _bash(script, env)
    assert first.returncode == 0, first.stderr
    assert Path(first.stdout.strip()) == venv
    assert "install -y -qq python3-venv" in apt_log.read_text()
    assert f"created {venv}" in first.stderr
    second = _bash(script, env)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stderr  # reused, not rebuilt
    assert apt_log.read_text().count("install") == 1


def test_venv_helper_refuses_an_old_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        "#!/bin/bash\n"
        'if [ "$1" = -V ]; then echo "Python 3.9.2"; exit 0; fi\n'
        "exit 1\n"  # sys.version_info < (3, 11) is true: exit status 1
    )
    (bin_dir / "python3").chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{bin_dir}:{DISTRO_PATH}"}
    env["SECFEPAS_VENV"] = str(tmp_path / "venv")
    done = _bash(". tools/_venv.sh && secfepas_venv", env)
    assert done.returncode != 0
    assert "needs Python 3.11 or newer" in done.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.slow  # four isolated builds: about a minute
def test_build_wheels_builds_the_sdk_and_the_three_plugins(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["SECFEPAS_VENV"] = sys.prefix  # reuse this interpreter's environment
    out = tmp_path / "dist"
    done = subprocess.run(
        ["bash", "tools/build_wheels.sh", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name.split("-")[0] for p in out.glob("*.whl"))
    assert names == ["secfepas_fhir", "secfepas_mqtt", "secfepas_sdk", "secfepas_sink_example"]
