#!/usr/bin/env bash
# Build the SDK's wheel and the three alert-sink plugins' wheels (MQTT, FHIR,
# the example sink) into dist/ (or DIR), from .venv/ (made when missing):
#   bash tools/build_wheels.sh [DIR]
# Then, for example: pip install './dist/secfepas_sdk-0.1.0-py3-none-any.whl[camera]'
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
. tools/_venv.sh
secfepas_venv
"$VENV_PY" -m pip wheel --disable-pip-version-check -q --no-deps -w "$out" \
    . integrations/mqtt integrations/fhir integrations/example
ls -1 "$out"/secfepas*.whl
