# shellcheck shell=bash
# uv at the pinned version, fetched from the configured index by the interpreter every WSL distribution
# ships (python3, without pip); the Python program comes from fetch_uv.py with origin_auth.py.
own_dir @HOME@
if [ "$(@UV@ --version 2>/dev/null | cut -d' ' -f2)" != @UV_VERSION@ ]; then
  echo @MESSAGE@ >&2
  UV_VERSION=@UV_VERSION@ UV_DEST=@UV@ python3 - <<'VLLM_WS_PY'
@FETCH_PY@
VLLM_WS_PY
fi
