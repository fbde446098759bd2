# shellcheck shell=bash
# The switch of the vLLM service to another install, model revision or config, gated on the same health
# check as a first start, and the way back to what it served before. Sourced by service_apply.sh, whose
# settings (paths, texts, the endpoint) these functions read, and which reads `why` after a failure.
# shellcheck disable=SC2154,SC2034

# The files whose change must restart the running service: the unit's environment files among them (the
# CUDA environment's is written by a step before this one). Into the array served_list: bash fills it
# itself, where a list read from a process substitution cost a process each time.
served_files() { served_list=("$unit_path" "$config_path" "$cuda_env_path" "$env_path" "$secrets_path" "$auth_path" "$runs_on_path" "$serves_path"); }

# The ones a switch saves and puts back: all but the API key. The key is not a version to go back to: a
# rollback must not bring back a key that was just rotated away (it may have leaked), nor keep a copy of
# it once it has been replaced. Into the array saved_list.
saved_files() {
  local f
  served_files
  saved_list=()
  for f in "${served_list[@]}"; do if [ "$f" != "$secrets_path" ]; then saved_list+=("$f"); fi; done
}

# The text of file $2 into the variable named $1 (empty when there is none), read by bash itself: a
# switch reads every served file, and a process for each was a good part of its cost.
read_text() {
  local read_text_v=""
  if [ -f "$2" ]; then IFS= read -r -d '' read_text_v <"$2" || true; fi
  printf -v "$1" '%s' "$read_text_v"
}

# What changes with any served file (or its absence) or with the venv link's target ($2: the caller
# knows it, having read or set it), into the variable named $1.
served_state() {
  local f text served_state_v=""
  served_files
  for f in "${served_list[@]}"; do
    if [ -f "$f" ]; then read_text text "$f"; served_state_v+="$f ${#text}"$'\n'"$text"$'\n'; else served_state_v+="$f absent"$'\n'; fi
  done
  served_state_v+="link $2"$'\n'
  printf -v "$1" '%s' "$served_state_v"
}

# The mode and owner of each file in $@, in one stat, for put_file to compare with what it writes.
declare -A file_modes=()
stat_files() {
  local mode owner f
  file_modes=()
  while read -r mode owner f; do file_modes[$f]="$mode $owner"; done < <(stat -c '%a %U:%G %n' -- "$@" 2>/dev/null || true)
}

# Writes a file atomically (a temporary file beside it, then a rename), unless it holds the text already:
# a switch changes few of the service's files, and every process counts in its time. The mode and owner
# it compares come from stat_files, run once before for all the files it writes. The temporary file is
# made empty, root's and of its mode by one install (an explicit chmod: neither the umask nor a default
# ACL of the directory decides it), then filled by bash.
put_file() { # path text mode
  local tmp="$1.vllm-ws-new" text
  if [ -f "$1" ] && [ ! -L "$1" ] && [ "${file_modes[$1]-}" = "${3#0} root:root" ]; then
    read_text text "$1"
    if [ "$text" = "$2" ]; then return 0; fi
  fi
  [ -d "${1%/*}" ] || install -d -m 0755 "${1%/*}"
  if [ -e "$tmp" ] || [ -L "$tmp" ]; then rm -f "$tmp"; fi
  install -m "$3" -o root -g root /dev/null "$tmp"
  printf '%s' "$2" >"$tmp"
  mv -f "$tmp" "$1"
}

# GET with the API key, which reaches curl as a config on stdin (-K -), from a here-string: on a
# command line (-H) it would show in ps and /proc/PID/cmdline to every user on the box while curl runs.
# Its arguments: curl's options and URLs, after the defaults (a later option overrides an earlier one).
# The key is the one in force ($VLLM_WS_API_KEY), or auth_key where a caller sets it (a local variable,
# never exported): the running set's own key.
authed_get() {
  local key=${auth_key-${VLLM_WS_API_KEY:-}}
  curl -fsS --max-time 10 ${key:+-K -} "$@" <<<"header = \"Authorization: Bearer $key\""
}

