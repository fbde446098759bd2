# shellcheck shell=bash
# The model's probe: the snapshot stat-ed against its manifest (model_probe.py, stdlib only, so that it
# answers even when the venv is gone); model.ts adds a line for each tiktoken file.

python3 - @SNAPSHOT@ @MANIFEST@ @REVISION@ @EXCLUDE@ <<'VLLM_WS_PY'
@PROBE_PY@
VLLM_WS_PY
