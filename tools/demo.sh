#!/usr/bin/env bash
# The README's main job on a fresh machine: make (or reuse) .venv/, install the
# SDK with every extra into it, then run `secfepas demo` from it (an edge and a
# camera on loopback, bundled model and video).
#   bash tools/demo.sh            # human output
#   bash tools/demo.sh --json     # machine-readable lines
# PYTHON selects the interpreter for a new .venv (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_venv.sh
secfepas_venv
"$VENV_PY" -m pip install --disable-pip-version-check -q '.[all]'
exec "$VENV_PY" -m secfepas_sdk.cli.main demo "$@"
