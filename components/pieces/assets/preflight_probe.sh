#!/usr/bin/env bash
# vllm-workstation probe, format 1. Read-only; runs as any user.
set -u
export LC_ALL=C
b64() { base64 | tr -d '\n'; }
emit() { printf '%s=%s\n' "$1" "$2"; }
emit probe 1

# nvidia-smi lives in the WSL library directory, which sudo's secure_path leaves out.
smi=$(command -v nvidia-smi 2>/dev/null || true)
if [ -z "$smi" ] && [ -x @WSL_LIB@/nvidia-smi ]; then smi=@WSL_LIB@/nvidia-smi; fi
if [ -n "$smi" ]; then
  out=$("$smi" @NVIDIA_SMI_ARGS@ 2>&1); rc=$?
else
  out=""; rc=127
fi
emit nvidia_smi_rc "$rc"
emit nvidia_smi "$(printf '%s' "$out" | b64)"

if [ -r /proc/version ]; then emit proc_version "$(b64 < /proc/version)"; else emit proc_version -; fi
if [ -r /etc/wsl.conf ]; then emit wsl_conf "$(b64 < /etc/wsl.conf)"; else emit wsl_conf -; fi
if [ -e @WSL_LIB@/libcuda.so.1 ]; then emit libcuda 1; else emit libcuda 0; fi

nvcc=@NVCC@
[ -x "$nvcc" ] || nvcc=$(command -v nvcc 2>/dev/null || true)
if [ -n "$nvcc" ]; then emit nvcc_version "$("$nvcc" --version 2>&1 | b64)"; else emit nvcc_version -; fi

emit mem_total_kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
emit pid1_comm "$(cat /proc/1/comm 2>/dev/null)"

# Free space where each directory will live: measured on its nearest existing parent.
disk() {
  local role=$1 dir=$2 p=$2 used=0
  while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
  if [ -d "$dir" ]; then used=$(du -sb "$dir" 2>/dev/null | awk '{print $1}'); fi
  emit "disk.$role.path" "$dir"
  emit "disk.$role.device" "$(stat -c %d "$p" 2>/dev/null)"
  emit "disk.$role.free_bytes" "$(df -B1 --output=avail "$p" 2>/dev/null | tail -n 1 | tr -d ' ')"
  emit "disk.$role.used_bytes" "${used:-0}"
}
disk model @MODEL_DIR@
disk venv @VENV_DIR@
@CLAIMS@
emit end 1
