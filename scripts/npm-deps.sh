#!/usr/bin/env bash
# Installs the npm dependencies (npm ci) where node_modules is missing or older than package-lock.json,
# so any npm run script works as the first command in a fresh clone. Runs in the project root. One
# install at a time per checkout: two scripts started together wait for each other's npm ci.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
current() { [[ -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json && -f node_modules/typescript/bin/tsc ]]; }
current && exit 0
exec 9>"${TMPDIR:-/tmp}/vllm-workstation-npm-$(pwd | sha256sum | cut -c1-12).lock"
flock 9
current && exit 0
echo "[deps] npm ci (node_modules missing or older than package-lock.json)" >&2
npm ci --no-audit --no-fund >&2
