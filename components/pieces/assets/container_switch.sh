# shellcheck shell=bash
# The container's health check and the way back to the container kept during a switch. Sourced by
# container_apply.sh, whose settings (names, the endpoint, the timeout) these functions read, and which
# reads `why` after a failure.
# shellcheck disable=SC2154,SC2034

# GET with the API key, which reaches curl as a config on stdin (-K -), never on a command line.
authed_get() {
  curl -fsS --max-time 10 ${VLLM_WS_API_KEY:+-K -} "$1" <<<"header = \"Authorization: Bearer ${VLLM_WS_API_KEY:-}\""
}

# A list field ($2: .Args, .Config.Env, .HostConfig.Binds) of the container $1 into the array named $3,
# one element each whatever it holds (NUL-separated; docker ends its output with a newline).
inspect_list() {
  local -n list=$3
  mapfile -d '' -t list < <(docker container inspect --format "{{range $2}}{{.}}{{\"\\x00\"}}{{end}}" "$1" 2>/dev/null)
  if [ "${#list[@]}" -gt 0 ] && [ "${list[-1]}" = $'\n' ]; then unset 'list[-1]'; fi
}

# The settings the container $1 serves with, read from the engine into the caller's c_ip (the address
# it is published on), c_base (where the stack reaches it), c_served (the name it serves) and c_key (its API key:
# held in memory only, as the key in force is). A switch that moves the port, renames the model or
# rotates the key looks at the running container with these, not with the ones it brings.
settings_of() {
  local binding ip a i
  binding=$(docker container inspect --format '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostIp}} {{.HostPort}}{{end}}{{end}}' "$1" 2>/dev/null) || return 1
  ip=${binding% *}
  c_ip=$ip
  case "$ip" in "" | 0.0.0.0) ip=127.0.0.1 ;; ::) ip="[::1]" ;; *:*) ip="[$ip]" ;; esac
  c_base="http://$ip:${binding##* }"
  inspect_list "$1" .Args a
  c_served=${a[1]:-}
  for ((i = 0; i + 1 < ${#a[@]}; i++)); do
    if [ "${a[i]}" = --served-model-name ]; then c_served=${a[i + 1]}; fi
  done
  c_key=""
  inspect_list "$1" .Config.Env a
  for i in "${a[@]}"; do
    case "$i" in VLLM_API_KEY=*) c_key=${i#VLLM_API_KEY=} ;; esac
  done
}

# Whether the container $1 serves now, as the health check sees it in one look, with its own settings
# (settings_of): one worth going back to.
serving_now() {
  local c_ip c_base c_served c_key
  [ "$(docker container inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ] && settings_of "$1" &&
    curl -fs -o /dev/null --max-time 5 "$c_base/health" &&
    case "$(VLLM_WS_API_KEY=$c_key authed_get "$c_base/v1/models" 2>/dev/null || true)" in *"\"$c_served\""*) true ;; *) false ;; esac
}

# Makes the container $previous anew as $name, with its image, model revision, flags, address and
# volumes, and the API key in force now in place of its own: the key is no version to go back to (one
# rotated away may have leaked and never becomes valid again; one removed stays removed, one added is
# required). Its middleware and PYTHONPATH go with the key; the module's volume is every container's.
copy_with_key_now() {
  local image a i skip=no args=() envs=() binds=() binding publish
  image=$(docker container inspect --format '{{.Image}}' "$previous") || return 1
  inspect_list "$previous" .Args a
  for i in "${a[@]}"; do
    if [ "$skip" = yes ]; then skip=no; continue; fi
    if [ "$i" = --middleware ]; then skip=yes; continue; fi
    args+=("$i")
  done
  inspect_list "$previous" .Config.Env a
  for i in "${a[@]}"; do
    case "$i" in VLLM_API_KEY=* | "$key_env") ;; *) envs+=(-e "$i") ;; esac
  done
  inspect_list "$previous" .HostConfig.Binds a
  for i in "${a[@]}"; do
    if [ "$i" != "$key_bind" ]; then binds+=(-v "$i"); fi
  done
  binds+=(-v "$key_bind")
  if [ -n "${VLLM_WS_API_KEY:-}" ]; then
    args+=(--middleware "$key_middleware")
    envs+=(-e "$key_env" -e VLLM_API_KEY)
  fi
  binding=$(docker container inspect --format '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostIp}} {{.HostPort}}{{end}}{{end}}' "$previous")
  case "${binding% *}" in *:*) publish="[${binding% *}]:${binding##* }" ;; *) publish="${binding% *}:${binding##* }" ;; esac
  VLLM_API_KEY="${VLLM_WS_API_KEY:-}" "${create_fixed[@]}" -p "$publish:$inner_port" "${binds[@]}" "${envs[@]}" "$image" "${args[@]}" >/dev/null
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

