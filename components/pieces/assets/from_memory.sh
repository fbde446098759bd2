# shellcheck shell=bash
# What follows is read by one cat and run from memory: bash -s reads its input one byte at a time.
eval "$(cat)"
