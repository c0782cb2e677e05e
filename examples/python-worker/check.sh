#!/usr/bin/env bash
# Runs the Python worker's tests: unit tests, then end-to-end tests against the real `baton serve`
# binary, Postgres (127.0.0.1:5432, user postgres) and RabbitMQ (127.0.0.1:5672, guest/guest).
#
# Creates a virtualenv in examples/python-worker/.venv with the pinned requirements and pytest.
# Uses BATON_BIN when set, else target/debug/baton (under CARGO_TARGET_DIR when that is set),
# building it when it is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv="$here/.venv"

log() { printf '==> %s\n' "$*" >&2; }

command -v python3 >/dev/null 2>&1 || { log "python3 is required"; exit 1; }

# --- virtualenv ------------------------------------------------------------------------------
venv_works() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; }

if ! venv_works; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      log "python3 cannot create a virtualenv: install python3-venv (apt-get install python3-venv)"
      exit 1
    fi
  fi
fi

# Reinstall only when the requirements change. obstore (credentials mode) needs Python 3.11+;
# its tests are skipped without it.
requirements=(-r "$here/requirements.txt" -r "$here/requirements-test.txt")
if "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  requirements+=(-r "$here/requirements-object-store.txt")
fi
stamp="$venv/.requirements.sha256"
wanted=$(printf '%s\n' "${requirements[@]}" | grep -v '^-r$' | xargs cat | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  log "installing Python requirements"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${requirements[@]}"
  echo "$wanted" > "$stamp"
fi

# --- the baton binary ------------------------------------------------------------------------
if [ -z "${BATON_BIN:-}" ]; then
  BATON_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/baton"
  if [ ! -x "$BATON_BIN" ]; then
    log "building baton (debug)"
    (cd "$repo" && SQLX_OFFLINE=true cargo build -p baton-broker)
  fi
fi
[ -x "$BATON_BIN" ] || { log "no baton binary at $BATON_BIN"; exit 1; }
export BATON_BIN

# --- tests -----------------------------------------------------------------------------------
basetemp=$(mktemp -d)
trap 'rm -rf "$basetemp"' EXIT
cd "$here"
# pytest.ini: the package on the path, tests/unit then tests/e2e.
"$venv/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$basetemp" "$@"
