#!/usr/bin/env bash
# Brings the project's own toolchain: Node.js 22+, Go (only to build what follows), the Pulumi CLI, the
# dynamic-provider shim and the HostState provider (tools/provider).
#
#   bash scripts/toolchain.sh          # ensure everything, print the env file's path
#   source "$(bash scripts/toolchain.sh)"
#
# An official Pulumi install on PATH is used as it is, and nothing is written beside it. Otherwise the
# CLI is built from its Go modules at PULUMI_VERSION (tools/pulumi) and cached; a cached build is
# reused, so only the first run is slow. A machine without Go gets Go's own release from the Go module
# proxy (golang.org/toolchain, the module `go` itself switches toolchains with). Everything lands under
# $VLLM_WS_CACHE (default ~/.cache/vllm-workstation), except HostState's provider, which is built into
# the checkout's ignored tools/provider/bin, where Pulumi.yaml points the engine (docs/onboarding.md).
set -euo pipefail

PULUMI_VERSION=v3.250.0     # keep equal to @pulumi/pulumi in package.json and tools/pulumi/go.mod
NODE_VERSION=22.23.3        # @pulumi/pulumi 3.250 needs Node 22 or later
GO_VERSION=1.25.11          # the `go` line of tools/pulumi/go.mod and tools/provider/go.mod
# sha256 of golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64.zip on the Go module proxy
# shellcheck disable=SC2034 # read as ${!sum} in ensure_go
GO_ZIP_SHA256_amd64=dbf20d78a456c1a53fc52c06f1660851cb115be9b0807caf1abc4aedf8c77c1b

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${VLLM_WS_CACHE:-$HOME/.cache/vllm-workstation}
# The shim must sit beside the CLI: the engine finds it there as a bundled plugin, as in the official
# distribution, rather than falling back to PATH with a warning on every run.
bin=$cache/toolchain/pulumi-$PULUMI_VERSION/bin
mkdir -p "$bin"
log() { printf '[toolchain] %s\n' "$*" >&2; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local sys; sys=$(command -v node || true)
  if [[ -n $sys && $(node_major "$sys") -ge 22 ]]; then NODE_DIR=$(dirname "$sys"); return; fi
  NODE_DIR=$cache/toolchain/node-$NODE_VERSION/bin
  [[ -x $NODE_DIR/node ]] && return
  local arch; case $(uname -m) in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) log "no Node.js build for $(uname -m)"; exit 1 ;; esac
  log "fetching Node.js $NODE_VERSION (node-linux-$arch from the npm registry)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null && tar xzf ./*.tgz)
  rm -rf "$cache/toolchain/node-$NODE_VERSION.part"
  mv "$tmp/package" "$cache/toolchain/node-$NODE_VERSION.part"
  mv -T "$cache/toolchain/node-$NODE_VERSION.part" "$cache/toolchain/node-$NODE_VERSION"
  rm -rf "$tmp"
  [[ -x $NODE_DIR/node ]] || { log "Node.js package had no bin/node"; exit 1; }
}

# Go is needed to build the CLI (where no official one is installed) and HostState's provider. A Go on
# PATH is used as it is (an older one fetches the toolchain go.mod asks for by itself, GOTOOLCHAIN=auto);
# without one, Go's release is fetched from the Go module proxy as the module golang.org/toolchain, the
# same zip `go` switches toolchains with, checked against the sha256 above.
GO_DIR=
ensure_go() {
  command -v go >/dev/null && return
  local dir=$cache/toolchain/go-$GO_VERSION
  if [[ ! -x $dir/bin/go ]]; then
    local arch sum; case $(uname -m) in x86_64) arch=amd64 ;; *) log "no Go on PATH: install Go $GO_VERSION+ for $(uname -m)"; exit 1 ;; esac
    sum=GO_ZIP_SHA256_$arch
    local proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%[,|]*}
    [[ $proxy == http* ]] || proxy=https://proxy.golang.org
    local mod=golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip tmp
    log "fetching Go $GO_VERSION ($mod from $proxy)"
    tmp=$(mktemp -d)
    curl -fsSL --retry 3 -o "$tmp/go.zip" "$proxy/$mod"
    if [[ $(sha256sum "$tmp/go.zip" | cut -d' ' -f1) != "${!sum}" ]]; then
      rm -rf "$tmp"; log "the Go toolchain zip from $proxy does not have the sha256 this script pins"; exit 1
    fi
    # The zip keeps no file modes: the commands under bin/ and pkg/tool/ are made executable, as `go` does.
    python3 - "$tmp/go.zip" "$tmp/x" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2])
    for n in z.namelist():
        rel = n.split("/")[2:]  # below golang.org/toolchain@VERSION/
        if n.endswith("/") or len(rel) < 2:
            continue
        if rel[0] == "bin" or rel[:2] == ["pkg", "tool"]:
            os.chmod(os.path.join(sys.argv[2], n), 0o755)
