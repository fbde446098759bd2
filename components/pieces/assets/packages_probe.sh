# shellcheck shell=bash
# What the packages step's install looks like: its Python, request, lock and installed packages.

install=@INSTALL@
uv_bin=@UV@
# yes: the lock is given (its sha256 is expected); no: made on the box (only its presence is).
shared_lock=@SHARED_LOCK@
pins() { grep -E '^[A-Za-z0-9._-]+==' | sed 's/[ ;\\].*//' | tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/-/g' | sort; }
echo "python=$("$install/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo missing)"
echo "request=$(sha256sum "$install/requirements.in" 2>/dev/null | cut -c1-64 || echo missing)"
if [ "$shared_lock" = yes ]; then
  echo "lock=$(sha256sum "$install/requirements.lock" 2>/dev/null | cut -c1-64 || echo missing)"
elif [ -f "$install/requirements.lock" ]; then echo lock=present; else echo lock=missing; fi
# Cheap: compares the install's versions with the lock's pins; no network, no hashing.
if [ -x "$install/bin/python" ] && [ -f "$install/requirements.lock" ] &&
  diff -q <(pins <"$install/requirements.lock") <("$uv_bin" pip freeze --python "$install/bin/python" 2>/dev/null | pins) >/dev/null; then
  echo packages=as-locked
else echo packages=drifted; fi
