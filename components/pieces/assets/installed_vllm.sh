# shellcheck shell=bash
# The vLLM release installed in a venv, read from its dist-info directory's name (no Python started):
# prints vllm=<version>, or vllm=none; and the model revision the service serves (its serves file, which
# a rolled-back switch leaves at the revision before), as served-revision=<commit> where there is one.
# Read-only, and always exits 0.
# $1: the venv; $2: the service's serves file.
vllm=none
for info in "$1"/lib/python3*/site-packages/vllm-*.dist-info; do
  if [ -d "$info" ]; then
    name=${info##*/vllm-}
    vllm=${name%.dist-info}
    break
  fi
done
echo "vllm=$vllm"
if [ -f "$2" ]; then sed -n 's/^revision=\([0-9a-f]\{40\}\)$/served-revision=\1/p' "$2" 2>/dev/null || true; fi
exit 0
