# shellcheck shell=bash
# A file written atomically: a temp file in the same directory, then a rename, so a killed run never
# leaves a half-written file in place. The content travels in a quoted heredoc: nothing is expanded.

install -d -m 0755 "$(dirname @PATH@)"
tmp=$(mktemp @PATH@.XXXXXX)
cat >"$tmp" <<'@MARKER@'
@CONTENT@
@MARKER@
chmod @MODE@ "$tmp" && chown @OWNER@ "$tmp" && mv -f "$tmp" @PATH@
