# shellcheck shell=bash
# What the container's apply and remove share: whose a container of a name is, and the images the stack
# pulled. Sourced by container_apply.sh and container_remove.sh (it reads their label_format).

# shellcheck disable=SC2154
# ours, other (a container of that name the stack did not make: never touched), or nothing (none).
kind_of() {
  local managed
  if managed=$(docker container inspect --format "$label_format" "$1" 2>/dev/null); then
    if [ "$managed" = true ]; then echo ours; else echo other; fi
  fi
}

# Takes away the images the stack pulled (its vllm-workstation-pulled:* tags), each with the name it was
# pulled under (the one whose hash its tag carries), but the one tagged $1; an image some container uses
# stays. An image the stack did not pull has no such tag and is never touched.
prune_pulled() {
  local tag tags
  tags=$(docker image ls --format '{{.Repository}}:{{.Tag}}' vllm-workstation-pulled 2>/dev/null || true)
  for tag in $tags; do
    if [ "$tag" != "${1:-}" ]; then drop_pulled "$tag"; fi
  done
}

drop_pulled() {
  local names n
  names=$(docker image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$1" 2>/dev/null || true)
  docker rmi "$1" >/dev/null || return 0
  while read -r n; do
    if [ -n "$n" ] && [ "vllm-workstation-pulled:$(printf '%s' "$n" | sha256sum | cut -c1-16)" = "$1" ]; then
      docker rmi "$n" >/dev/null 2>&1 || echo "leaving the image $n: another container uses it" >&2
    fi
  done <<<"$names"
}
