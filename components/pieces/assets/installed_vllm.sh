# shellcheck shell=bash
# The vLLM release installed in a venv, read from its dist-info directory's name (no Python started):
# prints vllm=<version>, or vllm=none. Read-only, and always exits 0.
# $1: the venv.
for info in "$1"/lib/python3*/site-packages/vllm-*.dist-info; do
  if [ -d "$info" ]; then
    name=${info##*/vllm-}
    echo "vllm=${name%.dist-info}"
    exit 0
  fi
done
echo vllm=none
