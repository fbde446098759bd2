# shellcheck shell=bash
# Removes what the packages step made: the venv link, every install the stack made, the uv cache, and
# the files an earlier release kept beside uv.
home=@HOME@
cache=@CACHE@
venv=@VENV@
installs=@INSTALLS@
if [ -L "$venv" ]; then own_remove_link "$venv"; else own_remove_tree "$venv"; fi
if [ -d "$installs" ]; then
  own_prune_dirs "$installs"
  own_release_dir "$installs"
fi
own_remove_tree "$cache"
rm -f "$home/requirements.lock" "$home/requirements.in"
own_release_dir "$home"
