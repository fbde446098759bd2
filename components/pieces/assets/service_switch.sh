# shellcheck shell=bash
# The switch of the vLLM service to another install, model revision or config, gated on the same health
# check as a first start, and the way back to what it served before. Sourced by service_apply.sh, whose
# settings (paths, texts, the endpoint) these functions read, and which reads `why` after a failure.
# shellcheck disable=SC2154,SC2034

# The files whose change must restart the running service.
served_files() { printf '%s\n' "$unit_path" "$config_path" "$env_path" "$secrets_path" "$auth_path" "$runs_on_path" "$serves_path"; }

# The ones a switch saves and puts back: all but the API key. The key is not a version to go back to: a
# rollback must not bring back a key that was just rotated away (it may have leaked), nor keep a copy of
# it once it has been replaced.
saved_files() { served_files | grep -vxF "$secrets_path"; }

# What changes with any served file (or its absence) or with the venv link's target; one cat for all.
served_state() {
  local f present=()
  while read -r f; do if [ -f "$f" ]; then present+=("$f"); fi; done < <(served_files)
  printf '%s\n' "${present[@]}"
  if [ "${#present[@]}" -gt 0 ]; then cat -- "${present[@]}"; fi
  readlink "$venv" 2>/dev/null || true
}

# Writes a file atomically (a temporary file beside it, then a rename), unless it holds the text already:
# a switch changes few of the service's files, and every process counts in its time.
put_file() { # path text mode
  local tmp="$1.vllm-ws-new"
  if [ -f "$1" ] && [ ! -L "$1" ] && [ "$(<"$1")" = "${2%$'\n'}" ] && [ "$(stat -c '%a %U:%G' "$1")" = "${3#0} root:root" ]; then return 0; fi
  [ -d "${1%/*}" ] || install -d -m 0755 "${1%/*}"
  rm -f "$tmp"
  printf '%s' "$2" >"$tmp"
  chmod "$3" "$tmp" && chown root:root "$tmp" && mv -f "$tmp" "$1"
}

# GET with the API key, which reaches curl as a config on stdin (-K -), from a here-string: on a
# command line (-H) it would show in ps and /proc/PID/cmdline to every user on the box while curl runs.
authed_get() {
  curl -fsS --max-time 10 ${VLLM_WS_API_KEY:+-K -} "$1" <<<"header = \"Authorization: Bearer ${VLLM_WS_API_KEY:-}\""
}

# Waits until /health answers and /v1/models lists the served model; fails at the deadline, or as soon
# as the process died (systemd waits to restart it, or counted a restart). Sets `why` when it fails.
# One look at systemd per round: each systemctl is a round trip to it.
wait_healthy() {
  local deadline=$((SECONDS + health_timeout)) restarts models state
  restarts=$(systemctl show -p NRestarts --value "$unit_name" 2>/dev/null || echo 0)
  why="vllm-workstation.service did not become healthy within ${health_timeout}s"
  # Quiet: a refused connection while it starts is no news, and the message's tail is for the service's log.
  until curl -fs -o /dev/null --max-time 5 "$base/health"; do
    state=" $(systemctl show -p ActiveState -p SubState -p NRestarts "$unit_name" 2>/dev/null | tr '\n' ' ' || true)"
    case "$state" in
      *" ActiveState=failed "*) why="vllm-workstation.service failed"; return 1 ;;
      *" SubState=auto-restart "*) why="vllm-workstation.service exited before it served"; return 1 ;;
      *" NRestarts=$restarts "*) ;;
      *) why="vllm-workstation.service exited before it served (restarted by systemd)"; return 1 ;;
    esac
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
  models=$(authed_get "$base/v1/models") || { why="GET /v1/models failed"; return 1; }
  case "$models" in *"\"$served_name\""*) ;; *) why="GET /v1/models does not list $served_name: $models"; return 1 ;; esac
}

# Whether the service serves now, as the health check sees it in one look: a set worth going back to.
serving_now() {
  systemctl is-active --quiet "$unit_name" && curl -fs -o /dev/null --max-time 5 "$base/health" &&
    case "$(authed_get "$base/v1/models" 2>/dev/null || true)" in *"\"$served_name\""*) true ;; *) false ;; esac
}

# Copies what the service runs on now into $1: each served file (or a note that it is absent) and the
# install it serves. That is the serves file's, not the venv link's target: the packages step moves a
# link it finds at an install that never completed before this step runs. Without a serves file (an
# earlier release), the link is all there is.
save_served() {
  local f name line served="" present=()
  rm -rf "$1"
  install -d -m 0700 "$1"
  while read -r f; do
    name=${f##*/}
    if [ -f "$f" ]; then present+=("$f"); else : >"$1/$name.absent"; fi
  done < <(saved_files)
  if [ "${#present[@]}" -gt 0 ]; then cp -p -- "${present[@]}" "$1/"; fi
  if [ -f "$serves_path" ]; then
    while IFS= read -r line; do case "$line" in install=?*) served=${line#install=} ;; esac; done <"$serves_path"
  fi
  if [ -n "$served" ]; then printf '%s\n' "$served" >"$1/link"; else readlink "$venv" >"$1/link" 2>/dev/null || true; fi
}

# Puts back what save_served kept in $1.
restore_served() {
  local f name
  while read -r f; do
    name=${f##*/}
    if [ -f "$1/$name" ]; then cp -p "$1/$name" "$f.vllm-ws-back" && mv -f "$f.vllm-ws-back" "$f"; elif [ -e "$1/$name.absent" ]; then rm -f "$f"; fi
  done < <(saved_files)
  if [ -s "$1/link" ]; then own_link "$venv" "$(cat "$1/link")"; fi
}

# The install and model revision a saved set (or the live one) serves, from its serves file.
serves_of() { # file key
  sed -n "s/^$2=//p" "$1" 2>/dev/null || true
}

# The last lines the service logged, for the message of a failed start.
last_log() {
  journalctl -u "$unit_name" -n "${1:-10}" --no-pager -o cat 2>/dev/null || true
}
