#!/usr/bin/env bash
# Brings the project's own toolchain: Node.js 22+, the Pulumi CLI, the dynamic-provider shim and the
# HostState provider (tools/provider).
#
#   bash scripts/toolchain.sh          # ensure everything, print the env file's path
#   source "$(bash scripts/toolchain.sh)"
#
# An official Pulumi install on PATH is used as it is. Otherwise the CLI is built from its Go modules
# at PULUMI_VERSION (tools/pulumi) and cached; a cached build is reused, so only the first run is slow.
# Everything lands under $VLLM_WS_CACHE (default ~/.cache/vllm-workstation), never in the repo.
set -euo pipefail

PULUMI_VERSION=v3.250.0     # keep equal to @pulumi/pulumi in package.json and tools/pulumi/go.mod
NODE_VERSION=22.23.3        # @pulumi/pulumi 3.250 needs Node 22 or later

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

ensure_pulumi() {
  local sys; sys=$(command -v pulumi || true)
  if [[ -n $sys && $sys != "$bin/pulumi" && -z ${VLLM_WS_BUILD_PULUMI:-} ]]; then
    log "using the Pulumi CLI on PATH: $sys ($("$sys" version))"
    bin=$(dirname "$(readlink -f "$sys")"); return
  fi
  local want=$bin/pulumi
  if [[ ! -x $want ]]; then
    command -v go >/dev/null || { log "no Pulumi CLI on PATH and no Go to build one: install Pulumi or Go 1.25+"; exit 1; }
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
# distribution ships this shim beside the CLI, so a CLI built from source needs it too. Rewritten
# whenever its text here changes.
ensure_shim() {
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

# HostState's provider, pulumi-resource-hoststate, built from tools/provider (a few seconds once the
# CLI's build has filled Go's caches, a minute or two without) into a directory named by a hash of its
# sources, and installed into the Pulumi plugin cache (${PULUMI_HOME:-~/.pulumi}/plugins) as
# `pulumi plugin install --file` does, whenever the installed binary differs from the built one.
HOSTSTATE_VERSION=0.1.0     # keep equal to Version in tools/provider/main.go
ensure_provider() {
  local src=$here/tools/provider hash built installed
  hash=$(cat "$src/go.mod" "$src/go.sum" $(ls "$src"/*.go | grep -v _test.go) | sha256sum | cut -c1-16)
  built=$cache/toolchain/hoststate-$hash/pulumi-resource-hoststate
  if [[ ! -x $built ]]; then
    command -v go >/dev/null || { log "Go 1.25+ is needed to build the HostState provider (tools/provider): install Go, then run this again"; exit 1; }
    log "building the HostState provider from tools/provider"
    local start=$SECONDS
    mkdir -p "$(dirname "$built")"
    (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.Version=$HOSTSTATE_VERSION" -o "$built.part" .)
    mv "$built.part" "$built"
    log "built in $((SECONDS - start)) s"
    # Builds of sources no longer checked out; a checkout at another commit builds its own again.
    find "$cache/toolchain" -maxdepth 1 -name 'hoststate-*' ! -path "$(dirname "$built")" -exec rm -rf {} +
  fi
  installed=${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-hoststate-v$HOSTSTATE_VERSION/pulumi-resource-hoststate
  cmp -s "$built" "$installed" && return
  log "installing the HostState provider $HOSTSTATE_VERSION into the Pulumi plugin cache"
  "$bin/pulumi" plugin install resource hoststate "$HOSTSTATE_VERSION" --file "$built" --reinstall >&2
}

ensure_node
ensure_pulumi
ensure_shim
ensure_provider

env_file=$cache/toolchain/env.sh
cat >"$env_file.part" <<EOF
export PATH="$bin:$NODE_DIR:\$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Node's on-disk compile cache: every up and preview starts Node processes (this one, which loads
# @pulumi/pulumi, and each of HostState's provider steps); cached, each loads in about two thirds of the time.
export NODE_COMPILE_CACHE="\${NODE_COMPILE_CACHE:-$cache/node-compile-cache}"
EOF
mv "$env_file.part" "$env_file"
echo "$env_file"
