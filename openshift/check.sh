#!/usr/bin/env bash
# Offline checks of the deployment files (OpenShift templates, Compose, Containerfiles):
# no cluster, no container engine. Run from anywhere:
#
#   bash openshift/check.sh [extra pytest arguments]
#
# Creates the virtualenv openshift/.venv on first use (needs PyPI once), then runs pytest.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv=openshift/.venv
requirements=openshift/tests/requirements.txt

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "check.sh: $python not found; install Python 3 (apt-get install python3)" >&2
    exit 1
fi

venv_ok() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }

if ! venv_ok; then
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv's pip bootstrap separately, in python3-venv.
        rm -rf "$venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "check.sh: '$python -m venv' failed; installing python3-venv" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$python" -m venv "$venv"
        else
            echo "check.sh: '$python -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
    venv_ok || { echo "check.sh: $venv has no pip" >&2; exit 1; }
fi

# Install or update the pinned tools when requirements.txt changed since the last install.
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
fi

exec "$venv/bin/python" -m pytest -q -p no:cacheprovider openshift/tests "$@"