PY
    rm -rf "$dir.part"
    mv "$tmp/x/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch" "$dir.part"
    mv -T "$dir.part" "$dir"
    rm -rf "$tmp"
  fi
  GO_DIR=$dir/bin
  export PATH="$GO_DIR:$PATH" GOTOOLCHAIN=local
}

ensure_pulumi() {
  local sys; sys=$(command -v pulumi || true)
  if [[ -n $sys && $sys != "$bin/pulumi" && -z ${VLLM_WS_BUILD_PULUMI:-} ]]; then
    log "using the Pulumi CLI on PATH: $sys ($("$sys" version))"
    # An official install ships its language host and the dynamic-provider shim beside it.
    bin=$(dirname "$(readlink -f "$sys")"); OWN_CLI=; return
  fi
  OWN_CLI=1
  local want=$bin/pulumi
  if [[ ! -x $want ]]; then
    log "building the Pulumi CLI $PULUMI_VERSION from its Go modules (first run only; 5 to 8 minutes on 2 cores)"
    local start=$SECONDS
    (cd "$here/tools/pulumi" && GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
      -o "$want.part" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    mv "$want.part" "$want"
    log "built in $((SECONDS - start)) s"
  fi
}

# The engine starts a dynamic provider as the plugin pulumi-resource-pulumi-nodejs; the official
# distribution ships this shim beside the CLI, so a CLI built from source needs it too, in the directory
# this script made for it. Rewritten whenever its text here changes.
ensure_shim() {
  [[ -n $OWN_CLI ]] || return 0
  local want
  want=$(cat <<'EOF'
#!/bin/sh
# Finds @pulumi/pulumi's dynamic provider as require() would from the directory the engine starts it in
# (a stack directory nested in a project, as the tests make, finds the project's node_modules): the
# nearest node_modules up the tree, in plain sh, because the engine starts this at every up and
# preview and `node -p require.resolve(...)` would add a Node start each time. Node's own resolution
# is the fallback (NODE_PATH, global installs).
d=$PWD
while :; do
  f=$d/node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js
  [ -f "$f" ] && exec node "$f" "$@"
  [ "$d" = / ] && break
  d=$(dirname "$d")
done
exec node "$(node -p 'require.resolve("@pulumi/pulumi/cmd/dynamic-provider")')" "$@"
EOF
)
  [[ -x $bin/pulumi-resource-pulumi-nodejs && $(cat "$bin/pulumi-resource-pulumi-nodejs") == "$want" ]] && return
  printf '%s\n' "$want" >"$bin/pulumi-resource-pulumi-nodejs.part"
  chmod 755 "$bin/pulumi-resource-pulumi-nodejs.part"
  mv "$bin/pulumi-resource-pulumi-nodejs.part" "$bin/pulumi-resource-pulumi-nodejs"
}

# HostState's provider, pulumi-resource-hoststate, built from tools/provider into tools/provider/bin
# (ignored by git; a few seconds once Go's caches are warm, a minute or two without), whenever the
# sources differ from those of the binary there. Pulumi.yaml's `plugins:` points the engine at that
# folder, so every checkout runs its own build, nothing is installed into the Pulumi plugin cache, and
# no engine looks for the plugin anywhere else (docs/onboarding.md says why).
HOSTSTATE_VERSION=0.1.0     # keep equal to Version in tools/provider/main.go
ensure_provider() {
  local src=$here/tools/provider hash out f sources=()
  for f in "$src"/*.go; do [[ $f == *_test.go ]] || sources+=("$f"); done
  hash=$(cat "$src/go.mod" "$src/go.sum" "${sources[@]}" | sha256sum | cut -c1-16)
  out=$src/bin/pulumi-resource-hoststate
  [[ -x $out && $(cat "$src/bin/.sources" 2>/dev/null) == "$hash" ]] && return
  log "building the HostState provider from tools/provider"
  local start=$SECONDS
  mkdir -p "$src/bin"
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.Version=$HOSTSTATE_VERSION" -o "$out.part" .)
  mv "$out.part" "$out"
  echo "$hash" >"$src/bin/.sources"
  log "built in $((SECONDS - start)) s"
}

ensure_node
ensure_go
ensure_pulumi
ensure_shim
ensure_provider

env_file=$cache/toolchain/env.sh
cat >"$env_file.part" <<EOF
export PATH="$bin:$NODE_DIR${GO_DIR:+:$GO_DIR}:\$PATH"${GO_DIR:+ GOTOOLCHAIN=local}
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Node's on-disk compile cache: every up and preview starts Node processes (this one, which loads
# @pulumi/pulumi, and each of HostState's provider steps); cached, each loads in about two thirds of the time.
export NODE_COMPILE_CACHE="\${NODE_COMPILE_CACHE:-$cache/node-compile-cache}"
EOF
mv "$env_file.part" "$env_file"
echo "$env_file"
