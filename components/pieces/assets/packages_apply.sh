# shellcheck shell=bash
# Installs the locked packages into an install of their own: a venv per install key (the lock, the
# Python and uv versions), under the tools directory, beside the install that runs now. The venv path
# users know is a symbolic link to the install in service; the service's step switches it (and can
# switch it back), so a new install never replaces the packages the service runs on.
@INDEXES@
home=@HOME@
cache=@CACHE@
uv_bin=@UV@
venv=@VENV@
installs=@INSTALLS@
install=@INSTALL@
python_version=@PYTHON_VERSION@
requirements=@REQUIREMENTS@
# Empty: no shared lock, resolve on this box once per request.
lock_text=@LOCK_TEXT@
index_strategy=@INDEX_STRATEGY@
hint=@HINT@
# yes: this step points the venv link at its install itself (nothing health-checks a switch here).
switch=@SWITCH@

# Written into an install once its packages are all in: an install without it never completed. (A
# package someone added to a complete install by hand does not make it incomplete.)
complete=.vllm-workstation-complete

uv() { UV_CACHE_DIR="$cache" "$uv_bin" "$@"; }
python_of() { "$1/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }
# Lines name==version, normalized as pip does, sorted: what `uv pip freeze` prints for a lock.
pins() { grep -E '^[A-Za-z0-9._-]+==' | sed 's/[ ;\\].*//' | tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/-/g' | sort; }
# Whether the venv $1 holds exactly the pins of lock $2 (no network, no hashing).
as_locked() {
  [ -x "$1/bin/python" ] && [ -f "$2" ] && diff -q <(pins <"$2") <(uv pip freeze --python "$1/bin/python" 2>/dev/null | pins) >/dev/null
}

own_dir "$home"
own_dir "$cache"
own_dir "$installs"
# The venv path: a link the stack makes (claimed first: refused if someone else's files are there).
own_claim_dir "$venv"
# The install, whatever it holds: a venv someone made at its path is never synced or switched to.
own_claim_dir "$install"

# An earlier release installed into the venv path itself. That venv moves among the installs, as the
# install of this key when it holds exactly this lock, else as the one to roll back to. Its link is made
# first, beside the venv path, and renamed into place right after the move: a run cut off between the
# two leaves that link, and the next run finishes the move from it (rather than pointing the venv path
# at a new install that no health check has passed, with nothing left to go back to).
moving="$venv.vllm-ws-switch"
# The scripts in a moved venv's bin/ name their interpreter by path, so they follow it to $1: the path
# where it ends a word of its own (not "$venv-tools"), in shebangs and activate scripts. Run again on
# the same venv, it changes nothing.
follow() {
  local from_re
  from_re=$(printf '%s' "$venv" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  { grep -lIF -- "$venv" "$1"/bin/* 2>/dev/null || true; } | while read -r f; do sed -i -E "s#${from_re}([/'\"[:space:]]|\$)#${1}\\1#g" "$f"; done
}
if [ ! -e "$venv" ] && [ ! -L "$venv" ] && [ -L "$moving" ]; then
  to=$(readlink "$moving")
  case $to in
    "$installs"/*)
      if [ -d "$to" ] && [ "$(own_kind "$to")" = made ]; then
        echo "finishing the move of the venv $venv to $to, where $venv now points" >&2
        follow "$to"
        mv -T "$moving" "$venv"
      fi
      ;;
  esac
fi
if [ -d "$venv" ] && [ ! -L "$venv" ]; then
  if [ -f "$venv/pyvenv.cfg" ]; then
    earlier_lock=$(mktemp)
    if [ -n "$lock_text" ]; then
      printf '%s' "$lock_text" >"$earlier_lock"
    elif [ -f "$home/requirements.lock" ] && [ "$(cat "$home/requirements.in" 2>/dev/null || true)" = "$requirements" ]; then
      cp "$home/requirements.lock" "$earlier_lock"
    fi
    if [ "$(python_of "$venv")" = "$python_version" ] && as_locked "$venv" "$earlier_lock"; then to=$install; else to="$installs/earlier"; fi
    if [ -e "$to" ] || [ -L "$to" ]; then
      # Only an install the stack made gives way to it: anything else there is someone's.
      if [ "$(own_kind "$to")" != made ]; then
        rm -f "$earlier_lock"
        # shellcheck disable=SC2012
        names=$(ls -A "$to" 2>/dev/null | head -n 4 | tr '\n' ' ')
        own_refuse "$to" "the venv an earlier release made at $venv moves there, and it holds ${names% }"
      fi
      own_remove_tree "$to"
    fi
    echo "moving the venv $venv to $to, where $venv now points" >&2
    # What the venv takes with it is written while it is still in place. It served: complete, whatever
    # it holds, with what it was installed from, so that it counts as a complete install to go back to.
    : >"$venv/$complete"
    if [ "$to" = "$install" ] && [ -s "$earlier_lock" ]; then
      cp "$earlier_lock" "$venv/requirements.lock"
      printf '%s' "$requirements" >"$venv/requirements.in"
    elif [ -f "$home/requirements.lock" ]; then
      cp "$home/requirements.lock" "$venv/requirements.lock"
      if [ -f "$home/requirements.in" ]; then cp "$home/requirements.in" "$venv/requirements.in"; fi
    fi
    # Noted first: a run cut off right after the move must leave the moved venv the stack's own.
    own_note made "$to"
    if [ -e "$moving" ] || [ -L "$moving" ]; then rm -f "$moving"; fi
    ln -s "$to" "$moving"
    mv -T "$venv" "$to"
    follow "$to"
    mv -T "$moving" "$venv"
    rm -f "$earlier_lock" "$home/requirements.lock" "$home/requirements.in"
  else
    # An empty directory (a venv that was never made): the link takes its place below.
    rmdir "$venv"
  fi
fi

if [ ! -x "$install/bin/python" ] || [ "$(python_of "$install")" != "$python_version" ]; then
  echo "creating the venv $install with Python $python_version" >&2
  # --clear: an install of another Python the stack made here before is replaced, in place.
  uv venv --clear --python "$python_version" "$install"
  made_now=yes
fi

# A first install has no link yet: it points at this install from the start (nothing runs on it yet;
# the model download will).
if [ ! -e "$venv" ] && [ ! -L "$venv" ]; then own_link "$venv" "$install"; fi

req=$(mktemp)
printf '%s' "$requirements" >"$req"
if [ -n "$lock_text" ]; then
  if ! printf '%s' "$lock_text" | cmp -s - "$install/requirements.lock"; then
    printf '%s' "$lock_text" >"$install/requirements.lock.part"
    mv -f "$install/requirements.lock.part" "$install/requirements.lock"
  fi
elif [ ! -f "$install/requirements.lock" ] || ! cmp -s "$install/requirements.in" "$req"; then
  # No shared lock: resolve once on this box and keep it; a changed request resolves again.
  echo "resolving the package set (uv pip compile --generate-hashes)" >&2
  uv pip compile "$req" --generate-hashes --python "$install/bin/python" --index-strategy "$index_strategy" -o "$install/requirements.lock.part" ||
    { rm -f "$install/requirements.lock.part"; echo "$hint" >&2; exit 1; }
  mv -f "$install/requirements.lock.part" "$install/requirements.lock"
fi
mv -f "$req" "$install/requirements.in"
chmod 0644 "$install/requirements.in" "$install/requirements.lock"

# Installed already (an install kept to go back to): nothing to fetch, nothing asked of the index.
if [ "${made_now:-no}" = yes ] || ! as_locked "$install" "$install/requirements.lock"; then
  echo "installing the locked packages into $install" >&2
  rm -f "$install/$complete"
  # --compile-bytecode: the service runs as server.user under ProtectSystem=strict, so it cannot
  # write __pycache__ into this root-owned venv; without .pyc files every start of vLLM would
  # compile vllm, torch and transformers from source again (the hf download too, once).
  uv pip sync --require-hashes --compile-bytecode --python "$install/bin/python" --index-strategy "$index_strategy" "$install/requirements.lock" ||
    { echo "$hint" >&2; exit 1; }
fi
: >"$install/$complete"

earlier=$(readlink "$venv" || true)
if [ "$switch" = yes ]; then
  own_link "$venv" "$install"
  own_prune_dirs "$installs" "$install" "$earlier"
elif [ "$earlier" != "$install" ] && [ ! -e "$earlier/$complete" ] && ! as_locked "$earlier" "$earlier/requirements.lock"; then
  # The link is at an install that never completed (a first install that failed, say): nothing runs on
  # it, and the model download needs a complete one.
  own_link "$venv" "$install"
fi
