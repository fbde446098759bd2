# shellcheck shell=bash
# What the stack made on this machine, and nothing else, is what it may change and remove.
#
# The record is one file per path (or user) the stack took, in a directory no other tool reads; each
# holds "<kind> <what>": `made` (the stack created it; destroy removes it) or `adopted` (it existed,
# empty or identical to what the stack writes; destroy leaves it where it was). Every apply and remove
# script starts with these functions (components/host/shell.ts); the preflight reads the same record
# (own_state) before anything changes, so a path holding someone else's files is refused up front.
# Paths reach these functions already validated by the config's grammar (absolute, normalized, from a
# small character set, never a system directory).

# VLLM_WS_RECORD moves it for the unit tests, which run these scripts on the test machine itself.
: "${VLLM_WS_RECORD:=/var/lib/vllm-workstation-record}"
# Before the record, a directory the stack made held this file, and a file it wrote started with the
# managed header; both still count as made, so a workstation converged then carries over unchanged.
VLLM_WS_LEGACY_MARKER=.vllm-workstation-made-this
VLLM_WS_HEADER='# Managed by vllm-workstation (Pulumi).'

own_key() { printf '%s' "$1" | sha256sum | cut -c1-32; }

# Whether the record holds an entry for $1, whose kind it puts in own_recorded_kind. Read by bash itself,
# entry by entry, rather than by the entry's name (a sha256sum and a cut): a step asks about a handful of
# paths, and a process per question was most of what a switch of the service cost beyond its restart.
own_recorded() {
  local f kind what
  own_recorded_kind=""
  [ -d "$VLLM_WS_RECORD" ] || return 1
  for f in "$VLLM_WS_RECORD"/*; do
    # An entry is named by own_key; own_note writes it as $entry.XXXXXX first, then renames it whole.
    case ${f##*/} in *.*) continue ;; esac
    [ -f "$f" ] || continue
    kind="" what=""
    read -r kind what <"$f" || true
    if [ "$what" = "$1" ]; then own_recorded_kind=$kind; return 0; fi
  done
  return 1
}

# The kind recorded for $1 (a path, or user:NAME / group:NAME), or nothing.
own_kind() {
  if own_recorded "$1"; then
    [ -z "$own_recorded_kind" ] || echo "$own_recorded_kind"
  elif [ -d "$1" ] && [ -f "$1/$VLLM_WS_LEGACY_MARKER" ]; then
    echo made
  elif [ -f "$1/pyvenv.cfg" ] && [ -f "$1-tools/$VLLM_WS_LEGACY_MARKER" ]; then
    # The venv beside a tools directory the stack made: it made both.
    echo made
  elif [ -f "$1" ] && [ ! -L "$1" ] && [ "$(head -c ${#VLLM_WS_HEADER} "$1")" = "$VLLM_WS_HEADER" ]; then
    echo made
  fi
}

# Writes what own_kind found into the record, for a path it knows only from an older release's marks.
own_keep() {
  local kind
  if own_recorded "$1"; then [ -n "$own_recorded_kind" ]; return; fi
  kind=$(own_kind "$1")
  if [ -n "$kind" ]; then own_note "$kind" "$1"; fi
  [ -n "$kind" ]
}

own_note() {
  local kind=$1 what=$2 entry tmp
  install -d -m 0755 "$VLLM_WS_RECORD"
  entry="$VLLM_WS_RECORD/$(own_key "$what")"
  tmp=$(mktemp "$entry.XXXXXX")
  printf '%s %s\n' "$kind" "$what" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$entry"
  if [ -f "$what/$VLLM_WS_LEGACY_MARKER" ]; then
    # Before the record, the venv counted as made through its tools directory's marker (own_kind): it is
    # recorded before that marker goes, or it would be nobody's once the tools directory is.
    case $what in
      *-tools) if [ -f "${what%-tools}/pyvenv.cfg" ] && ! own_recorded "${what%-tools}"; then own_note made "${what%-tools}"; fi ;;
    esac
    # A legacy marker inside a directory confuses tools that scan it (the Hugging Face cache does).
    rm -f "$what/$VLLM_WS_LEGACY_MARKER"
  fi
}

