# shellcheck shell=bash
# The container's health check and the way back to the container kept during a switch. Sourced by
# container_apply.sh, whose settings (names, the endpoint, the timeout) these functions read, and which
# reads `why` after a failure.
# shellcheck disable=SC2154,SC2034

# GET with the API key, which reaches curl as a config on stdin (-K -), never on a command line.
authed_get() {
  curl -fsS --max-time 10 ${VLLM_WS_API_KEY:+-K -} "$1" <<<"header = \"Authorization: Bearer ${VLLM_WS_API_KEY:-}\""
}

# Whether the container serves now, as the health check sees it in one look: one worth going back to.
# With the key wanted now: a container that holds another key (rotated away, it may have leaked) is not
# one to go back to.
serving_now() {
  [ "$(docker container inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] &&
    curl -fs -o /dev/null --max-time 5 "$health_url" &&
    case "$(authed_get "$models_url" 2>/dev/null || true)" in *"\"$served_name\""*) true ;; *) false ;; esac
}

# Waits until /health answers and /v1/models lists the served model; fails at the deadline, or as soon
# as the container exited, is gone or was restarted by docker. Sets `why` when it fails.
wait_healthy() {
  local deadline=$((SECONDS + health_timeout)) restarts state models
  restarts=$(docker container inspect --format '{{.RestartCount}}' "$name" 2>/dev/null || echo 0)
  why="the container $name did not become healthy within ${health_timeout}s"
  until curl -fs -o /dev/null --max-time 5 "$health_url"; do
    state=$(docker container inspect --format '{{.State.Status}} {{.RestartCount}}' "$name" 2>/dev/null || echo gone)
    case "$state" in
      gone) why="the container $name is gone"; return 1 ;;
      "exited "* | "dead "*) why="the container $name exited before it served (state: $state)"; return 1 ;;
      *" $restarts") ;;
      *) why="the container $name exited before it served (restarted by docker: $state)"; return 1 ;;
    esac
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
  models=$(authed_get "$models_url") || { why="GET /v1/models failed"; return 1; }
  case "$models" in *"\"$served_name\""*) ;; *) why="GET /v1/models does not list $served_name: $models"; return 1 ;; esac
}

# The new container failed (`why`): its last log lines, then it goes and the one kept as $previous comes
# back under the name, started and checked again. Exits: rolled_back_exit when it serves, 1 when not.
roll_back() {
  local back_image back_revision
  echo "$why; its last log lines:" >&2
  docker logs --tail 40 "$name" >&2 2>&1 || true
  docker rm -f "$name" >/dev/null 2>&1 || true
  back_image=$(docker container inspect --format '{{.Config.Image}}' "$previous")
  back_revision=$(docker container inspect --format '{{index .Args 1}}' "$previous" 2>/dev/null || true)
  back_revision=${back_revision##*/}
  echo "starting the previous container again as $name" >&2
  # Started before it gets the name back: a run cut off between the two leaves it running under the
  # name that marks it as the one to go back to.
  if ! docker start "$previous" >/dev/null || ! docker rename "$previous" "$name" || ! wait_healthy; then
    echo "rolled back to the previous container (image $back_image, model revision ${back_revision:-unknown}), but it did not become healthy either: $why" >&2
    exit 1
  fi
  echo "rolled back: the container $name serves again on the previous image ($back_image), model revision (${back_revision:-unknown}) and flags. Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
  exit "$rolled_back_exit"
}
