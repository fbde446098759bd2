# shellcheck shell=bash
# Removes what the packages step made: the venv link, every install the stack made, the uv cache, and
# the files an earlier release kept beside uv.
home=@HOME@
cache=@CACHE@
venv=@VENV@
installs=@INSTALLS@
# The link a switch cut off midway left beside the venv path (own_link's, or the move of an earlier
# release's venv): the stack's while the venv path is, and only a link (first, so that a destroy cut
# off after the venv path is forgotten has removed it already).
if [ -L "$venv.vllm-ws-switch" ] && [ -n "$(own_kind "$venv")" ]; then rm -f "$venv.vllm-ws-switch"; fi
if [ -L "$venv" ]; then own_remove_link "$venv"; else own_remove_tree "$venv"; fi
if [ -d "$installs" ]; then
  own_prune_dirs "$installs"
  own_release_dir "$installs"
fi
own_remove_tree "$cache"
rm -f "$home/requirements.lock" "$home/requirements.in"
own_release_dir "$home"
