# shellcheck shell=bash
# Removes the vLLM service: the unit, its files, the set kept to go back to, its caches and account.
unit_name=vllm-workstation.service
unit_path=@UNIT_PATH@
python_dir=@PYTHON_DIR@
etc_dir=@ETC_DIR@
cache_home=@CACHE_HOME@
user=@USER@
systemctl disable --now "$unit_name" 2>/dev/null || true
own_remove_file "$unit_path"
rm -f @FILES@
rm -rf "$etc_dir/previous" "$etc_dir/previous.next" "$etc_dir/switch.pending"
own_release_dir "$python_dir"
systemctl daemon-reload
own_remove_tree "$cache_home"
own_remove_user "$user" "$etc_dir"
