# shellcheck shell=bash
# The container's probe: what the container is, one key=value a line in the form dockerRuntime.ts's
# `expected` renders (container_inspect.tmpl, then the image, the volumes and the stack's variables);
# the API key's value shows only as its id. Docker keeps the volumes in no fixed order: sorted, one a
# line. Then, only while there is one, the stack's container kept by a switch that did not finish: a
# line `expected` never has, so the plan shows it and `up` finishes the switch. Read-only and always
# exits 0, so an engine that is down reads as "absent" (the preflight names that problem).

if live=$(docker container inspect --format @FORMAT@ @NAME@ 2>/dev/null); then
  printf '%s\n' "$live" | grep -v '^image-id='
  want=$(docker image inspect --format '{{.Id}}' @IMAGE@ 2>/dev/null || true)
  if [ "$(printf '%s\n' "$live" | sed -n 's/^image-id=//p')" = "$want" ]; then echo image=@IMAGE@; else echo image=other; fi
  docker container inspect --format '{{range .HostConfig.Binds}}{{println .}}{{end}}' @NAME@ | grep . | LC_ALL=C sort | sed 's/^/bind=/' || true
  envs=$(docker container inspect --format '{{range .Config.Env}}{{println .}}{{end}}' @NAME@)
  printf '%s\n' "$envs" | grep -E @OURS@ | LC_ALL=C sort | sed 's/^/env=/' || true
  key=$(printf '%s\n' "$envs" | sed -n 's/^VLLM_API_KEY=//p')
  if [ -n "$key" ]; then echo "api-key=$(printf 'vllm-workstation:%s' "$key" | sha256sum | cut -c1-12)"; else echo api-key=none; fi
else
  echo container=absent
fi
if [ "$(docker container inspect --format @LABEL_FORMAT@ @PREVIOUS@ 2>/dev/null || true)" = true ]; then
  echo "previous=@PREVIOUS@ (a switch that did not finish)"
fi
