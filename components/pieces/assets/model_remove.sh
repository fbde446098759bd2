# shellcheck shell=bash
# The model's remove: only the pinned revision (another revision or repository in the same cache
# stays), and each other revision the record holds (the model's step notes each it downloads: the one
# kept for the way back, one a rollback left), each only if the stack downloaded it; then the tiktoken
# files, and the two directories as own.sh releases them.

own_release_hf_revision @CACHE_DIR@ @REPO@ @REVISION@
own_prune_hf_revisions @CACHE_DIR@ @REPO@
# With the .part file a fetch cut off midway left of each.
rm -f @TIKTOKEN_FILES@
own_release_dir @TIKTOKEN_DIR@
own_release_dir @CACHE_DIR@
