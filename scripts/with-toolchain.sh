#!/usr/bin/env bash
# Runs a command with the project's toolchain (Node.js 22+, the Pulumi CLI and the providers) on PATH,
# after installing the npm dependencies where needed and compiling the TypeScript (the program and
# HostState's provider steps run from dist/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/npm-deps.sh
env_file=$(bash scripts/toolchain.sh)
# shellcheck disable=SC1090
source "$env_file"
node node_modules/typescript/bin/tsc -p tsconfig.json
exec "$@"
