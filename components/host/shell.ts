// Small pure helpers for the shell scripts the components render. Scripts run under `set -euo pipefail`
// as root on the workstation (host/connection.ts).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

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
 * Writes a file atomically (components/pieces/assets/write_file.sh), so a killed run never leaves a half-written
 * file in place. The content travels in a quoted heredoc whose marker it cannot hold: no expansion happens.
 */
export function writeFile(path: string, content: string, mode = "0644", owner = "root:root"): string {
    return fillFragment("write_file.sh", {
        PATH: q(path),
        MARKER: `VLLM_WS_EOF_${sha256(content).slice(0, 12)}`,
        CONTENT: content.endsWith("\n") ? content.slice(0, -1) : content,
        MODE: mode,
        OWNER: owner,
    });
}

/** Probe fragment: prints `<label>=<sha256 of the file>` or `<label>=missing`. */
export function probeFile(label: string, path: string): string {
    return `if [ -f ${q(path)} ]; then echo "${label}=$(sha256sum ${q(path)} | cut -c1-64)"; else echo "${label}=missing"; fi`;
}

/** The sha256 of the file writeFile makes from `content` (which always ends in a newline). */
export function contentSha(content: string): string {
    return sha256(content.endsWith("\n") ? content : content + "\n");
}

/** What probeFile prints when the file holds exactly `content`. */
export function expectFile(label: string, content: string): string {
    return `${label}=${contentSha(content)}`;
}

/** Progress lines go to stderr: the provider shows them in `pulumi up`. */
export function say(message: string): string {
    return `echo ${q(message)} >&2`;
}

/** Before writing `path` with `content` outside a directory the stack owns: takes it, or refuses another file there (own.sh). */
export function ownFile(path: string, content: string): string {
    return `own_file ${q(path)} ${q(contentSha(content))}`;
}

/** The ownership functions (own_dir, own_file, own_release_dir, ...) every script on the box runs with. */
export function ownershipLibrary(): string {
    return asset("own.sh");
}

const assets = new Map<string, string>();

/**
 * A file of components/pieces/assets: scripts in their own language, read by the code that renders them. From
 * dist/components (the compiled program and provider steps) or components (the sources) alike.
 */
export function asset(name: string): string {
    let text = assets.get(name);
    if (text === undefined) {
        text = fs.readFileSync(assetPath(name), "utf8");
        assets.set(name, text);
    }
    return text;
}

/**
 * The path of a file of components/pieces/assets, found from the compiled module (under dist/) or the
 * source alike: the assets are never copied into dist/, the checkout's are read.
 */
export function assetPath(name: string): string {
    for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
        const file = path.join(d, "components", "pieces", "assets", name);
        if (fs.existsSync(file)) return file;
    }
    throw new Error(`components/pieces/assets/${name} not found above ${__dirname}`);
}

/**
 * A template of components/pieces/assets with each `@NAME@` filled in one pass, so a value is never searched for
 * @NAME@ markers itself. Values go in as they are: what comes from the config must already be quoted (q).
 */
export function fillAsset(name: string, values: Readonly<Record<string, string>>): string {
    return fill(name, asset(name), values);
}

/**
 * A fragment of a step's script from a template of components/pieces/assets, filled as fillAsset fills it,
 * without the template's header (its leading comment lines, and the empty line after them if there is
 * one) and without its final newline. The header tells the template's readers what it does and why; a
 * step's script is part of the step's state, so it stays out of the text. Steps join their fragments
 * with newlines.
 */
export function fillFragment(name: string, values: Readonly<Record<string, string>>): string {
    return fill(name, asset(name).replace(/^(#[^\n]*\n)+\n?/, ""), values).replace(/\n$/, "");
}

function fill(name: string, template: string, values: Readonly<Record<string, string>>): string {
    const unused = new Set(Object.keys(values));
    const text = template.replace(/@([A-Z][A-Z0-9_]*)@/g, (_, key: string) => {
        if (!Object.prototype.hasOwnProperty.call(values, key)) throw new Error(`components/pieces/assets/${name}: no value for @${key}@`);
        unused.delete(key);
        return values[key];
    });
    if (unused.size > 0) throw new Error(`components/pieces/assets/${name}: no @NAME@ marker for ${[...unused].join(", ")}`);
    return text;
}
