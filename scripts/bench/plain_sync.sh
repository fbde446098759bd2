#!/usr/bin/env bash
# The upgrade bench's other floor, run on the box: uv alone installing a lock into a fresh venv, from the
# index in UV_INDEX_URL, with the cache in UV_CACHE_DIR.
# usage: plain_sync.sh UV LOCK VENV
set -euo pipefail
uv=$1 lock=$2 venv=$3
"$uv" venv -q --python 3.11 "$venv"
"$uv" pip sync -q --require-hashes --compile-bytecode --python "$venv/bin/python" --index-strategy first-index "$lock"
