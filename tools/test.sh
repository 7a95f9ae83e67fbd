#!/usr/bin/env bash
# The README's test command. Installs what the suite needs (Debian's
# mosquitto; the FHIR server, fhirstarter, comes from PyPI through the dev
# extra), then runs the whole suite in tox: the default tests (env `py`, a
# few minutes), then the ones marked slow (env `slow`: full SqueezeNet 1.1
# secure inference and full-size protocol batches). The tests start their own
# servers on free loopback ports. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check 'tox>=4'
python3 -m tox run -e py,slow -- "$@"