own_forget() {
  rm -f "$VLLM_WS_RECORD/$(own_key "$1")"
  if [ -d "$1" ]; then rm -f "$1/$VLLM_WS_LEGACY_MARKER"; fi
  rmdir "$VLLM_WS_RECORD" 2>/dev/null || true
}

# For the preflight: what is at $1 as far as the stack is concerned, on one line.
#   absent | owned | empty | file <sha256> | holds <first few names> | other <type>
own_state() {
  local p=$1
  if [ -n "$(own_kind "$p")" ]; then echo owned
  elif [ ! -e "$p" ] && [ ! -L "$p" ]; then echo absent
  elif [ -L "$p" ]; then echo "other symbolic link"
  elif [ -d "$p" ]; then
    local names
    # The first few names, sorted, for a person to read: ls is the tool for that (SC2012 is about parsing).
    # shellcheck disable=SC2012
    names=$(ls -A "$p" 2>/dev/null | head -n 4 | tr '\n' ' ') || names="(unreadable)"
    if [ -z "$names" ]; then echo empty; else echo "holds ${names% }"; fi
  elif [ -f "$p" ]; then echo "file $(sha256sum "$p" | cut -c1-64)"
  else echo "other $(stat -c %F "$p" 2>/dev/null)"
  fi
}

own_refuse() {
  echo "refusing to take $1: $2. It was not made by vllm-workstation; move it away or pick another path in the stack config, then run pulumi up again." >&2
  exit 1
}

# Claims directory $1 for the stack without creating it (a tool such as uv creates it next): its
# missing parents are made and recorded, $1 itself is recorded as made when absent and as adopted
# when it exists empty; anything else there is refused.
own_claim_dir() {
  local dir=$1
  if own_keep "$dir"; then return 0; fi
  own_dir "$(dirname "$dir")" parent
  if [ -L "$dir" ]; then own_refuse "$dir" "it is a symbolic link"; fi
  if [ ! -e "$dir" ]; then own_note made "$dir"; return 0; fi
  if [ -d "$dir" ] && [ -z "$(ls -A "$dir")" ]; then own_note adopted "$dir"; return 0; fi
  # shellcheck disable=SC2012
  own_refuse "$dir" "it already holds $(ls -A "$dir" | head -n 4 | tr '\n' ' ')"
}

# Makes directory $1 and any missing parent, recording each it made. An existing $1 is claimed as
# own_claim_dir does, unless $2 is "parent": an existing parent is only passed through.
own_dir() {
  local dir=$1 role=${2:-} d made=()
  d=$dir
  while [ ! -e "$d" ] && [ ! -L "$d" ]; do made+=("$d"); d=$(dirname "$d"); done
  if [ "${#made[@]}" -eq 0 ] && [ "$role" != parent ]; then own_claim_dir "$dir"; return 0; fi
  [ -d "$d" ] || own_refuse "$d" "it is not a directory"
  install -d -m 0755 "$dir"
  for d in "${made[@]}"; do own_note made "$d"; done
}

# Before writing file $1 whose new content has sha256 $2: a file the stack did not write is refused,
# unless it already holds exactly that content (then it is adopted, and left in place on destroy).
own_file() {
  local path=$1 sha=$2
  if own_keep "$path"; then return 0; fi
  if [ ! -e "$path" ] && [ ! -L "$path" ]; then own_note made "$path"; return 0; fi
  if [ -f "$path" ] && [ ! -L "$path" ] && [ "$(sha256sum "$path" | cut -c1-64)" = "$sha" ]; then own_note adopted "$path"; return 0; fi
  own_refuse "$path" "a file with other content is there"
}

