# shellcheck shell=bash
# Removes the CUDA environment. The service's files are gone by now: destroy removes the service before
# the environment it uses.

own_remove_file @PROFILE@
rm -f @SERVICE_ENV@
own_release_dir @ETC_DIR@