# Puts back the middleware's module the kept container ran with, when this run replaced it (the new
# container, its only other reader, is gone by then): the container comes back on its own module, as on
# its own image, and the file is again what the state, which stays the old one, says.
put_back_module() {
  local tmp
  if [ "$module_before" = "$module_after" ] || [ "$module_before" = missing ]; then return 0; fi
  tmp=$(mktemp "$module_path.XXXXXX")
  printf '%s' "${module_old%x}" >"$tmp"
  chmod 0644 "$tmp" && chown root:root "$tmp" && mv -f "$tmp" "$module_path"
}

# The new container failed (`why`): its last log lines, then it goes and the one kept as $previous comes
# back under the name, on its own module, started and checked again at its own address, with the key in force now (when it
# held another, it is made anew with that one: copy_with_key_now). Only a key removed while the kept one
# is published beyond loopback stays its own: without it, that address would serve anyone, which no
# config allows. Exits: rolled_back_exit when it serves, 1 when not. A container of the name that the
# stack did not make (one that took the name while the switch had it free) is left alone, and so is the
# kept one, under $previous: exit 1.
roll_back() {
  local back_image back_revision c_ip c_base c_served c_key as_it_was=no
  case "$(kind_of "$name")" in
    ours)
      echo "$why; its last log lines:" >&2
      docker logs --tail 40 "$name" >&2 2>&1 || true
      docker rm -f "$name" >/dev/null 2>&1 || true
      ;;
    other)
      # Taken while the switch had the name free (between the rename and the create): never the stack's
      # to remove, and the kept container cannot have the name back over it. Its module is put back, as
      # the state, which stays the old one, says.
      put_back_module
      echo "$why: a container named $name exists that the stack did not make; the stack leaves it alone, and keeps the container that served as $previous (stopped) to go back to. Remove or rename $name (docker rm -f $name), then run pulumi up again" >&2
      exit 1
      ;;
    *) echo "$why" >&2 ;;
  esac
  back_image=$(docker container inspect --format '{{.Config.Image}}' "$previous")
  back_revision=$(docker container inspect --format '{{index .Args 1}}' "$previous" 2>/dev/null || true)
  back_revision=${back_revision##*/}
  put_back_module
  settings_of "$previous"
  health_url="$c_base/health" models_url="$c_base/v1/models" served_name=$c_served
  if [ "$c_key" = "${VLLM_WS_API_KEY:-}" ]; then as_it_was=yes; fi
  if [ -z "${VLLM_WS_API_KEY:-}" ]; then
    case "$c_ip" in 127.* | ::1) ;; *) as_it_was=yes ;; esac
  fi
  if [ "$as_it_was" = yes ]; then
    echo "starting the previous container again as $name" >&2
    # Started before it gets the name back: a run cut off between the two leaves it running under the
    # name that marks it as the one to go back to.
    if ! docker start "$previous" >/dev/null || ! docker rename "$previous" "$name" || ! VLLM_WS_API_KEY=$c_key wait_healthy; then
      echo "rolled back to the previous container (image $back_image, model revision ${back_revision:-unknown}), but it did not become healthy either: $why" >&2
      exit 1
    fi
  else
    echo "making the previous container anew as $name with the API key in force now: it held the one this change replaces" >&2
    # The kept one goes only once its copy serves: a run cut off before leaves it as the way back, and
    # the next up finds the copy serving (and removes the kept one) or goes back to the kept one again.
    if ! copy_with_key_now || ! docker start "$name" >/dev/null || ! wait_healthy; then
      echo "rolled back to the previous container (image $back_image, model revision ${back_revision:-unknown}), but it did not become healthy either: $why" >&2
      exit 1
    fi
    docker rm -f "$previous" >/dev/null
  fi
  echo "rolled back: the container $name serves again on the previous image ($back_image), model revision (${back_revision:-unknown}) and flags. Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
  exit "$rolled_back_exit"
}
