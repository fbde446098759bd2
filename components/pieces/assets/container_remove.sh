# shellcheck shell=bash
# The container's remove: only a container the stack made (its label), only an image it pulled (its
# tag; one that was there before stays), and the middleware's module only from a directory the stack
# holds, the directory as own.sh releases it.

if managed=$(docker container inspect --format @LABEL_FORMAT@ @NAME@ 2>/dev/null); then
  if [ "$managed" = true ]; then docker rm -f @NAME@ >/dev/null; else echo @LEAVING_CONTAINER@ >&2; fi
fi
if docker image inspect @PULLED_TAG@ >/dev/null 2>&1; then
  docker rmi @PULLED_TAG@ >/dev/null
  docker rmi @IMAGE@ >/dev/null 2>&1 || echo @LEAVING_IMAGE@ >&2
fi
if [ -n "$(own_kind @MODULE_DIR@)" ]; then rm -f @MODULE@; fi
own_release_dir @MODULE_DIR@
