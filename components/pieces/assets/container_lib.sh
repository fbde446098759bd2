# shellcheck shell=bash
# What the container's apply and remove share: whose a container of a name is, and the images the stack
# pulled. Sourced by container_apply.sh and container_remove.sh (it reads their label_format,
# managed_label and pulling_label).

# shellcheck disable=SC2154
# ours, other (a container of that name the stack did not make: never touched), or nothing (none).
kind_of() {
  local managed
  if managed=$(docker container inspect --format "$label_format" "$1" 2>/dev/null); then
    if [ "$managed" = true ]; then echo ours; else echo other; fi
  fi
}

# The hash that names an image's marks: of the name as docker prints it (familiarImage in
# dockerRuntime.ts), so that a name read back from the engine finds its mark.
name_hash() {
  printf '%s' "$1" | sha256sum | cut -c1-16
}

# A pull the stack begins is marked first by a volume of its own, vllm-workstation-pulling-<hash>,
# labelled with the image's name: made only when the image is not there, removed once the image carries
# its vllm-workstation-pulled tag. A run cut off between the two leaves the mark; claim_pulls, at the
# start of every apply and remove, turns it into the tag when the image is there (the pull finished)
# and drops it when not (a pull cut off leaves no image). A volume is the engine's own object, so the
# mark lives where the image does, whichever engine DOCKER_HOST names.

# Whether the volume $1 is a mark of the stack's: its label, and a name that is the hash of the image
# it names (one that is not is left alone).
pull_mark_of() {
  local managed image
  managed=$(docker volume inspect --format "{{index .Labels \"$managed_label\"}}" "$1" 2>/dev/null) || return 1
  image=$(docker volume inspect --format "{{index .Labels \"$pulling_label\"}}" "$1" 2>/dev/null) || return 1
  [ "$managed" = true ] && [ -n "$image" ] && [ "$1" = "vllm-workstation-pulling-$(name_hash "$image")" ] && printf '%s\n' "$image"
}

# Stops the run when the engine does not answer: a remove that went on would report success and the
# state would forget a container (--restart unless-stopped) that comes back when the engine starts.
need_engine() {
  if ! docker version >/dev/null 2>&1; then
    echo "the Docker engine at ${DOCKER_HOST:-the default socket, unix:///var/run/docker.sock} (dockerHost) does not answer; start it (Docker Desktop, or sudo systemctl start docker) and run the command again. If that engine is gone for good, take the container out of the stack's state by hand: pulumi state delete '<urn>' (the URN of the vLLM container's piece, from pulumi stack --show-urns)" >&2
    exit 1
  fi
}

# The IDs of the images in the engine, one a line: an image whose ID is among those taken before a pull
# was there before it (pulled by digest, or under another name) and is never tagged as pulled.
image_ids() {
  docker image ls -q --no-trunc | sort -u
}

# Tags the image $1 with $2 (its tag as pulled by the stack), unless its ID is among $3 (image_ids
# before the pull).
tag_pulled() {
  local id
  id=$(docker image inspect --format '{{.Id}}' "$1")
  if grep -qxF "$id" <<<"$3"; then
    echo "not tagging $1 as pulled by the stack: its image ($id) was there before the pull" >&2
  else
    docker tag "$1" "$2"
  fi
}

claim_pulls() {
  local v image before
  for v in $(docker volume ls -q --filter "label=$pulling_label" 2>/dev/null || true); do
    image=$(pull_mark_of "$v") || continue
    if docker image inspect "$image" >/dev/null 2>&1; then
      before=$(docker volume inspect --format "{{index .Labels \"$pulling_label.before\"}}" "$v" | tr ' ' '\n')
      echo "a run cut off after its pull of $image left it untagged" >&2
      tag_pulled "$image" "vllm-workstation-pulled:$(name_hash "$image")" "$before"
    fi
    docker volume rm "$v" >/dev/null
  done
}

# Marks the pull of $1 (the image as the config names it; $2: as docker prints it; $3: image_ids before
# the pull, kept in the mark so that claim_pulls decides as tag_pulled does). A volume of the
# mark's name the stack did not make stops the run: the stack never takes or removes it.
mark_pull() {
  local v
  v="vllm-workstation-pulling-$(name_hash "$2")"
  if docker volume inspect "$v" >/dev/null 2>&1; then
    echo "a volume named $v exists that the stack did not make, and the stack marks its pull of $1 with that name; the stack leaves it alone: remove it (docker volume rm $v), then run pulumi up again" >&2
    exit 1
  fi
  docker volume create --label "$managed_label=true" --label "$pulling_label=$2" --label "$pulling_label.before=$(printf '%s' "$3" | tr '\n' ' ')" "$v" >/dev/null
}

# Takes away the mark of $1 (as docker prints it), once its pull has its tag or failed.
unmark_pull() {
  local v
  v="vllm-workstation-pulling-$(name_hash "$1")"
  if pull_mark_of "$v" >/dev/null; then docker volume rm "$v" >/dev/null; fi
}

# Takes away the images the stack pulled (its vllm-workstation-pulled:* tags), each with the name it was
# pulled under (the one whose hash its tag carries), but the one tagged $1; an image some container uses
# stays, tag and all, so that a later remove still finds it. An image the stack did not pull has no such
# tag and is never touched.
prune_pulled() {
  local tag tags
  tags=$(docker image ls --format '{{.Repository}}:{{.Tag}}' vllm-workstation-pulled 2>/dev/null || true)
  for tag in $tags; do
    if [ "$tag" != "${1:-}" ]; then drop_pulled "$tag"; fi
  done
}

# The name an image was pulled under is among its tags (repo:tag) or, pulled by digest, among its
# digests (repo@sha256:...), which keep an image as a tag does.
drop_pulled() {
  local names n id
  id=$(docker image inspect --format '{{.Id}}' "$1" 2>/dev/null) || return 0
  if [ -n "$(docker ps -aq --filter "ancestor=$id")" ]; then
    echo "keeping the image $1 ($id), with its tag as pulled by the stack: a container uses it" >&2
    return 0
  fi
  names=$(docker image inspect --format '{{range .RepoTags}}{{println .}}{{end}}{{range .RepoDigests}}{{println .}}{{end}}' "$1" 2>/dev/null || true)
  docker rmi "$1" >/dev/null || return 0
  while read -r n; do
    if [ -n "$n" ] && [ "vllm-workstation-pulled:$(name_hash "$n")" = "$1" ]; then
      docker rmi "$n" >/dev/null 2>&1 || echo "leaving the image $n: another container uses it" >&2
    fi
  done <<<"$names"
}
