#!/usr/bin/env bash
# The README's test command. Installs what the suite needs when it is missing
# (Debian's mosquitto, haproxy and iproute2; the FHIR server, fhirstarter, comes from the
# package index through the dev extra), makes or reuses .venv/ for tox, then
# runs the whole suite in tox env `all`: the default tests (a few minutes),
# then the ones marked slow (full SqueezeNet 1.1 secure inference and
# full-size protocol batches), in one environment. The tests start their own servers on free
# loopback ports. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_venv.sh
missing=()
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)  # the network-profile tests' links
if [ ${#missing[@]} -gt 0 ]; then
    secfepas_apt_install "${missing[@]}"
fi
secfepas_venv
"$VENV_PY" -m pip install --disable-pip-version-check -q 'tox>=4'
exec "$VENV_PY" -m tox run -e all -- "$@"
