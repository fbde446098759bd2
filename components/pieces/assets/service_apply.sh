# shellcheck shell=bash
# Converges the vLLM service: its account, its files, the venv link, and a (re)start that must pass the
# health check. A switch from a set that served (another install, model revision or config) keeps that
# set; when the new one does not become healthy, the service goes back to it and the step fails.

# api-key: @API_KEY_ID@
unit_name=vllm-workstation.service
unit_path=@UNIT_PATH@
config_path=@CONFIG_PATH@
env_path=@ENV_PATH@
cuda_env_path=@CUDA_ENV_PATH@
served_cuda_path=@SERVED_CUDA_PATH@
secrets_path=@SECRETS_PATH@
auth_path=@AUTH_PATH@
runs_on_path=@RUNS_ON_PATH@
serves_path=@SERVES_PATH@
python_dir=@PYTHON_DIR@
etc_dir=@ETC_DIR@
cache_home=@CACHE_HOME@
user=@USER@
venv=@VENV@
installs=@INSTALLS@
install=@INSTALL@
hf_cache=@HF_CACHE@
model_repo=@MODEL_REPO@
revision=@REVISION@
base=@BASE@
served_name=@SERVED_NAME@
health_timeout=@HEALTH_TIMEOUT@
rolled_back_exit=@ROLLED_BACK_EXIT@
unit_text=@UNIT_TEXT@
unit_sha=@UNIT_SHA@
config_text=@CONFIG_TEXT@
env_text=@ENV_TEXT@
auth_text=@AUTH_TEXT@
runs_on_text=@RUNS_ON_TEXT@
serves_text=@SERVES_TEXT@
# The middleware a rollback's vllm.yaml loads when a key is in force (match_key, in the switch's functions).
# shellcheck disable=SC2034
auth_middleware=@AUTH_MIDDLEWARE@
previous="$etc_dir/previous"
# Why the health check failed (wait_healthy sets it).
why=""
# The unit's text before and after its put_file (read_text sets them): a change reloads systemd.
unit_before="" unit_after=""
# What the service runs on before and after this run's writes (served_state sets them): a change restarts it.
before="" after=""

@SWITCH_LIB@

# Takes away a save this run does not keep: renamed first, as a run cut off while rm deletes it would
# leave part of a save, which the next run would take for the way back.
drop_save() {
  if [ -e "$previous.next" ]; then mv -T "$previous.next" "$previous.gone"; fi
  if [ -e "$previous.gone" ]; then rm -rf "$previous.gone"; fi
}

# Whether the service serves now, on what is written now: a set worth going back to. The look (systemd,
# then /health and /v1/models) goes out first, in the background, as curl's start is most of its cost;
# the script reads its record and the files meanwhile, and has the answer before it changes anything.
serving_now >/dev/null 2>&1 &
looking=$!

# Made here, before systemd's CacheDirectory= would make it, so that the record says whether the stack
# made it or it was there before (then left in place).
own_dir "$cache_home"
own_dir "$etc_dir"
# Root writes the API key, the unit and the set to go back to (which it runs) into these: a directory
# someone else owns or may write into (one adopted empty, say) would hand them the key or a unit of
# theirs to run. The same stat gives put_file the files' modes and owners.
stat_files "$etc_dir" "$python_dir" "$previous" "$secrets_path" "$auth_path" "$runs_on_path" "$serves_path" "$config_path" "$env_path" "$unit_path"
for d in "$etc_dir" "$python_dir" "$previous"; do
  [ -n "${file_modes[$d]-}" ] || continue
  mode=${file_modes[$d]%% *}
  case "${file_modes[$d]#* }" in
    root:*) if (((8#$mode & 8#022) == 0)); then continue; fi ;;
  esac
  echo "refusing to use $d: root writes the API key and the service's files there, and it belongs to ${file_modes[$d]#* } with mode $mode. Make it root's and writable by root only (chown root:root $d; chmod go-w $d), or remove it if it is not yours, then run pulumi up again." >&2
  exit 1
done
# A user made again (deleted by hand) has a new uid: the running process must not keep the old one.
uid_before=$(id -u "$user" 2>/dev/null || echo none)
# The user's group and group video in one look: getent prints each group it finds, and fails when one
# is missing.
user_group=no video=""
groups_found=$(getent group "$user" video || true)
while IFS= read -r line; do
  case "$line" in "$user":*) user_group=yes ;; esac
  case "$line" in video:*) video=$line ;; esac
done <<<"$groups_found"
# A user or group made here is recorded, so that remove deletes only what the stack made. With both
# there (the uid above, the group just seen), own_user would make neither: its look is spared.
if [ "$uid_before" = none ] || [ "$user_group" = no ]; then
  own_user "$user" "$cache_home"
fi
# WSL2 exposes the GPU as /dev/dxg; native Linux as /dev/nvidia*, group video on some distributions.
# Its members (getent's last field) name the user once added; id also counts a primary group.
if [ -n "$video" ]; then
  case ",${video##*:}," in
    *",$user,"*) ;;
    *) case " $(id -nG "$user") " in *" video "*) ;; *) usermod -aG video "$user" || true ;; esac ;;
  esac
