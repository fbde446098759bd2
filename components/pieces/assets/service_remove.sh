# shellcheck shell=bash
# Removes the vLLM service: the unit, its files, the set kept to go back to, its caches and account.
unit_name=vllm-workstation.service
unit_path=@UNIT_PATH@
python_dir=@PYTHON_DIR@
etc_dir=@ETC_DIR@
cache_home=@CACHE_HOME@
user=@USER@
venv=@VENV@
secrets_path=@SECRETS_PATH@
systemctl disable --now "$unit_name" 2>/dev/null || true
own_remove_file "$unit_path"
rm -f @FILES@
# What a killed write leaves beside each file: the new text before its rename (.vllm-ws-new), a file put
# back by a rollback (.vllm-ws-back), the key before its rename (.part).
for f in "$unit_path" @FILES@ @CUDA_ENV_PATH@; do
  rm -f "$f.vllm-ws-new" "$f.vllm-ws-back"
done
rm -f "$secrets_path.part"
# The venv link's next target before its rename; the link itself is the packages step's to remove.
if [ -L "$venv.vllm-ws-switch" ]; then rm -f "$venv.vllm-ws-switch"; fi
rm -rf "$etc_dir/previous" "$etc_dir/previous.next" "$etc_dir/previous.gone" "$etc_dir/switch.pending"
own_release_dir "$python_dir"
systemctl daemon-reload
own_remove_tree "$cache_home"
own_remove_user "$user" "$etc_dir"
