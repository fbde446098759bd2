#!/usr/bin/env bash
# The upgrade bench's floor, run on the box: a plain restart of the service, then the health check the
# service step makes, on its schedule (/health every half second from the restart's return), and then
# /v1/models listing the served model.
# usage: restart_and_check.sh BASE_URL MODEL
set -euo pipefail
base=$1 model=$2
systemctl restart vllm-workstation
next=${EPOCHREALTIME/[.,]/}
until curl -fsS -o /dev/null --max-time 5 "$base/health"; do
  next=$((next + 500000))
  pause=$((next - ${EPOCHREALTIME/[.,]/}))
  if [ "$pause" -gt 0 ]; then
    printf -v pause '%d.%06d' $((pause / 1000000)) $((pause % 1000000))
    sleep "$pause"
  else
    next=${EPOCHREALTIME/[.,]/}
  fi
done
curl -fsS --max-time 10 "$base/v1/models" | grep -qF "\"$model\""
