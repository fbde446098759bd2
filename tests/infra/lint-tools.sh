#!/usr/bin/env bash
# The linters tests/pieces/assets.test.ts runs over components/pieces/assets and the scripts the stack renders:
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
# shellcheck source=venv.sh source-path=SCRIPTDIR
source "$root/tests/infra/venv.sh"

mkdir -p "$cache/lint"
# Parallel test runs may all ask at once; only one of them installs.
exec 8>"$cache/lint/.lock"
flock -x 8

if ! command -v shellcheck >/dev/null; then
    log "installing shellcheck"
    { apt-get install -y shellcheck >&2 || { apt-get update >&2 && apt-get install -y shellcheck >&2; }; } ||
        die "could not install shellcheck (apt-get install shellcheck)"
fi

pinned_venv "the linters' venv" "$venv" "$req"
flock -u 8
echo "$venv"
