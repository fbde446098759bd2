# shellcheck shell=bash
# The service's probe: the sha256 of each file it writes, the secrets file's mode and owner, the unit's
# state, the unit's User= and Group= (without them the next start fails, 217/USER), and the install the
# venv path points at (after a switch that rolled back, the one before).

if [ -f @UNIT_PATH@ ]; then echo "unit=$(sha256sum @UNIT_PATH@ | cut -c1-64)"; else echo "unit=missing"; fi
if [ -f @CONFIG_PATH@ ]; then echo "config=$(sha256sum @CONFIG_PATH@ | cut -c1-64)"; else echo "config=missing"; fi
if [ -f @ENV_PATH@ ]; then echo "env=$(sha256sum @ENV_PATH@ | cut -c1-64)"; else echo "env=missing"; fi
if [ -f @SECRETS_PATH@ ]; then echo "secrets=$(stat -c '%a %U' @SECRETS_PATH@)"; else echo secrets=none; fi
echo "active=$(systemctl is-active @UNIT_NAME@ 2>/dev/null || true)"
echo "enabled=$(systemctl is-enabled @UNIT_NAME@ 2>/dev/null || true)"
if getent passwd @USER@ >/dev/null; then echo user=present; else echo user=missing; fi
if getent group @USER@ >/dev/null; then echo group=present; else echo group=missing; fi
if [ -f @AUTH_MODULE_PATH@ ]; then echo "auth-module=$(sha256sum @AUTH_MODULE_PATH@ | cut -c1-64)"; else echo "auth-module=missing"; fi
echo "link=$(readlink @VENV_PATH@ || echo none)"
