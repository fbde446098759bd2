#!/usr/bin/env bash
# Test wheelhouse: the directory the test package index (pypiserver, tests/infra/servers) serves in place of
# PyPI, so the stack's real `uv pip compile --generate-hashes` / `uv pip sync` run against it offline.
#
#   tests/infra/wheelhouse.sh           builds (or finds) the wheelhouse; prints its directory, last line
#   tests/infra/wheelhouse.sh --venv    only makes the servers' venv; prints its directory
#
# It holds
#   - the TEST DOUBLES of vllm and flashinfer-python (tests/fixtures/wheels), built for each version
#     asked for (a vLLM box cannot be had here: no GPU); a vllm version with the local label "broken"
#     (0.11.1+broken) fails at `vllm serve`, as a release that does not start on the card would;
#   - the REAL wheels from PyPI that the vllm double depends on (huggingface_hub, which brings the `hf`
#     CLI the stack downloads the model with, and six), for each Python the stack may pick;
#   - extra real wheels (a small one, `packaging`, and huggingface_hub 0.36.2, the last release
#     transformers 4.x allows, whose `hf download` still resumes across processes);
#   - the uv wheel(s) the stack fetches from python.indexUrl.
#
# Everything lives under $VLLM_WS_CACHE (default ~/.cache/vllm-workstation), never in git. The wheelhouse
# directory is named by a hash of every input (the double's sources, this script, the parameters below
# and the servers' pins), so it is rebuilt only when one of them changes and different parameter sets
# live side by side. The doubles are built with SOURCE_DATE_EPOCH fixed, so their bytes (and the hashes
# a lock records) are the same on every machine.
#
# Parameters (environment; space-separated lists):
#   WHEELHOUSE_VLLM_VERSIONS        versions of the vllm double     (default "0.11.0 0.10.1+gptoss 0.11.2 0.11.1+broken")
#   WHEELHOUSE_FLASHINFER_VERSIONS  versions of the flashinfer double (default "0.3.1 0.4.1")
#   WHEELHOUSE_PYTHONS              Pythons to fetch real wheels for (default "3.11 3.12")
#   WHEELHOUSE_UV_VERSIONS          uv releases to include          (default "0.9.5")
#   WHEELHOUSE_EXTRA                more real requirements, each resolved on its own
#                                   (default "packaging huggingface-hub==0.36.2")
#   WHEELHOUSE_HF_HUB               the huggingface_hub release fetched for the vllm double (default 1.33.0)
#
# The other real wheels are pinned by tests/fixtures/wheels/constraints.txt.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${VLLM_WS_CACHE:-$HOME/.cache/vllm-workstation}
vllm_versions=${WHEELHOUSE_VLLM_VERSIONS:-"0.11.0 0.10.1+gptoss 0.11.2 0.11.1+broken"}
flashinfer_versions=${WHEELHOUSE_FLASHINFER_VERSIONS:-"0.3.1 0.4.1"}
pythons=${WHEELHOUSE_PYTHONS:-"3.11 3.12"}
uv_versions=${WHEELHOUSE_UV_VERSIONS:-"0.9.5"}
extra=${WHEELHOUSE_EXTRA:-"packaging huggingface-hub==0.36.2"}
hf_hub=${WHEELHOUSE_HF_HUB:-1.33.0}
platforms="manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64 manylinux1_x86_64 linux_x86_64"
# 2020-01-01: any fixed time works; zip cannot store times before 1980.
export SOURCE_DATE_EPOCH=1577836800

log() { echo "[wheelhouse] $*" >&2; }
die() { echo "[wheelhouse] error: $*" >&2; exit 1; }
# shellcheck source=venv.sh source-path=SCRIPTDIR
source "$root/tests/infra/venv.sh"

servers_req="$root/tests/infra/servers/requirements.txt"
venv="$cache/servers/venv"

# --- the servers' venv ---------------------------------------------------------------------------------
ensure_venv() {
    mkdir -p "$cache/servers"
    exec 8>"$cache/servers/.venv.lock"
    flock -x 8
    pinned_venv "the servers' venv" "$venv" "$servers_req"
    flock -u 8
}

ensure_venv
if [[ "${1:-}" == "--venv" ]]; then
    echo "$venv"
    exit 0
fi

