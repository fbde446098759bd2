#!/usr/bin/env bash
# The upgrade bench's floor, run on the box: a plain restart of the service, then the health check the
# service step makes (polled as often), /health and then /v1/models listing the served model.
# usage: restart_and_check.sh BASE_URL MODEL
set -euo pipefail
base=$1 model=$2
systemctl restart vllm-workstation
until curl -fsS -o /dev/null --max-time 5 "$base/health"; do sleep 0.5; done
curl -fsS --max-time 10 "$base/v1/models" | grep -qF "\"$model\""
