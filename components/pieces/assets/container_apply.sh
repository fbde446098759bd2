# shellcheck shell=bash
# The container's apply: converges whatever container of the name it finds.
#  - The first line changes with the API key's id, so a rotated key makes the container anew.
#  - An image that was not there is pulled and tagged as pulled by the stack (remove takes away only that).
#  - The middleware's module goes into a directory of the stack's own (own.sh); a new module needs a new
#    process, so a change of it makes the container anew.
#  - A container of the name that the stack did not make is refused. One that differs in anything but
#    running (what the probe, @PROBE@, prints against @EXPECTED@) is made anew; a stopped one is started.
#  - The key reaches docker as a variable it copies (`-e VLLM_API_KEY`), never on a command line.
#  - Done once /health answers and /v1/models lists the served model; a container that exits, restarts
#    or stays unhealthy past the timeout fails the step with its last log lines.

# api-key: @API_KEY_ID@
if ! docker image inspect @IMAGE@ >/dev/null 2>&1; then
  echo @PULLING@ >&2
  docker pull @IMAGE@ >&2 || { echo @CANNOT_PULL@ >&2; exit 1; }
  docker tag @IMAGE@ @PULLED_TAG@
fi
module_before=$(sha256sum @MODULE@ 2>/dev/null || echo missing)
own_dir @MODULE_DIR@
@WRITE_MODULE@
module_after=$(sha256sum @MODULE@)
seen=$(bash -euo pipefail <<'VLLM_WS_PROBE'
@PROBE@
VLLM_WS_PROBE
)
if [ "$seen" != "container=absent" ]; then
  if [ "$(printf '%s\n' "$seen" | sed -n 's/^managed=//p')" != true ]; then
    echo @NOT_OURS@ >&2
    exit 1
  fi
  if [ "$(printf '%s\n' "$seen" | grep -v '^running=')" != @EXPECTED@ ] || [ "$module_before" != "$module_after" ]; then
    echo @REMOVING@ >&2
    docker rm -f @NAME@ >/dev/null
    seen=container=absent
  fi
fi
if [ "$seen" = "container=absent" ]; then
  echo @CREATING@ >&2
  VLLM_API_KEY="${VLLM_WS_API_KEY:-}" @CREATE@ ${VLLM_WS_API_KEY:+-e VLLM_API_KEY} @IMAGE@ @ARGS@ >/dev/null
fi
if [ "$(docker container inspect --format '{{.State.Running}}' @NAME@)" != true ]; then
  echo @STARTING@ >&2
  docker start @NAME@ >/dev/null || { echo @NOT_STARTED@ >&2; exit 1; }
fi
echo @WAITING@ >&2
deadline=$((SECONDS + @TIMEOUT@))
until curl -fsS -o /dev/null --max-time 5 @HEALTH_URL@; do
  state=$(docker container inspect --format '{{.State.Status}} {{.RestartCount}}' @NAME@ 2>/dev/null || echo gone)
  if [ $SECONDS -ge $deadline ] || [ "${state%% *}" = exited ] || [ "${state%% *}" = dead ] || [ "${state%% *}" = gone ] || [ "${state#* }" -gt 0 ] 2>/dev/null; then
    echo "the container @NAME@ did not become healthy (state: $state); its last log lines:" >&2
    docker logs --tail 40 @NAME@ >&2 2>&1 || true
    echo "Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
    exit 1
  fi
  sleep 1
done
models=$(curl -fsS --max-time 10 ${VLLM_WS_API_KEY:+-K -} @MODELS_URL@ <<<"header = \"Authorization: Bearer ${VLLM_WS_API_KEY:-}\"") || { echo "GET /v1/models failed" >&2; exit 1; }
case "$models" in *@LISTED_NAME@*) ;; *) echo @NOT_LISTED@"$models" >&2; exit 1 ;; esac
echo @SERVING@ >&2
