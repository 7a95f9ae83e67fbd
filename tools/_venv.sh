# Sourced by tools/demo.sh, tools/test.sh and .ci/run (not run on its own).
# Makes, or reuses, the repository's virtual environment .venv/ so that pip
# never installs into the distribution's Python: Debian and Ubuntu refuse that
# (PEP 668, "externally-managed-environment"). PYTHON picks the interpreter
# (default python3, 3.11 or newer); SECFEPAS_VENV moves the environment.
# After `secfepas_venv`, VENV_PY is the environment's python.

# Install Debian packages, or say which ones are needed when we cannot.
secfepas_apt_install() {
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "tools: installing Debian packages: $*" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "tools: error: this needs the packages $*; run as root, or: sudo apt-get install $*" >&2
        return 1
    fi
}

secfepas_venv() {
    local venv="${SECFEPAS_VENV:-$PWD/.venv}"
    local python="${PYTHON:-python3}"
    VENV_PY="$venv/bin/python"
    if [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' \
        >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "tools: error: no $python on PATH; install Python 3.11 or newer (apt-get install python3)" >&2
        return 1
    fi
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "tools: error: secfepas needs Python 3.11 or newer, $python is $("$python" -V 2>&1)" >&2
        return 1
    }
    # Debian splits venv's ensurepip into python3-venv: without it `python3 -m venv`
    # fails half-way, leaving an environment without pip.
    rm -rf "$venv"
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        local minor
        minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        secfepas_apt_install python3-venv || return 1
        if ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
            secfepas_apt_install "python$minor-venv" || return 1
        fi
        "$python" -m venv "$venv"
    fi
    echo "tools: created $venv ($("$VENV_PY" -V))" >&2
}