# The endpoint, served model name and key a set runs with, read by bash itself from its vllm.yaml ($1)
# and its secrets file ($2) into set_base, set_name and set_key: the set that serves now answers on its
# own port, under its own name and wants its own key, whatever this run is about to write. set_base
# stays empty without a port. The key stays in this process's memory.
settings_of() {
  local line value host="" port=""
  set_base="" set_name="" set_key=""
  if [ -f "$1" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      value=${line#*: }
      # The YAML's strings are JSON strings (renderConfigYaml).
      case "$value" in \"*\") value=${value:1:${#value}-2} && value=${value//\\\"/\"} && value=${value//\\\\/\\} ;; esac
      case "$line" in
        "served-model-name: "*) set_name=$value ;;
        "host: "*) host=$value ;;
        "port: "*) port=$value ;;
      esac
    done <"$1"
  fi
  if [ -f "$2" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in VLLM_API_KEY=*) set_key=${line#VLLM_API_KEY=} ;; esac
    done <"$2"
  fi
  # As probeHost (vllmService.ts): a wildcard listener answers on loopback, IPv6 goes in brackets.
  case "$host" in 0.0.0.0) host=127.0.0.1 ;; ::) host="[::1]" ;; *:*) host="[$host]" ;; esac
  if [ -n "$host" ] && [ -n "$port" ]; then set_base="http://$host:$port"; fi
}

# Waits until /health answers and /v1/models lists the served model; fails at the deadline, or as soon
# as the process died (systemd waits to restart it, or counted a restart). Sets `why` when it fails.
# It polls /health as often as a plain restart's check would, from the moment the restart returns; one
# look at systemd (a round trip) follows each failed poll but the first. The first look notes the
# restarts systemd counted, which cannot have grown by then: it restarts the unit 10 s after an exit
# (RestartSec=), and an exit before that shows as auto-restart.
wait_healthy() {
  local deadline=$((SECONDS + health_timeout)) restarts="" polls=0 models state counted
  why="vllm-workstation.service did not become healthy within ${health_timeout}s"
  # Quiet: a refused connection while it starts is no news, and the message's tail is for the service's log.
  until curl -fs -o /dev/null --max-time 5 "$base/health"; do
    polls=$((polls + 1))
    if [ "$polls" -gt 1 ]; then
      state=$(systemctl show -p ActiveState -p SubState -p NRestarts "$unit_name" 2>/dev/null || true)
      state=" ${state//$'\n'/ } "
      counted=${state#* NRestarts=} && counted=${counted%% *}
      case "$state" in
        *" ActiveState=failed "*) why="vllm-workstation.service failed"; return 1 ;;
        *" SubState=auto-restart "*) why="vllm-workstation.service exited before it served"; return 1 ;;
        *" NRestarts=${restarts:-$counted} "*) restarts=$counted ;;
        *) why="vllm-workstation.service exited before it served (restarted by systemd)"; return 1 ;;
      esac
    fi
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.5
  done
  models=$(authed_get "$base/v1/models") || { why="GET /v1/models failed"; return 1; }
  case "$models" in *"\"$served_name\""*) ;; *) why="GET /v1/models does not list $served_name: $models"; return 1 ;; esac
}

# Whether the service serves now, as the health check sees it in one look: a set worth going back to.
# /health and then /v1/models in one curl, whose start costs more than both requests; each on a
# connection of its own (Connection: close), as a second request on a kept-alive one waits out TCP's
# delayed acknowledgement (40 ms).
# It asks with the settings of the set written now (settings_of), not those this run is about to write.
serving_now() {
  local models set_base set_name set_key auth_key
  systemctl is-active --quiet "$unit_name" || return 1
  settings_of "$config_path" "$secrets_path"
  [ -n "$set_base" ] && [ -n "$set_name" ] || return 1
  auth_key=$set_key
  models=$(authed_get --fail-early --max-time 5 -H 'Connection: close' -o /dev/null "$set_base/health" "$set_base/v1/models" 2>/dev/null) || return 1
  case "$models" in *"\"$set_name\""*) true ;; *) false ;; esac
}

