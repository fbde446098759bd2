# shellcheck shell=bash
# One piece's probe in the batch that runs every probe in one round trip (observe.ts): in a bash of its
# own, with the options HostState's read runs it with, so that one probe's failure or `exit` cannot stop
# the others; its output is fenced by @START@ and @END@ with the probe's exit status.

printf '%s\n' @START@
rc=0; bash -euo pipefail -c @PROBE@ || rc=$?
printf '\n%s%s@@\n' @END@ "$rc"
