#!/usr/bin/env bash
# Regenerates tests/fixtures/vllm/<version>-{flags,envs,attention-backends}.txt from the real vLLM wheel
# on PyPI, so tests can check that every flag and variable the stack emits exists in the pinned release.
#   bash scripts/vllm-flags.sh 0.11.0
set -euo pipefail
version=${1:?usage: vllm-flags.sh VERSION}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$here/tests/fixtures/vllm
cache=${VLLM_WS_CACHE:-$HOME/.cache/vllm-workstation}/vllm-wheels
mkdir -p "$cache" "$out"
wheel() { local w; for w in "$cache"/vllm-"$version"-*.whl; do [[ -f $w ]] && { echo "$w"; return 0; }; done; return 0; }
whl=$(wheel)
if [[ -z $whl ]]; then
  python3 -m pip download --no-deps --only-binary=:all: --platform manylinux1_x86_64 --platform manylinux_2_28_x86_64 \
    --python-version 3.12 -d "$cache" "vllm==$version"
  whl=$(wheel)
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unzip -q -o "$whl" 'vllm/engine/arg_utils.py' 'vllm/entrypoints/openai/cli_args.py' 'vllm/entrypoints/cli/serve.py' 'vllm/envs.py' \
  'vllm/platforms/interface.py' 'vllm/v1/attention/backends/registry.py' -d "$tmp" 2>/dev/null || true
grep -ohE '"--[a-z0-9][a-z0-9-]*"' "$tmp"/vllm/engine/arg_utils.py "$tmp"/vllm/entrypoints/openai/cli_args.py "$tmp"/vllm/entrypoints/cli/serve.py 2>/dev/null \
  | tr -d '"' >"$tmp/flags"
# FrontendArgs' dataclass fields become --host, --port, --api-key, ... through a loop, not literals.
awk '/^class FrontendArgs/{on=1; next} on && /^[^ @]/{on=0} on && /^    [a-z_]+:/{sub(":.*",""); gsub(" ",""); gsub("_","-"); print "--" $0}' \
  "$tmp"/vllm/entrypoints/openai/cli_args.py >>"$tmp/flags"
sort -u "$tmp/flags" >"$out/$version-flags.txt"
grep -oE '^    "VLLM_[A-Z0-9_]+":' "$tmp"/vllm/envs.py | tr -d ' ":' | sort -u >"$out/$version-envs.txt"
# The backends' enum: _Backend in platforms/interface.py up to 0.11, AttentionBackendEnum later.
for f in "$tmp"/vllm/platforms/interface.py "$tmp"/vllm/v1/attention/backends/registry.py; do
  [[ -f $f ]] && awk '/^class (_Backend|AttentionBackendEnum)\(/{on=1; next} on && /^[^ ]/{on=0} on && /^    [A-Z][A-Z0-9_]* = /{print $1}' "$f"
done | sort -u >"$out/$version-attention-backends.txt"
wc -l "$out/$version"-*.txt