# Copies what the service runs on now into $1: each served file (or a note that it is absent) and the
# install it serves. The CUDA environment comes from the copy kept when the service last passed its
# health check (served_cuda_path), as the step before this one has written the new one already; without
# that copy (a box of an earlier release), from the file itself. That is the serves file's, not the venv link's target: the packages step moves a
# link it finds at an install that never completed before this step runs. Without a serves file (an
# earlier release), the link is all there is.
save_served() {
  local f name line text served="" present=()
  if [ -e "$1" ]; then rm -rf "$1"; fi
  install -d -m 0700 "$1"
  saved_files
  for f in "${saved_list[@]}"; do
    name=${f##*/}
    if [ "$f" = "$cuda_env_path" ] && [ -f "$served_cuda_path" ]; then
      read_text text "$served_cuda_path"
      printf '%s' "$text" >"$1/$name"
    elif [ -f "$f" ]; then present+=("$f"); else : >"$1/$name.absent"; fi
  done
  if [ "${#present[@]}" -gt 0 ]; then cp -p -- "${present[@]}" "$1/"; fi
  if [ -f "$serves_path" ]; then
    while IFS= read -r line; do case "$line" in install=?*) served=${line#install=} ;; esac; done <"$serves_path"
  fi
  if [ -n "$served" ]; then printf '%s\n' "$served" >"$1/link"; else readlink "$venv" >"$1/link" 2>/dev/null || true; fi
}

# Puts back what save_served kept in $1.
restore_served() {
  local f name
  saved_files
  for f in "${saved_list[@]}"; do
    name=${f##*/}
    # Checked: a failed copy in an && list would not stop the script (set -e), and the rollback would
    # report a set it did not put back.
    if [ -f "$1/$name" ]; then
      if ! cp -p "$1/$name" "$f.vllm-ws-back" || ! mv -f "$f.vllm-ws-back" "$f"; then
        echo "could not put back $f from $1: the service is left on the new set. Fix the cause above, then run pulumi up again." >&2
        exit 1
      fi
    elif [ -e "$1/$name.absent" ]; then rm -f "$f"; fi
  done
  if [ -s "$1/link" ]; then own_link "$venv" "$(cat "$1/link")"; fi
}

# The set put back runs with the key in force now, the one this run wrote (or none): a key rotated away
# (it may have leaked) never becomes valid again, and a key removed is not asked for. Its vllm.yaml
# loads the middleware that requires the key exactly when there is one (and the set has the module on
# its PYTHONPATH); vLLM refuses to load the middleware without a key.
match_key() {
  local line text="" env
  [ -f "$config_path" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in "middleware: "*) ;; *) text+="$line"$'\n' ;; esac
  done <"$config_path"
  read_text env "$env_path"
  if [ -n "${VLLM_WS_API_KEY:-}" ] && [ -f "$auth_path" ] && [[ $'\n'"$env" == *$'\n'"PYTHONPATH=$python_dir"$'\n'* ]]; then
    text+="middleware: \"$auth_middleware\""$'\n'
  fi
  read_text line "$config_path"
  if [ "$text" != "$line" ]; then put_file "$config_path" "$text" 0644; fi
}

# The install or model revision (key $3) a saved set (or the live one) serves, from its serves file $2,
# into the variable named $1 (empty without one).
serves_of() { # variable file key
  local line serves_of_v=""
  if [ -f "$2" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      if [ "${line%%=*}" = "$3" ]; then serves_of_v+="${line#*=}"$'\n'; fi
    done <"$2"
  fi
  # One value a line, less the trailing newlines (as a command substitution would take them).
  printf -v "$1" '%s' "${serves_of_v%"${serves_of_v##*[!$'\n']}"}"
}

# The last lines the service logged, for the message of a failed start.
last_log() {
  journalctl -u "$unit_name" -n "${1:-10}" --no-pager -o cat 2>/dev/null || true
}