fi
own_dir "$python_dir"

link_before=$(readlink "$venv" 2>/dev/null || true)
served_state before "$link_before"
read_text unit_before "$unit_path"
# A switch leaves this mark until its health check has decided: found at the start, an earlier run was
# cut off mid-switch, so the files may be the new set while the old process still runs. Then what that
# run saved stays the set to go back to, and the service restarts on what is written now.
# The mark says "previous" only once this run has saved, in previous/, the set that served when it
# started: a run that saved nothing (nothing served, or nothing changed) leaves previous/ as an older
# switch left it, which is not what served and must not be gone back to.
pending="$etc_dir/switch.pending"
way_back=""
if [ -e "$pending" ]; then
  interrupted=yes
  read -r way_back <"$pending" || true
  wait "$looking" || true
else
  interrupted=no
  # What serves now is the set to go back to, if the new one fails; kept until the next switch. Copied
  # while the look finishes, and dropped if it found nothing serving.
  save_served "$previous.next"
  if ! wait "$looking"; then drop_save; fi
  : >"$pending"
fi
put_file "$auth_path" "$auth_text" 0644
put_file "$runs_on_path" "$runs_on_text" 0644
put_file "$serves_path" "$serves_text" 0644
put_file "$config_path" "$config_text" 0644
put_file "$env_path" "$env_text" 0644
if [ -n "${VLLM_WS_API_KEY:-}" ]; then
  # Written only when it does not hold the key already, root's and root-only (read in memory: no process).
  read_text secrets_now "$secrets_path"
  if [ "$secrets_now" != "VLLM_API_KEY=$VLLM_WS_API_KEY"$'\n' ] || [ "${file_modes[$secrets_path]-}" != "600 root:root" ] || [ -L "$secrets_path" ]; then
    # A new file of this run's (noclobber), never one found there: a link planted at that name would take the key.
    if [ -e "$secrets_path.part" ] || [ -L "$secrets_path.part" ]; then rm -f "$secrets_path.part"; fi
    (umask 077; set -C; printf 'VLLM_API_KEY=%s\n' "$VLLM_WS_API_KEY" >"$secrets_path.part")
    # Explicitly: a default ACL of the directory, not the umask, would decide the mode of a new file.
    chmod 0600 "$secrets_path.part"
    chown root:root "$secrets_path.part"
    mv -f "$secrets_path.part" "$secrets_path"
  fi
  secrets_now=""
elif [ -e "$secrets_path" ] || [ -L "$secrets_path" ]; then rm -f "$secrets_path"; fi
own_file "$unit_path" "$unit_sha"
put_file "$unit_path" "$unit_text" 0644
own_link "$venv" "$install"
# own_link has just pointed it at $install.
served_state after "$install"

can_roll_back=no
# A save found beside the mark is the cut-off run's, of what served when it started: the way back, even
# when that run had written every file before it was cut off (then nothing differs now).
if [ -d "$previous.next" ] && { [ "$before" != "$after" ] || [ "$interrupted" = yes ]; }; then
  # The mark first: a run cut off before the move leaves previous.next, which this branch takes next time.
  echo previous >"$pending"
  if [ -e "$previous" ]; then rm -rf "$previous"; fi
  mv -T "$previous.next" "$previous"
  can_roll_back=yes
elif [ "$interrupted" = yes ] && [ "$way_back" = previous ] && [ -d "$previous" ]; then
  can_roll_back=yes
fi
# Nothing this run wrote changes what the service runs on: there is no switch to finish or undo, and a run
# cut off from here on must not leave the next one a mark without a way back.
if [ "$before" = "$after" ] && [ "$interrupted" = no ]; then rm -f "$pending"; fi
drop_save

