#!/usr/bin/env bash
# The bench's kill phase, run on the box: kill -9 every process holding the in-flight download (a
# *.incomplete under the model's blobs/) open, then print what was in flight.
# usage: kill_download.sh BLOBS_DIR     prints `pid <pid> <cmdline>` and `file <name> <bytes on disk>` lines
set -euo pipefail
blobs=$1
for p in /proc/[0-9]*; do
  for fd in "$p"/fd/*; do
    case "$(readlink "$fd" 2>/dev/null)" in "$blobs"/*.incomplete) echo "${p#/proc/}"; break;; esac
  done
done | sort -u | while read -r pid; do
  echo "pid $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -c1-200)"
  kill -9 "$pid"
done
for f in "$blobs"/*.incomplete; do [ -e "$f" ] && echo "file $(basename "$f") $(( $(stat -c %b "$f") * 512 ))"; done
true
