# shellcheck shell=bash disable=SC2034
# (shellcheck SC2034 is off here: the settings below are read by the functions put in at @CONTAINER_LIB@; the rendered script, which holds them, is checked with it on.)
# The container's remove: only containers the stack made (its label): the one of the name and one kept
# by a switch that was cut off; only images it pulled (its tags, and the marks of pulls a run cut off
# before the tag: claim_pulls; one that was there before stays), and
# the middleware's module only from a directory the stack holds, the directory as own.sh releases it.

name=@NAME@
previous=@PREVIOUS@
label_format=@LABEL_FORMAT@
managed_label=@MANAGED_LABEL@
pulling_label=@PULLING_LABEL@

@CONTAINER_LIB@

need_engine
for c in "$name" "$previous"; do
  case "$(kind_of "$c")" in
    ours) docker rm -f "$c" >/dev/null ;;
    other) echo "leaving the container $c: the stack did not make it" >&2 ;;
  esac
done
claim_pulls
prune_pulled ""
# With the temporary files a run cut off while it wrote the module leaves (mktemp's six characters).
if [ -n "$(own_kind @MODULE_DIR@)" ]; then rm -f @MODULE@ @MODULE@.??????; fi
own_release_dir @MODULE_DIR@