# --- the key -------------------------------------------------------------------------------------------
src="$root/tests/fixtures/wheels"
sources() {
    # Only what goes into a wheel: leftovers of a manual build must not change the key.
    (cd "$src" && find . -type f -not -path '*/__pycache__/*' -not -path '*/build/*' -not -path '*.egg-info/*' -not -name '*.pyc' | LC_ALL=C sort |
        while read -r f; do printf '%s\0' "$f"; cat "$f"; done)
}
key=$( {
    sources
    cat "${BASH_SOURCE[0]}" "$servers_req"
    printf '%s\n' "$vllm_versions" "$flashinfer_versions" "$pythons" "$uv_versions" "$extra" "$hf_hub" "$platforms"
} | sha256sum | cut -c1-16)
out="$cache/wheelhouse/$key"
if [[ -f "$out/.complete" ]]; then
    touch "$out/.complete" # marks it used, for the pruning below
    echo "$out"
    exit 0
fi

mkdir -p "$cache/wheelhouse"
exec 9>"$cache/wheelhouse/.lock"
flock -x 9
if [[ -f "$out/.complete" ]]; then # built by another process while this one waited
    echo "$out"
    exit 0
fi

tmp=$(mktemp -d "$cache/wheelhouse/.build-$key-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/wheels"

# --- the test doubles ----------------------------------------------------------------------------------
build_double() { # name version
    local name=$1 version=$2 copy="$tmp/src-$1-$2"
    mkdir -p "$copy"
    tar -C "$src/$name" --exclude=__pycache__ --exclude=build --exclude='*.egg-info' --exclude='*.pyc' -cf - . | tar -C "$copy" -xf -
    echo "$version" >"$copy/VERSION"
    # The same mode bits everywhere (a checkout's umask would otherwise leak into the wheel).
    find "$copy" -type f -exec chmod 0644 {} + && find "$copy" -type d -exec chmod 0755 {} +
    log "building the $name test double $version"
    (cd "$copy" && "$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$tmp/wheels" . >&2) ||
        die "building $name $version failed"
}
for v in $vllm_versions; do build_double vllm-standin "$v"; done
for v in $flashinfer_versions; do build_double flashinfer-standin "$v"; done

# --- real wheels from PyPI -----------------------------------------------------------------------------
# uv resolves for the target Python and platform (pip download would judge markers such as
# `python_version > "3.11"` by the Python running it); pip then fetches exactly those pins' wheels.
download() { # python-version requirements-file
    local py=$1 reqs=$2
    local pins="$tmp/pins-$py.txt"
    UV_CACHE_DIR="$cache/servers/uv-cache" "$venv/bin/uv" pip compile -q --no-header --no-annotate \
        --python-version "$py" --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple \
        -c "$src/constraints.txt" -o "$pins" "$reqs" >&2 || die "resolving $(tr '\n' ' ' <"$reqs") for Python $py failed"
    local args=(--no-deps --only-binary=:all: --python-version "$py" --implementation cp --abi "cp${py/./}" --abi abi3 --abi none)
    for p in $platforms; do args+=(--platform "$p"); done
    "$venv/bin/python" -m pip download -q --disable-pip-version-check "${args[@]}" -d "$tmp/wheels" -r "$pins" >&2 ||
        die "pip download of $(tr '\n' ' ' <"$pins") for Python $py failed"
}
grep -v '^\s*#' "$src/vllm-standin/requirements.txt" | grep -v '^\s*$' >"$tmp/req-double.txt"
# The release the double's range picks today (the newest 1.x), held still like the pins in constraints.txt.
echo "huggingface-hub==$hf_hub" >>"$tmp/req-double.txt"
n=0
for r in $extra; do n=$((n + 1)); echo "$r" >"$tmp/req-extra-$n.txt"; done
for v in $uv_versions; do n=$((n + 1)); echo "uv==$v" >"$tmp/req-extra-$n.txt"; done
for py in $pythons; do
    log "fetching real wheels for Python $py"
    # Each requirement set on its own: huggingface-hub==0.36.2 must not pull the double's 1.x down.
    for reqs in "$tmp"/req-*.txt; do download "$py" "$reqs"; done
done

(cd "$tmp/wheels" && sha256sum -- * >"$tmp/wheels/SHA256SUMS")
# pypiserver would list SHA256SUMS as nothing, but keep the served directory to wheels only.
mv "$tmp/wheels/SHA256SUMS" "$tmp/SHA256SUMS"
rm -rf "$out"
mv "$tmp/wheels" "$out"
mv "$tmp/SHA256SUMS" "$out/.SHA256SUMS"
touch "$out/.complete"
log "$(find "$out" -name '*.whl' | wc -l) wheels in $out"
# Wheelhouses of older sources or other parameters, unused for two weeks, go (about 30 MB each).
find "$cache/wheelhouse" -mindepth 2 -maxdepth 2 -name .complete -mtime +14 -printf '%h\n' | while read -r old; do
    [[ "$old" != "$out" ]] && rm -rf "$old"
done
echo "$out"
