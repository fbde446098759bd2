#!/usr/bin/env bash
# The linters tests/assets.test.ts runs over components/pieces/assets and the scripts the stack renders:
#   - shellcheck, from Debian's packages (installed when missing);
#   - ruff, pinned in tests/infra/lint/requirements.txt, in a venv of its own under $VLLM_WS_CACHE/lint.
# Prints the venv's directory, last line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${VLLM_WS_CACHE:-$HOME/.cache/vllm-workstation}
req="$root/tests/infra/lint/requirements.txt"
venv="$cache/lint/venv"

log() { echo "[lint-tools] $*" >&2; }
die() { echo "[lint-tools] error: $*" >&2; exit 1; }

mkdir -p "$cache/lint"
# Parallel test runs may all ask at once; only one of them installs.
exec 8>"$cache/lint/.lock"
flock -x 8

if ! command -v shellcheck >/dev/null; then
    log "installing shellcheck"
    { apt-get install -y shellcheck >&2 || { apt-get update >&2 && apt-get install -y shellcheck >&2; }; } ||
        die "could not install shellcheck (apt-get install shellcheck)"
fi

want=$( { cat "$req"; python3 -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-64)
if [[ "$(cat "$venv/.vllm-ws-stamp" 2>/dev/null)" != "$want" ]]; then
    log "making the linters' venv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2 ||
        { rm -rf "$venv"; die "pip install -r $req failed"; }
    echo "$want" >"$venv/.vllm-ws-stamp"
fi
flock -u 8
echo "$venv"