own_remove_file() {
  local path=$1
  case "$(own_kind "$path")" in
    made) rm -f "$path"; own_forget "$path" ;;
    adopted) own_forget "$path" ;;
    *) [ -e "$path" ] && echo "leaving $path: vllm-workstation did not make it" >&2 ;;
  esac
  return 0
}

# After a piece removed what it put in directory $1: the directory goes if the stack made it and it is
# empty now, and so does each parent the stack made, as far as they are empty; an adopted directory
# stays where it was.
own_release_dir() {
  local d=$1 kind
  while :; do
    kind=$(own_kind "$d")
    case "$kind" in
      made)
        rm -f "$d/$VLLM_WS_LEGACY_MARKER"
        if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then
          # A parent still holds the stack's other pieces (the venv beside its tools dir): no news.
          [ "$d" = "$1" ] && echo "leaving $d: it holds files vllm-workstation did not put there" >&2
          return 0
        fi
        rmdir "$d" 2>/dev/null || true
        own_forget "$d"
        ;;
      adopted) own_forget "$d"; return 0 ;;
      *) return 0 ;;
    esac
    d=$(dirname "$d")
  done
}

# Removes a whole tree the stack filled by itself (the venv, the uv cache, the service's caches):
# everything in it when the stack made or adopted it, then the directory as own_release_dir does.
own_remove_tree() {
  local dir=$1
  case "$(own_kind "$dir")" in
    made | adopted) find "$dir" -mindepth 1 -delete 2>/dev/null || find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ;;
    *) [ -e "$dir" ] && echo "leaving $dir: vllm-workstation did not make it" >&2; return 0 ;;
  esac
  own_release_dir "$dir"
}

# The service's account: made (and recorded) only when missing; removed only if the stack made it.
own_user() {
  local user=$1 home=$2
  if ! getent group "$user" >/dev/null; then groupadd --system "$user"; own_note made "group:$user"; fi
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --system --gid "$user" --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user"
    own_note made "user:$user"
  fi
}

own_remove_user() {
  local user=$1 legacy_dir=$2
  # Older releases noted the account with a file in the stack's config directory.
  if [ "$(own_kind "user:$user")" = made ] || [ -f "$legacy_dir/.made-user-$user" ]; then
    userdel "$user" 2>/dev/null || true
  fi
  if [ "$(own_kind "group:$user")" = made ] || [ -f "$legacy_dir/.made-group-$user" ]; then
    groupdel "$user" 2>/dev/null || true
  fi
  own_forget "user:$user"
  own_forget "group:$user"
  rm -f "$legacy_dir/.made-user-$user" "$legacy_dir/.made-group-$user"
}

