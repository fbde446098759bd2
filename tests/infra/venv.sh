# shellcheck shell=bash
# Sourced by tests/infra/lint-tools.sh and tests/infra/wheelhouse.sh: a venv of pinned requirements, made again
# only when the pins or the Python change.

# pinned_venv WHAT VENV REQUIREMENTS: makes VENV (python3 -m venv, then pip install -r REQUIREMENTS)
# unless its stamp says it holds these pins for this python3 already; a failed install leaves no venv.
# WHAT names it in the log. Uses the caller's log and die; the caller holds a lock against parallel runs.
pinned_venv() {
    local what=$1 venv=$2 req=$3 want
    want=$( { cat "$req"; python3 -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-64)
    if [[ "$(cat "$venv/.vllm-ws-stamp" 2>/dev/null)" != "$want" ]]; then
        log "making $what $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2 ||
            { rm -rf "$venv"; die "pip install -r $req failed"; }
        echo "$want" >"$venv/.vllm-ws-stamp"
    fi
}
