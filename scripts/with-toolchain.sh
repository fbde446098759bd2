#!/usr/bin/env bash
# Runs a command with the project's toolchain (Node.js 22+, Pulumi CLI, dynamic-provider shim) on PATH.
set -euo pipefail
env_file=$(bash "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh")
# shellcheck disable=SC1090
source "$env_file"
exec "$@"