# The install and model revision of the set to go back to. A set an earlier release wrote has no serves
# file: its unit names the snapshot it served (of this repository in this cache), a revision the record
# does not hold yet; noted now, before the health check, so that destroy removes it after a rollback too.
kept_install=""
if [ -f "$previous/link" ]; then read -r kept_install <"$previous/link" || true; fi
serves_of kept_revision "$previous/${serves_path##*/}" revision
if [ -z "$kept_revision" ] && [ -f "$previous/${unit_path##*/}" ]; then
  kept_revision=$(sed -n "s|^ExecStart=.* $hf_cache/models--${model_repo/\//--}/snapshots/\([0-9a-f]\{40\}\) .*|\1|p" "$previous/${unit_path##*/}")
  if [ -n "$kept_revision" ]; then own_note_hf_revision "$hf_cache" "$model_repo" "$kept_revision"; fi
fi

# The unit changes with the model revision or the account, not with the packages (it runs the venv
# path's vllm): a switch of packages needs no reload of systemd.
read_text unit_after "$unit_path"
if [ "$unit_before" != "$unit_after" ]; then systemctl daemon-reload; fi
# Enabled already when the link `systemctl enable` makes for the unit's WantedBy= leads to the unit file
# written above, and no runtime unit of that name shadows it: bash sees that without a round trip to systemd.
if ! { [[ $unit_text == *$'\n'"WantedBy=multi-user.target"$'\n'* ]] && [ -f "$unit_path" ] && [ ! -L "$unit_path" ] &&
  [ "/etc/systemd/system/multi-user.target.wants/$unit_name" -ef "$unit_path" ] &&
  [ ! -e "/run/systemd/system/$unit_name" ] && [ ! -L "/run/systemd/system/$unit_name" ]; }; then
  systemctl is-enabled --quiet "$unit_name" 2>/dev/null || systemctl enable "$unit_name" 2>/dev/null
fi
if [ "$before" != "$after" ] || [ "$interrupted" = yes ] || [ "$uid_before" != "$(id -u "$user")" ] || ! systemctl is-active --quiet "$unit_name"; then
  echo "(re)starting vllm-workstation.service on $install" >&2
  systemctl restart "$unit_name"
fi
echo "waiting for $base/health (up to ${health_timeout}s: loading the weights takes minutes)" >&2
if ! wait_healthy; then
  echo "$why on $install with $model_repo@$revision; its last log lines:" >&2
  last_log 10 >&2
  if [ "$can_roll_back" != yes ]; then
    rm -f "$pending"
    echo "Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
    exit 1
  fi
  restore_served "$previous"
  match_key
  # The set put back answers on its own address, under its own name, with the key in force now.
  settings_of "$config_path" "$secrets_path"
  base=${set_base:-$base} served_name=${set_name:-$served_name}
  systemctl daemon-reload
  systemctl restart "$unit_name"
  rm -f "$pending"
  if ! wait_healthy; then
    echo "rolled back to the previous packages (${kept_install:-$(readlink "$venv")}), model revision (${kept_revision:-unknown}) and config, but the service did not become healthy on them either: $why" >&2
    exit 1
  fi
  echo "rolled back: vllm-workstation.service serves again on the previous packages (${kept_install:-$(readlink "$venv")}), model revision (${kept_revision:-unknown}) and config. Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2
  exit "$rolled_back_exit"
fi

# The CUDA environment the service passed its health check on, for the next switch to go back to; kept
# before the mark goes, so that a run cut off between the two never leaves an older copy beside a newer set.
cuda_now="" cuda_served=""
read_text cuda_now "$cuda_env_path"
read_text cuda_served "$served_cuda_path"
if [ -f "$cuda_env_path" ] && [ "$cuda_now" != "$cuda_served" ]; then
  cp -p "$cuda_env_path" "$served_cuda_path.vllm-ws-new"
  mv -f "$served_cuda_path.vllm-ws-new" "$served_cuda_path"
fi
rm -f "$pending"
# Serving on the new set: the revision is noted as the stack's, and only the set in service and the
# one before it stay on disk (installs, model revisions).
own_note_hf_revision "$hf_cache" "$model_repo" "$revision"
own_prune_dirs "$installs" "$install" "$kept_install"
own_prune_hf_revisions "$hf_cache" "$model_repo" "$revision" "$kept_revision"
echo "serving $served_name at $base/v1" >&2
