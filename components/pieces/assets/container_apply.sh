# shellcheck shell=bash disable=SC2034
# (shellcheck SC2034 is off here: the settings below are read by the functions put in at @CONTAINER_LIB@; the rendered script, which holds them, is checked with it on.)
# The container's apply: converges whatever container of the name it finds.
#  - The first line changes with the API key's id, so a rotated key makes the container anew.
#  - An image that was not there is pulled and tagged as pulled by the stack (remove takes away only that);
#    its pull is marked first, so that a run cut off before the tag leaves what the next run recognises
#    (claim_pulls in container_lib.sh). A pull that fails leaves no mark.
#  - The middleware's module goes into a directory of the stack's own (own.sh); a new module needs a new
#    process, so a change of it makes the container anew.
#  - A container of the name that the stack did not make is refused. One that differs in anything but
#    running (what the probe, @PROBE@, prints against @EXPECTED@) is made anew; a stopped one is started.
#  - The key reaches docker as a variable it copies (`-e VLLM_API_KEY`), never on a command line.
#  - Done once /health answers and /v1/models lists the served model; a container that exits, restarts
#    or stays unhealthy past the timeout fails the step with its last log lines.
#  - A switch: a container that serves now (the same health check, in one look) is not removed before its
#    successor has passed that check. It is stopped and renamed to @PREVIOUS@ (with the stack's label,
#    so remove takes it too); a new container that fails brings it back (exit @ROLLED_BACK_EXIT@: the
#    step fails and its state stays the old one), one that serves makes it go. Found at the start, a
#    container of that name means a run was cut off mid-switch: it stays the one to go back to.

# api-key: @API_KEY_ID@
name=@NAME@
previous=@PREVIOUS@
label_format=@LABEL_FORMAT@
managed_label=@MANAGED_LABEL@
pulling_label=@PULLING_LABEL@
health_url=@HEALTH_URL@
models_url=@MODELS_URL@
health_timeout=@TIMEOUT@
served_name=@SERVED_NAME@
rolled_back_exit=@ROLLED_BACK_EXIT@
module_path=@MODULE@
inner_port=@INNER_PORT@
# What goes with an API key (copy_with_key_now): the middleware, its module's volume and PYTHONPATH.
key_middleware=@KEY_MIDDLEWARE@
key_bind=@KEY_BIND@
key_env=@KEY_ENV@
# docker create with the settings every container of the stack has; the address, volumes, variables,
# image and argv follow.
create_fixed=(@CREATE_FIXED@)
# Why the health check failed (wait_healthy sets it).
why=""

@CONTAINER_LIB@
@SWITCH_LIB@

need_engine
claim_pulls
if ! docker image inspect @IMAGE@ >/dev/null 2>&1; then
  echo @PULLING@ >&2
  # The name may be new to an image that is there (pulled by digest, or under another name): tagged as
  # pulled, remove would delete what the user had.
  ids_before=$(image_ids)
  mark_pull @IMAGE@ @FAMILIAR_IMAGE@ "$ids_before"
  docker pull @IMAGE@ >&2 || { unmark_pull @FAMILIAR_IMAGE@; echo @CANNOT_PULL@ >&2; exit 1; }
  tag_pulled @IMAGE@ @PULLED_TAG@ "$ids_before"
  unmark_pull @FAMILIAR_IMAGE@
fi
module_before=$(sha256sum @MODULE@ 2>/dev/null || echo missing)
# The module the running container loaded, byte for byte (the x keeps trailing newlines), in memory: a
# rollback puts it back for the container it brings back (put_back_module).
module_old=""
if [ "$module_before" != missing ]; then module_old=$(cat @MODULE@ && echo x); fi
own_dir @MODULE_DIR@
@WRITE_MODULE@
module_after=$(sha256sum @MODULE@)
seen=$(bash -euo pipefail <<'VLLM_WS_PROBE'
@PROBE@
VLLM_WS_PROBE
)
# The probe's line about a container kept by a switch is for the plan; here kind_of looks at it.
seen=$(printf '%s\n' "$seen" | sed '/^previous=/d')
previous_kind=$(kind_of "$previous")
can_roll_back=no
if [ "$previous_kind" = ours ]; then
  if [ "$(kind_of "$name")" = ours ] && serving_now "$name"; then
    # The container of the name serves: the cut-off switch had succeeded (or gone back), and what
    # serves now is what a switch keeps, never an older one.
    echo "removing $previous, which a cut-off run kept: $name serves" >&2
    docker rm -f "$previous" >/dev/null
    previous_kind=""
  else
    echo "found $previous: an earlier run was cut off while it replaced $name; it is the container to go back to" >&2
    # Stopped: cut off before the stop, it still holds the published port the new container needs.
    docker stop "$previous" >/dev/null
    can_roll_back=yes
  fi
fi
if [ "$seen" != "container=absent" ]; then
  if [ "$(printf '%s\n' "$seen" | sed -n 's/^managed=//p')" != true ]; then
    echo @NOT_OURS@ >&2
    exit 1
  fi
  if [ "$(printf '%s\n' "$seen" | grep -v '^running=')" != @EXPECTED@ ] || [ "$module_before" != "$module_after" ]; then
    if [ "$can_roll_back" = no ] && serving_now "$name"; then
      if [ "$previous_kind" = other ]; then
        echo @PREVIOUS_NOT_OURS@ >&2
        exit 1
      fi
      echo "keeping the container $name, which serves now, as $previous until its successor is healthy" >&2
      # Renamed first: a run cut off between the two leaves it under the name that marks it as the one to
      # go back to, never as a stopped container that looks like nothing worth keeping.
      docker rename "$name" "$previous"
      docker stop "$previous" >/dev/null
      can_roll_back=yes
    else
      echo @REMOVING@ >&2
      docker rm -f "$name" >/dev/null
    fi
    seen=container=absent
  fi
fi
if [ "$seen" = "container=absent" ]; then
  echo @CREATING@ >&2
  if ! VLLM_API_KEY="${VLLM_WS_API_KEY:-}" "${create_fixed[@]}" @CREATE@ ${VLLM_WS_API_KEY:+-e VLLM_API_KEY} @IMAGE@ @ARGS@ >/dev/null; then
    if [ "$can_roll_back" = yes ]; then why="the container $name could not be created"; roll_back; fi
    exit 1
  fi
fi
if [ "$(docker container inspect --format '{{.State.Running}}' "$name")" != true ]; then
  echo @STARTING@ >&2
  if ! docker start "$name" >/dev/null; then
    echo @NOT_STARTED@ >&2
    if [ "$can_roll_back" = yes ]; then why="the container $name did not start"; roll_back; fi
    exit 1
  fi
fi
echo @WAITING@ >&2
if ! wait_healthy; then
  if [ "$can_roll_back" = yes ]; then roll_back; fi
  echo "$why; its last log lines:" >&2
  docker logs --tail 40 "$name" >&2 2>&1 || true
  echo "Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
  exit 1
fi
# Serving: only what serves stays, the container and the image the stack pulled for it.
if [ "$can_roll_back" = yes ]; then
  echo "removing $previous: $name serves" >&2
  docker rm -f "$previous" >/dev/null
fi
prune_pulled @PULLED_TAG@
echo @SERVING@ >&2