# Removes revision $3 of Hugging Face repository $2 (owner/name) from the hub cache $1: its snapshot,
# the refs that point at it, and the blobs it links that no other snapshot links to. Other revisions,
# and other repositories, stay as they are; the repository's folder goes only once it is empty.
# The blobs go first, while the snapshot still names them: a removal cut off anywhere is finished by
# the next one, which finds the snapshot (its links dangling by then) and so the same blobs.
own_remove_hf_revision() {
  local cache=$1 repo=$2 rev=$3 dir ours theirs
  dir="$cache/models--${repo/\//--}"
  [ -d "$dir" ] || return 0
  ours=$(mktemp); theirs=$(mktemp)
  if [ -d "$dir/snapshots/$rev" ]; then
    find "$dir/snapshots/$rev" -type l -exec readlink {} + | sed 's|.*/||' | sort -u >"$ours"
  fi
  if [ -d "$dir/snapshots" ]; then
    # The links of every other snapshot.
    find "$dir/snapshots" -path "$dir/snapshots/$rev" -prune -o -type l -exec readlink {} + | sed 's|.*/||' | sort -u >"$theirs"
  fi
  comm -23 "$ours" "$theirs" | while read -r blob; do rm -f "$dir/blobs/$blob"; done
  rm -f "$ours" "$theirs"
  # Partial downloads of this revision's files (the ranged download's own and its records).
  find "$dir/blobs" -maxdepth 1 -name '*.vllm-ws.incomplete*' -delete 2>/dev/null || true
  if [ -d "$dir/refs" ]; then
    { grep -rlxF "$rev" "$dir/refs" 2>/dev/null || true; } | while read -r ref; do rm -f "$ref"; done
  fi
  # hf 1.x keeps the revision's file listing in trees/<revision>.json; the verification writes the
  # manifest as .part first. The snapshot goes last.
  rm -rf "$dir/.no_exist/$rev" "$dir/trees/$rev.json" "$dir/.vllm-workstation-manifest-$rev.json" \
    "$dir/.vllm-workstation-manifest-$rev.json.part" "$dir/.vllm-workstation-manifest.json" "${dir:?}/snapshots/$rev"
  # Empty folders hf made for this repository, then its lock folder once the repository is gone.
  find "$dir" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  if rmdir "$dir" 2>/dev/null; then
    rm -rf "$cache/.locks/models--${repo/\//--}"
    rmdir "$cache/.locks" 2>/dev/null || true
  fi
  # hf tags the cache directory on first use; the tag goes with the last repository.
  if ! compgen -G "$cache/models--*" >/dev/null && ! compgen -G "$cache/datasets--*" >/dev/null && ! compgen -G "$cache/spaces--*" >/dev/null; then
    rm -f "$cache/CACHEDIR.TAG"
  fi
  return 0
}

# Points the symbolic link $1, a path the stack claimed (own_claim_dir), at $2 in one rename: whoever
# resolves it meanwhile (a user's shell, a starting service) sees the old target or the new one.
own_link() {
  local link=$1 target=$2 tmp
  # The record answers most of the time, read by bash itself; own_kind's other looks only without an entry.
  if own_recorded "$link"; then
    [ -n "$own_recorded_kind" ] || own_refuse "$link" "vllm-workstation did not claim it"
  elif [ -z "$(own_kind "$link")" ]; then
    own_refuse "$link" "vllm-workstation did not claim it"
  fi
  if [ -e "$link" ] && [ ! -L "$link" ]; then own_refuse "$link" "it is not a symbolic link"; fi
  tmp="$link.vllm-ws-switch"
  if [ -e "$tmp" ] || [ -L "$tmp" ]; then rm -f "$tmp"; fi
  ln -sfn "$target" "$tmp"
  mv -T "$tmp" "$link"
}

# Removes a link own_link made: an empty directory the stack adopted there comes back as it was.
own_remove_link() {
  local link=$1
  [ -L "$link" ] || return 0
  case "$(own_kind "$link")" in
    made) rm -f "$link"; own_release_dir "$link" ;;
    adopted) rm -f "$link"; install -d -m 0755 "$link"; own_forget "$link" ;;
    *) echo "leaving $link: vllm-workstation did not make it" >&2 ;;
  esac
  return 0
}

