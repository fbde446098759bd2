// Small pure helpers for the shell scripts the components render. Scripts run under `set -euo pipefail`
// as root on the workstation (host.ts).
import * as crypto from "crypto";

/** Single-quotes a value for bash. */
export function q(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function sha256(text: string): string {
    return crypto.createHash("sha256").update(text).digest("hex");
}

/** The header every file the stack writes starts with, so a person who opens it knows who owns it. */
export function managedHeader(comment = "#"): string {
    return `${comment} Managed by vllm-workstation (Pulumi). Local edits show as drift and are undone by \`pulumi up\`.\n`;
}

/**
 * Writes a file atomically (temp file in the same directory, then rename), so a killed run never leaves
 * a half-written file in place. The content travels in a quoted heredoc: no expansion happens.
 */
export function writeFile(path: string, content: string, mode = "0644", owner = "root:root"): string {
    const marker = `VLLM_WS_EOF_${sha256(content).slice(0, 12)}`;
    return [
        `install -d -m 0755 "$(dirname ${q(path)})"`,
        `tmp=$(mktemp ${q(path)}.XXXXXX)`,
        `cat >"$tmp" <<'${marker}'`,
        content.endsWith("\n") ? content.slice(0, -1) : content,
        marker,
        `chmod ${mode} "$tmp" && chown ${owner} "$tmp" && mv -f "$tmp" ${q(path)}`,
    ].join("\n");
}

/** Probe fragment: prints `<label>=<sha256 of the file>` or `<label>=missing`. */
export function probeFile(label: string, path: string): string {
    return `if [ -f ${q(path)} ]; then echo "${label}=$(sha256sum ${q(path)} | cut -c1-64)"; else echo "${label}=missing"; fi`;
}

/** What probeFile prints when the file holds exactly `content`. */
export function expectFile(label: string, content: string): string {
    return `${label}=${sha256(content.endsWith("\n") ? content : content + "\n")}`;
}

/** Progress lines go to stderr: the provider shows them in `pulumi up`. */
export function say(message: string): string {
    return `echo ${q(message)} >&2`;
}

/** The file makeOwnedDir leaves in each directory it made. */
export const ownedDirMarker = ".vllm-workstation-made-this";
const dirMarker = ownedDirMarker;

/**
 * Creates `dir` and any missing parent, leaving a marker in each directory it made, so that
 * removeOwnedDir takes away exactly those and never a directory that was there before.
 */
export function makeOwnedDir(dir: string): string {
    return [
        `d=${q(dir)}; made=()`,
        `while [ ! -e "$d" ]; do made+=("$d"); d=$(dirname "$d"); done`,
        `install -d -m 0755 ${q(dir)}`,
        `for d in "\${made[@]}"; do touch "$d/${dirMarker}"; done`,
    ].join("\n");
}

/** Removes `dir` and its parents, as far as makeOwnedDir made them and they hold nothing else. */
export function removeOwnedDir(dir: string): string {
    return [
        `d=${q(dir)}`,
        `while [ -f "$d/${dirMarker}" ] && [ "$(ls -A "$d")" = ${q(dirMarker)} ]; do rm -f "$d/${dirMarker}"; rmdir "$d"; d=$(dirname "$d"); done`,
    ].join("\n");
}
