#!/usr/bin/env bash
# npm test: brings its own toolchain and test fixtures (cached under ~/.cache/vllm-workstation), builds,
# and runs every test, the integration tests on the throwaway box included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/npm-deps.sh
env_file=$(bash scripts/toolchain.sh)
# shellcheck disable=SC1090
source "$env_file"
echo "[test] pulumi $(pulumi version), node $(node --version)"
rm -rf dist && node node_modules/typescript/bin/tsc -p tsconfig.json
# The HostState provider's own tests (tools/provider); -trimpath as the toolchain builds it, so its
# compiled dependencies are shared.
(cd tools/provider && GOFLAGS=-mod=mod go test -trimpath -count=1 ./...)
bash tests/infra/box.sh rootfs
[[ -x tests/infra/wheelhouse.sh ]] && bash tests/infra/wheelhouse.sh
bash tests/infra/lint-tools.sh >/dev/null
exec node node_modules/ava/entrypoints/cli.mjs "$@"