# Removes every directory in $1 that the stack made, but those named after it (the ones kept).
own_prune_dirs() {
  local parent=$1 d k keep
  shift
  for d in "$parent"/*/; do
    d=${d%/}
    if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
    keep=no
    for k in "$@"; do if [ "$d" = "$k" ]; then keep=yes; fi; done
    [ "$keep" = no ] || continue
    if [ "$(own_kind "$d")" = made ]; then own_remove_tree "$d"; else echo "leaving $d: vllm-workstation did not make it" >&2; fi
  done
  return 0
}

# Before revision $3 of Hugging Face repository $2 is downloaded into the hub cache $1: a snapshot of
# it already there that the stack never verified is someone's download, which the stack uses and
# notes as adopted (left in place when the stack is done with it); anything else is noted as made from
# here on, so that a download cut off midway is the stack's to remove too.
own_claim_hf_revision() {
  local entry="hf-revision $1 $2 $3" dir="$1/models--${2/\//--}"
  local held=""
  if [ -d "$dir/snapshots/$3" ] && [ -n "$(ls -A "$dir/snapshots/$3")" ]; then held=yes; fi
  # An adopted revision stays so while its snapshot is there; one gone since is downloaded afresh.
  if own_recorded "$entry" && { [ "$own_recorded_kind" = made ] || [ -n "$held" ]; }; then return 0; fi
  if [ -n "$held" ] && [ ! -f "$dir/.vllm-workstation-manifest-$3.json" ] && ! grep -qsF "\"$3\"" "$dir/.vllm-workstation-manifest.json"; then
    echo "using $dir/snapshots/$3, which was in the cache before: vllm-workstation leaves it in place" >&2
    own_note adopted "$entry"
  else
    own_note made "$entry"
  fi
}

# Notes that the stack served revision $3 of Hugging Face repository $2 from the hub cache $1, so
# that it may remove that revision once it serves neither it nor the one before. A revision in the
# record already keeps its entry: one the stack adopted stays adopted.
own_note_hf_revision() {
  # Noted at every switch that succeeds: most of the time it is there already.
  if own_recorded "hf-revision $1 $2 $3"; then return 0; fi
  own_note made "hf-revision $1 $2 $3"
}

# The revisions of repository $2 in the hub cache $1 that the record holds (made or adopted), into the
# array own_hf_revisions_found: read by bash itself, in the process that asks.
own_hf_revisions_of() {
  local f kind tag cache repo rev
  own_hf_revisions_found=()
  [ -d "$VLLM_WS_RECORD" ] || return 0
  for f in "$VLLM_WS_RECORD"/*; do
    case ${f##*/} in *.*) continue ;; esac
    [ -f "$f" ] || continue
    read -r kind tag cache repo rev <"$f" || true
    if [ "$tag" = hf-revision ] && [ "$cache" = "$1" ] && [ "$repo" = "$2" ]; then own_hf_revisions_found+=("$rev"); fi
  done
  return 0
}

# The same revisions, one a line.
own_hf_revisions() {
  own_hf_revisions_of "$1" "$2"
  if [ "${#own_hf_revisions_found[@]}" -gt 0 ]; then printf '%s\n' "${own_hf_revisions_found[@]}"; fi
  return 0
}

# Takes revision $3 of repository $2 in the hub cache $1 out of the stack's hands: removed when the
# record says the stack downloaded it; otherwise left in place, less the stack's manifest of it.
own_release_hf_revision() {
  local cache=$1 repo=$2 rev=$3 dir
  dir="$cache/models--${repo/\//--}"
  own_recorded "hf-revision $cache $repo $rev" || own_recorded_kind=""
  if [ "$own_recorded_kind" = made ]; then
    own_remove_hf_revision "$cache" "$repo" "$rev"
  else
    rm -f "$dir/.vllm-workstation-manifest-$rev.json" "$dir/.vllm-workstation-manifest-$rev.json.part"
    if [ -d "$dir/snapshots/$rev" ]; then echo "leaving $dir/snapshots/$rev: vllm-workstation did not download it" >&2; fi
  fi
  own_forget "hf-revision $cache $repo $rev"
}

# Releases each revision of repository $2 in the hub cache $1 that the record holds, but those named
# after them (the ones kept). Each revision's manifest goes with it; the kept ones' stay.
own_prune_hf_revisions() {
  local cache=$1 repo=$2 rev k keep revs
  shift 2
  own_hf_revisions_of "$cache" "$repo"
  revs=("${own_hf_revisions_found[@]}")
  for rev in "${revs[@]}"; do
    keep=no
    for k in "$@"; do if [ "$rev" = "$k" ]; then keep=yes; fi; done
    [ "$keep" = no ] || continue
    own_release_hf_revision "$cache" "$repo" "$rev"
  done
}
