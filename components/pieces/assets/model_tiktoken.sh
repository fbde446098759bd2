# shellcheck shell=bash disable=SC2154,SC2140
# One tiktoken encoding of the model's apply (model_apply.sh, which sets tiktoken_url): fetched unless
# the file is there with its sha256, into a .part file that takes its place only once its sum matches.
# (For shellcheck, which reads @FILE@ as a bare word between two double-quoted strings: it is filled
# with a single-quoted one, and the rendered script is linted as such.)

if ! echo @SUM_LINE@ | sha256sum -c --status 2>/dev/null; then
  echo @FETCHING@ >&2
  curl -fsSL --retry 3 -o @PART@ -K - <<<"url = \"$tiktoken_url/"@FILE@"\""
  echo @PART_SUM_LINE@ | sha256sum -c --status || { echo @MISMATCH@ >&2; rm -f @PART@; exit 1; }
  mv -f @PART@ @DEST@
fi
