#!/usr/bin/env bash
# The README's main job on a fresh machine: install the SDK with every extra, then run
# `secfepas demo` (an edge and a camera on loopback, bundled model and video).
#   bash tools/demo.sh            # human output
#   bash tools/demo.sh --json     # machine-readable lines
# PYTHON selects the interpreter (default python3; it must be 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"secfepas needs Python 3.11 or newer, this is {sys.version.split()[0]}")
PY
"$PYTHON" -m pip install --disable-pip-version-check -q '.[all]'
exec "$PYTHON" -m secfepas_sdk.cli.main demo "$@"
