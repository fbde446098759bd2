# shellcheck shell=bash
# uv's remove: the binary (and a download cut off before its rename), then the stack's tools directory
# as own.sh releases it.

rm -f @UV@ @UV@.part
own_release_dir @HOME@
