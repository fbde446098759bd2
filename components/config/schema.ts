// The one schema of the stack's options. index.ts parses the stack config with it once; components get
// the parsed value, with every default filled, and never default again.
//
// Pulumi config keys are the top-level fields (`vllm-workstation:server`, ...); nested fields are set
// with `pulumi config set --path server.port 8001`. Secrets (apiKey, hfToken) are separate top-level
// keys read with getSecret, so they stay Pulumi secrets from the stack file to the box.
//
// Every string option ends up somewhere that gives characters meaning: a bash script (where the
// renderers single-quote it), a systemd unit or EnvironmentFile, vLLM's YAML, PATH or LD_LIBRARY_PATH,
// an ssh argv or known_hosts line, a Docker API call. Quoting is the renderers' job; the grammar below
// is the second wall: each value is held to the characters its place carries verbatim, so none can
// change the shape of what it is written into even where quoting were forgotten. No value may hold
// whitespace, a newline or another control character (a new line in a unit or env file), a quote or a
// backslash, `$` or a backtick (expansion), `%` (a systemd specifier) or `;` (a command separator in
// Exec lines); paths may not hold `:` either (the separator of PATH and LD_LIBRARY_PATH).
import { isIP, isIPv4 } from "net";
import * as path from "path";
import { z } from "zod";
import { GPT_OSS_20B } from "../plan/gptOss20b";

declare module "zod/v4/core" {
    interface GlobalMeta {
        /** What a value looks like, as the configuration table names it ("path", "http(s) URL"). */
        format?: string;
        /** A Pulumi secret: read with getSecret, never shown in a message. */
        secret?: boolean;
        /** The default as the configuration table shows it, where the value itself is too long. */
        shownDefault?: string;
    }
}

/** A character as an error message shows it: printable ones quoted, the rest by name or code point. */
function showChar(c: string): string {
    const names: Record<string, string> = { "\n": "a newline", "\r": "a carriage return", "\t": "a tab", " ": "a space", "\0": "a NUL byte" };
    if (names[c]) return names[c];
    const code = c.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return `the control character U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
    if (code > 0x7e) return `the non-ASCII character U+${code.toString(16).toUpperCase().padStart(4, "0")} ("${c}")`;
    return `"${c}"`;
}

/** The first character of `value` outside `allowed` (a one-character class), or null. */
function firstOutside(value: string, allowed: RegExp): string | null {
    for (const c of value) if (!allowed.test(c)) return c;
    return null;
}

/** A zod string checked by a function that returns what is wrong with it, or null; `format` names its kind. */
function grammar(check: (v: string) => string | null, format: string) {
    return z
        .string()
        .superRefine((v, ctx) => {
            const problem = check(v);
            if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
        })
        .meta({ format });
}

// Path segments: letters, digits and . _ + - only. Not `:` (PATH), `%` (systemd specifiers), `$`, quotes,
// backslashes, spaces, `;` (systemd Exec lines), and no non-ASCII lookalikes of `/` or `.`.
const pathChar = /^[A-Za-z0-9._+-]$/;
const maxPathLength = 1024;

function segmentsProblem(segments: string[]): string | null {
    for (const s of segments) {
        if (s === "") return "must be normalized: no empty segment (`//`) and no trailing `/`";
        if (s === "." || s === "..") return `must be normalized: no "${s}" segment`;
        if (s.length > 255) return "has a segment longer than 255 characters";
        const bad = firstOutside(s, pathChar);
        if (bad !== null) return `holds ${showChar(bad)}: a path may hold only letters, digits and . _ + - between its slashes`;
    }
    return null;
}

/** An absolute, normalized path from the conservative character set. */
export function absolutePathProblem(p: string): string | null {
    if (!p.startsWith("/")) return "must be an absolute path (starting with /)";
    if (p.length > maxPathLength) return `is longer than ${maxPathLength} characters`;
    if (p === "/") return null;
    return segmentsProblem(p.slice(1).split("/"));
}

/** A path relative to the project, inside it: no leading `/`, no `..`. */
export function relativePathProblem(p: string): string | null {
    if (p.startsWith("/")) return "must be a path relative to the project's root, like locks/vllm-0.11.0-py3.12-x86_64.txt";
    if (p.length > maxPathLength) return `is longer than ${maxPathLength} characters`;
    return segmentsProblem(p.split("/"));
}

const absolutePath = grammar(absolutePathProblem, "path");

/**
 * The trees a directory the stack owns (creates, and removes on destroy) may never be in or above:
 * the distribution's (/usr, /bin, /sbin, /lib*, /boot, /etc, /snap), the kernel's and systemd's
 * (/proc, /sys, /dev, /run, /var/run, /var/lock), people's (/root, /home: the service's ProtectHome=yes
 * hides them from it anyway), scratch space that is emptied and that PrivateTmp= hides (/tmp,
 * /var/tmp), and mounted disks (/mnt, /media; on WSL /mnt/c is the Windows drive with the user's files).
 */
const neverOwned = [
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/lost+found", "/media", "/mnt",
    "/proc", "/root", "/run", "/sbin", "/snap", "/sys", "/tmp", "/usr", "/var/lock", "/var/run", "/var/tmp",
];

/**
 * Directories whose every child is a shared root other software lives in: a top-level directory
 * (/opt, /srv, /data) or one of /var's (/var/lib, /var/cache, /var/log). The stack's own directory is
 * always a named one inside such a root (/opt/vllm-workstation/venv, /var/lib/vllm-workstation/hf),
 * never the shared root itself. Whether a directory there already holds someone's files is for the
 * preflight on the box to see; this rule only keeps out places that can never be the stack's.
 */
const sharedParents = ["/", "/var"];

/** The stack's fixed directories, which the options' directories must stay clear of. */
const fixedDirs = [
    // The service's CacheDirectory=, made writable for the service user (vllmService.ts, cacheHome).
    "/var/cache/vllm-workstation",
];

const within = (p: string, root: string) => p === root || p.startsWith(root === "/" ? "/" : root + "/");

/** Why `dir` cannot be a directory the stack owns, or null. */
export function ownedDirProblem(dir: string): string | null {
    const tree = neverOwned.find((root) => within(dir, root));
    if (tree !== undefined) return `is ${dir === tree ? "" : "inside "}${tree}, which belongs to the system or to the machine's users: destroy would remove it; pick a directory of the stack's own, e.g. under /opt/vllm-workstation or /var/lib/vllm-workstation`;
    if (sharedParents.includes(path.posix.dirname(dir)) || dir === "/") {
        return `is a shared root (${dir === "/" ? "the whole disk" : "other software keeps its files there"}) that destroy would remove: pick a directory of the stack's own inside it, e.g. ${dir === "/" ? "/opt/vllm-workstation" : `${dir}/vllm-workstation`}`;
    }
    const fixed = fixedDirs.find((f) => within(dir, f) || within(f, dir));
    if (fixed !== undefined) return `overlaps ${fixed}, a directory of the service's own: pick another`;
    return null;
}

// RFC 1123 host names: labels of letters, digits and inner hyphens. Never a leading "-", which ssh would
// read as an option.
const hostLabel = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const hostNameRe = new RegExp(`^${hostLabel}(?:\\.${hostLabel})*$`);

/** An IPv6 address in its one canonical spelling (`0:0:0:0:0:0:0:1` is `::1`). */
function canonicalIPv6(a: string): string {
    return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

function ipProblem(v: string): string | null {
    // A zone (fe80::1%eth0) is refused: `%` means something in a URL and in a unit file.
    if (v.includes("%") || isIP(v) === 0) return "must be an IP address";
    return null;
}

function hostProblem(v: string): string | null {
    if (isIP(v) !== 0 && !v.includes("%")) return null;
    if (v.length > 253 || !hostNameRe.test(v) || /^[0-9.]+$/.test(v)) {
        const bad = firstOutside(v, /^[A-Za-z0-9.-]$/);
        return `${bad !== null ? `holds ${showChar(bad)}: it ` : ""}must be a host name (like ws-alice.lan) or an IP address`;
    }
    return null;
}

const hostname = grammar(hostProblem, "host");

/**
 * Loopback, however it is written: `localhost`, 127.0.0.0/8, `::1` in any spelling, and IPv4 loopback
 * mapped into IPv6 (::ffff:127.0.0.1). A listener on any of these is out of the network's reach.
 */
export function isLoopback(host: string): boolean {
    if (host.toLowerCase() === "localhost") return true;
    if (isIPv4(host)) return host.startsWith("127.");
    if (isIP(host) === 6 && !host.includes("%")) {
        const c = canonicalIPv6(host);
        return c === "::1" || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(c);
    }
    return false;
}

/** A listen address: an IP address (IPv6 in its canonical spelling) or `localhost`. */
const listenAddress = grammar((v) => (v === "localhost" ? null : ipProblem(v) === null ? null : 'must be an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, ::) or "localhost"'), "IP or localhost").transform((v) =>
    isIP(v) === 6 ? canonicalIPv6(v) : v,
);

// useradd's own rule (NAME_REGEX's default, 32 characters at most); a leading "-" would be an option.
const unixUser = z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name: lower-case letters, digits, _ and -, starting with a letter or _, 32 characters at most")
    .meta({ format: "user name" });

// Hugging Face's own rule for repository ids (huggingface_hub's validate_repo_id): owner/name, each
// of letters, digits, . _ -, starting and ending with a letter or digit, no "--" or ".." (the cache's
// folder is models--<owner>--<name>), 96 characters at most.
const repoPart = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?";
const repoId = grammar((v) =>
    new RegExp(`^${repoPart}/${repoPart}$`).test(v) && !v.includes("--") && !v.includes("..") && v.length <= 96
        ? null
        : "must be a Hugging Face repository id, owner/name: letters, digits, . _ - (no -- or ..), 96 characters at most",
    "owner/name",
);

// What clients put in "model": a YAML string in vLLM's --config, an argv element of the container.
// Starting with a letter or digit, so it never reads as a flag.
const servedName = z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$/, "must be a model name of letters, digits and . _ : / + -, starting with a letter or digit, 128 characters at most")
    .meta({ format: "name" });

// A Docker image reference, as the distribution/reference grammar writes it:
// [registry[:port]/]path-component[/path-component...][:tag][@digest].
const dockerAlnum = "[a-z0-9]+";
const dockerPathComponent = `${dockerAlnum}(?:(?:[._]|__|-+)${dockerAlnum})*`;
const dockerDomainComponent = "(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])";
const dockerDomain = `(?:${dockerDomainComponent}(?:\\.${dockerDomainComponent})*|\\[[0-9A-Fa-f:]+\\])(?::[0-9]+)?`;
const dockerReferenceRe = new RegExp(
    `^(?:${dockerDomain}/)?${dockerPathComponent}(?:/${dockerPathComponent})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`,
);
const dockerReference = grammar((v) =>
    v.length <= 255 + 129 + 140 && dockerReferenceRe.test(v) ? null : "must be a Docker image reference like vllm/vllm-openai:v0.11.0 or registry.lan:5000/vllm-openai@sha256:<digest>",
    "image",
);

// The vLLM release an image holds, as its tags write it (v dropped): the same characters as a version pin.
const vllmRelease = z
    .string()
    .max(64)
    .regex(/^\d+\.\d+\.\d+[A-Za-z0-9.+-]*$/, "must be a vLLM release like 0.11.0 or 0.10.1+gptoss")
    .meta({ format: "version" });

/**
 * The engine's address as DOCKER_HOST writes it: unix://<socket path>, tcp://<host>:<port> or
 * ssh://[user@]<host>[:port], each part held to the grammar of its kind (paths, host names, users).
 */
function dockerHostProblem(v: string): string | null {
    const shape = "must be the Docker engine's address: unix:///run/docker.sock, tcp://<host>:<port> or ssh://[user@]<host>[:port]";
    const m = /^(unix|tcp|ssh):\/\/(.*)$/.exec(v);
    if (m === null) return shape;
    const [, scheme, rest] = m;
    if (scheme === "unix") {
        const problem = absolutePathProblem(rest);
        return problem === null ? null : `has a socket path that ${problem}`;
    }
    const hp = /^(?:([a-z_][a-z0-9_-]{0,31})@)?(\[[0-9A-Fa-f:.]+\]|[^:@/[\]]+)(?::([0-9]{1,5}))?$/.exec(rest);
    if (hp === null || (hp[1] !== undefined && scheme !== "ssh")) return shape;
    const host = hp[2].startsWith("[") ? hp[2].slice(1, -1) : hp[2];
    if ((hp[2].startsWith("[") ? isIP(host) !== 6 : false) || hostProblem(host) !== null) return `has a host that ${hostProblem(host) ?? "must be an IPv6 address"}`;
    if (hp[3] === undefined ? scheme === "tcp" : !(Number(hp[3]) >= 1 && Number(hp[3]) <= 65535)) return `${shape}: the port must be 1 to 65535${scheme === "tcp" ? " and is required" : ""}`;
    return null;
}

const dockerHost = grammar(dockerHostProblem, "unix/tcp/ssh URL");

// fnmatch patterns for huggingface_hub's ignore_patterns: path characters plus * ? [ ] !; relative to
// the repository, so no leading "/" and no "..".
const excludePattern = grammar((v) => {
    if (v.length === 0 || v.length > 256) return "must be a pattern of 1 to 256 characters";
    const bad = firstOutside(v, /^[A-Za-z0-9._+\-/*?[\]!]$/);
    if (bad !== null) return `holds ${showChar(bad)}: a pattern may hold only letters, digits, . _ + - / and the wildcards * ? [ ] !`;
    if (v.startsWith("/") || v.split("/").includes("..")) return "must be a pattern relative to the repository (no leading / and no ..)";
    return null;
}, "glob");

// The key types OpenSSH writes into /etc/ssh/ssh_host_*_key.pub and known_hosts.
const hostKeyTypes = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/**
 * One OpenSSH public key line, `<type> <base64>` and an optional one-word comment (as a .pub file has
 * it): it becomes one line of the known_hosts file ssh checks the workstation against. The base64
 * part must be the key blob of that type (its first field names the type), so a pasted private key,
 * a fingerprint or a second line cannot pass.
 */
export function hostKeyProblem(v: string): string | null {
    const m = /^([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: [A-Za-z0-9._@+=:-]{1,255})?$/.exec(v);
    const shape = `must be the workstation's public host key, "<type> <base64>" as in its /etc/ssh/ssh_host_ed25519_key.pub`;
    if (m === null) {
        const bad = firstOutside(v, /^[ -~]$/);
        return bad !== null ? `holds ${showChar(bad)}: it ${shape}` : shape;
    }
    if (!hostKeyTypes.includes(m[1])) return `has the key type "${m[1]}", not one of ${hostKeyTypes.join(", ")}`;
    const blob = Buffer.from(m[2], "base64");
    const n = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
    if (blob.toString("base64") !== m[2] || n < 0 || blob.length < 4 + n || blob.subarray(4, 4 + n).toString("latin1") !== m[1]) {
        return `${shape}: its base64 part is not a ${m[1]} key`;
    }
    return null;
}

// RFC 3986's characters less the sub-delimiters a shell or a unit file gives meaning to: $ ' ( ) ; ! *
// (and, like every option, no whitespace, quotes, backslashes or control characters). Any of them can
// be written percent-encoded, as a password in a URL often must be anyway.
const urlChar = /^[A-Za-z0-9\-._~:/?#[\]@&+,=%]$/;

/**
 * A value as an error message may show it: a URL's credentials (`https://user:token@host/` shows as
 * `https://***@host/`) never. Everything up to the last "@" goes, since a mistyped password may hold
 * "/", "@" or a space; with `bare`, also where the scheme is missing (`user:token@host`).
 */
export function withoutCredentials(text: string, bare = false): string {
    const scheme = /^([\s\S]*?:\/\/)[\s\S]*@/;
    if (scheme.test(text)) return text.replace(scheme, "$1***@");
    return bare && text.includes("@") ? "***" + text.slice(text.lastIndexOf("@")) : text;
}

function urlProblem(v: string): string | null {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(v);
    if (scheme === null || !["http", "https"].includes(scheme[1].toLowerCase())) {
        return `must be an http:// or https:// URL${scheme !== null && !v.includes("@") ? `, not ${scheme[1]}:` : ""}`;
    }
    const rest = v.slice(scheme[0].length);
    const at = rest.lastIndexOf("@");
    // The credentials' characters are never shown, not even the one that is wrong.
    if (at >= 0 && firstOutside(rest.slice(0, at), urlChar) !== null) {
        return "has credentials holding a character a URL must carry percent-encoded (anything but letters, digits and - . _ ~ : / ? # [ ] @ & + , = %)";
    }
    const bad = firstOutside(rest.slice(at + 1), urlChar);
    if (bad !== null) return `holds ${showChar(bad)}: write it percent-encoded (a URL may hold letters, digits and - . _ ~ : / ? # [ ] @ & + , = %)`;
    let u: URL;
    try {
        u = new URL(v);
    } catch {
        return "must be a URL like https://pypi.org/simple";
    }
    if (!/^https?:\/\/[^/]/i.test(v) || u.hostname === "") return "must name a host, like https://pypi.org/simple";
    return null;
}

const url = grammar(urlProblem, "http(s) URL");

const semverish = z
    .string()
    .max(64)
    .regex(/^\d+(\.\d+)*([a-z0-9.+-]*)$/i, "must be a version like 0.11.0 or 0.10.1+gptoss")
    .meta({ format: "version" });

// `pulumi config set --path a.b 8001` stores the string "8001"; stack files written by hand hold numbers.
const num = () => z.coerce.number<string | number>();
const bool = () => z.union([z.boolean(), z.stringbool()]).meta({ format: "boolean" });

/** A whole number from `min` to `max`, one message for every way of missing it. */
const whole = (min: number, max: number, message = `must be a whole number from ${min} to ${max}`) => num().int(message).min(min, message).max(max, message);

/** One of `values`, and a message that lists them. */
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `is not one of ${values.map((v) => JSON.stringify(v)).join(", ")}` });

const port = () => whole(1, 65535);

// The descriptions below are what the README's configuration table says of each option (npm run docs).
export const Target = z
    .discriminatedUnion("kind", [
        z.strictObject({
            kind: z.literal("local"),
        }),
        z.strictObject({
            kind: z.literal("ssh"),
            host: hostname.meta({ description: "the workstation" }),
            port: port().default(22).meta({ description: "sshd's port" }),
            user: unixUser.default("root").meta({ description: "login user; needs passwordless sudo unless root" }),
            privateKeyPath: absolutePath.nullable().default(null).meta({ description: "private key on the machine that runs Pulumi; null: ssh's agent and defaults" }),
            // Trimmed: a key pasted from a .pub file often brings its line break along.
            hostKey: z
                .string()
                .trim()
                .pipe(grammar(hostKeyProblem, "ssh public key"))
                .nullable()
                .default(null)
                .meta({ description: "`<type> <base64>` from the host's `.pub` file, checked strictly; null: trust on first use" }),
        }),
    ])
    .default({ kind: "local" })
    .meta({ description: "where Pulumi runs: on the workstation (with sudo), or elsewhere over SSH" });

export const Cuda = z
    .strictObject({
        home: absolutePath.default("/usr/local/cuda").meta({ description: "CUDA toolkit root; FlashInfer's JIT runs its nvcc" }),
        // On native Linux the driver's libraries are on the default path and the directory is simply absent.
        wslLibDir: absolutePath.default("/usr/lib/wsl/lib").meta({ description: "WSL's driver libraries (libcuda), first in LD_LIBRARY_PATH" }),
    })
    .prefault({});

export const Python = z
    .strictObject({
        uvVersion: semverish.default("0.9.5").meta({ description: "uv, from the index below, sha256-checked" }),
        // A system interpreter, or one uv downloads.
        version: z
            .string()
            .regex(/^3\.\d{1,2}$/, "must be a minor version like 3.12")
            .meta({ format: "3.N" })
            .default("3.12")
            .meta({ description: "the venv's Python" }),
        // Owned: created, and removed on destroy, so system, home and shared directories are refused
        // (ownedDirProblem).
        venvPath: absolutePath.default("/opt/vllm-workstation/venv").meta({ description: "owned by the stack, with `<venvPath>-tools`; never a system, home or shared root" }),
        indexUrl: url.default("https://pypi.org/simple").meta({ description: "package index (a mirror)" }),
        extraIndexUrls: z.array(url).max(16).default([]).meta({ description: "more indexes" }),
        indexStrategy: oneOf(["first-index", "unsafe-first-match", "unsafe-best-match"])
            .default("first-index")
            .meta({ description: "uv's; wheels split over two indexes need `unsafe-best-match`" }),
        // A release that runs gpt-oss on Ampere and newer (sm_80+).
        vllmVersion: semverish.default("0.11.0").meta({ description: "vLLM" }),
        flashinferVersion: semverish.default("0.3.1").meta({ description: "FlashInfer: the one the vLLM release was built against" }),
        // program.ts refuses a symlink out of the project. Without one, the lock resolved at the first
        // converge is kept in the stack's state, so later converges install exactly the same hashes.
        lockFile: grammar(relativePathProblem, "relative path")
            .nullable()
            .default(null)
            .meta({ description: "`uv pip compile --generate-hashes` output inside the project; null: resolved on the box once" }),
    })
    .prefault({});

export const Model = z.strictObject({
    repo: repoId.default(GPT_OSS_20B.repo).meta({ description: "Hugging Face repository" }),
    // Never a branch, so every box gets the same bytes.
    revision: z
        .string()
        .regex(/^[0-9a-f]{40}$/, "must be a full 40-character commit hash")
        .meta({ format: "40-hex commit", description: "the pinned commit" }),
    cacheDir: absolutePath.default("/var/lib/vllm-workstation/hf").meta({ description: "HF_HUB_CACHE, owned like venvPath, with `<cacheDir>-tiktoken`" }),
    endpoint: url.nullable().default(null).meta({ description: "a Hub mirror (HF_ENDPOINT); null: the Hub" }),
    // The encodings gpt-oss's harmony tokenizer loads at start: fetched once, checked against these
    // sha256 sums, and handed to the service through TIKTOKEN_ENCODINGS_BASE so it starts offline.
    tiktoken: z
        .strictObject({
            baseUrl: url.default("https://openaipublic.blob.core.windows.net/encodings").meta({ description: "where the tokenizer's encodings come from", shownDefault: "OpenAI's store" }),
            files: z
                .record(
                    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,118}\.tiktoken$/, "must be a *.tiktoken file name of letters, digits and . _ -"),
                    z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256"),
                )
                .meta({ format: "{file: sha256}" })
                .default({
                    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                })
                .meta({ description: "the encodings and their sha256", shownDefault: "tiktoken's own" }),
        })
        .prefault({}),
    // gpt-oss's original/ and metal/ copies of the weights are another 27 GB.
    exclude: z.array(excludePattern).max(64).default(["original/*", "metal/*"]).meta({ description: "files not to download; the default: copies vLLM never reads" }),
    // Each connection fetches a byte range of a file of 8 MiB and up (one per 4 MiB at most), so a cap
    // per connection (a CDN edge, a proxy) does not cap the download, and a killed download resumes
    // where it stopped. Files the Hub serves through Xet are left to hf_xet, which is parallel already.
    connections: whole(1, 16).default(4).meta({ description: "connections per large file a mirror serves over plain HTTP; 1: huggingface_hub alone" }),
    // The model is large and slow to fetch again.
    keepOnDestroy: bool().default(false).meta({ description: "keep the model on destroy" }),
});

// The planner's knobs (planner.ts), in the order its problems are reported. Each null lets the planner
// choose; a value is held to these bounds here and to the card's memory by the planner.
export const Gpu = z
    .strictObject({
        // The named tiers are presets of the same planner, for boxes without a card yet.
        tier: oneOf(["auto", "12gb", "16gb", "24gb"]).default("auto").meta({ description: "`auto` reads nvidia-smi at each run; the others plan for a card of that size" }),
        // vLLM refuses more than the whole card.
        gpuMemoryUtilization: num()
            .gt(0, "is outside (0, 1]: it is a share of the card, and vLLM rejects more than all of it")
            .max(1, "is outside (0, 1]: it is a share of the card, and vLLM rejects more than all of it")
            .nullable()
            .default(null)
            .meta({ description: "vLLM's share of the card's memory" }),
        cpuOffloadGb: num()
            .min(0, "must be a number of GiB, 0 or more")
            .max(GPT_OSS_20B.weightsGiB, `is more than the ${GPT_OSS_20B.weightsGiB} GiB of weights gpt-oss-20b has`)
            .nullable()
            .default(null)
            .meta({ description: "GiB of weights kept in host RAM" }),
        maxModelLen: whole(256, GPT_OSS_20B.maxModelLen, `must be a whole number from 256 to ${GPT_OSS_20B.maxModelLen} (gpt-oss-20b's longest context)`)
            .nullable()
            .default(null)
            .meta({ description: "context length; null: the longest the card holds, up to the planner's cap" }),
        maxNumSeqs: whole(1, 1024).nullable().default(null).meta({ description: "concurrent sequences" }),
        // vLLM's bound is memory, which the planner checks; 2^20 is far beyond any card, so a typo above it
        // reads as a typo.
        maxNumBatchedTokens: whole(16, 1048576, "must be a whole number, 16 or more (at most 1048576)")
            .nullable()
            .default(null)
            .meta({ description: "tokens per scheduler step, at least maxNumSeqs" }),
        enforceEager: bool().nullable().default(null).meta({ description: "no CUDA graphs" }),
        // Which backend runs gpt-oss's attention sinks on which card: planner.ts.
        attentionBackend: oneOf(["TRITON_ATTN", "FLASH_ATTN", "FLASHINFER"]).nullable().default(null).meta({ description: "vLLM's attention backend" }),
        kvCacheDtype: oneOf(["auto", "fp8"]).nullable().default(null).meta({ description: "KV cache dtype; fp8 needs sm_89+" }),
    })
    .prefault({});

export const Server = z
    .strictObject({
        // Anything but loopback (isLoopback) requires the apiKey secret.
        host: listenAddress.default("127.0.0.1").meta({ description: "listen address; beyond loopback it requires apiKey" }),
        port: port().default(8000).meta({ description: "listen port" }),
        servedModelName: servedName.nullable().default(null).meta({ description: "the `model` clients send; null: the repository's name" }),
        user: unixUser
            .refine((u) => u !== "root", "must not be root: the service runs as an unprivileged user of its own (default vllm), without access to the secrets file")
            .default("vllm")
            .meta({ description: "the service's user, made by the stack; never root" }),
        // Loading 13 GB takes minutes.
        healthTimeoutSeconds: whole(5, 7200).default(900).meta({ description: "how long `up` waits for /health after a (re)start" }),
    })
    .prefault({});

export const WorkstationConfig = z.object({
    target: Target,
    runtime: oneOf(["systemd", "docker"]).default("systemd").meta({ description: "a systemd service over the venv, or the vllm/vllm-openai container" }),
    dockerImage: dockerReference.default("vllm/vllm-openai:v0.11.0").meta({ description: "the container's image" }),
    dockerVllmVersion: vllmRelease.nullable().default(null).meta({ description: "the vLLM release in dockerImage; null: its `:vX.Y.Z` tag" }),
    dockerHost: dockerHost.nullable().default(null).meta({ description: "the engine, as DOCKER_HOST on the workstation; null: the CLI's default" }),
    cuda: Cuda,
    python: Python,
    model: Model,
    gpu: Gpu,
    server: Server,
    apiKey: z
        .string()
        .min(16, "must be at least 16 characters")
        .max(1024, "must be at most 1024 characters")
        // systemd's EnvironmentFile= gives quotes and backslashes meaning; keep keys to token characters.
        .regex(/^[A-Za-z0-9._~+/=-]+$/, "may hold only letters, digits and . _ ~ + / = -")
        .meta({ format: "token" })
        .nullable()
        .default(null)
        .meta({ secret: true, description: "required beyond loopback; every route but /health then needs it" }),
    hfToken: z
        .string()
        .min(1)
        .max(1024, "must be at most 1024 characters")
        // It travels in an HTTP header: printable ASCII, no spaces, quotes or backslashes.
        .regex(/^[!#-&(-[\]-~]+$/, "may hold only printable ASCII characters other than spaces, quotes and backslashes")
        .meta({ format: "token" })
        .nullable()
        .default(null)
        .meta({ secret: true, description: "for a gated repository or a mirror that asks" }),
});

export type WorkstationConfig = z.infer<typeof WorkstationConfig>;
export type RawWorkstationConfig = z.input<typeof WorkstationConfig>;

/** The sections' defaults, for code that runs without a stack config (the doctor's probe, the bench). */
export const defaults = {
    cuda: Cuda.parse(undefined),
    python: Python.parse(undefined),
    model: Model.omit({ revision: true }).parse({}),
    gpu: Gpu.parse(undefined),
    server: Server.parse(undefined),
};

/** "vllm/vllm-openai:v0.11.0" -> "0.11.0"; null when the tag is not a version. */
export function imageTagVersion(image: string): string | null {
    const m = /:v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$/.exec(image);
    return m ? m[1] : null;
}

interface Problem {
    readonly path: PropertyKey[];
    readonly message: string;
}

const sections = { python: Python.unwrap(), model: Model, gpu: Gpu.unwrap() };

// Rules that tie options together, all in one place. Each rule runs when the sections it reads parsed,
// so a bad port does not hide a missing API key.
function crossChecks(c: Partial<WorkstationConfig>, input: Record<string, unknown>): Problem[] {
    const out: Problem[] = [];
    if (c.server && "apiKey" in c && !isLoopback(c.server.host) && c.apiKey === null) {
        out.push({
            path: ["apiKey"],
            message: `is required when server.host is "${c.server.host}" (not loopback): set it with \`pulumi config set --secret apiKey ...\``,
        });
    }
    // An option as its section parsed it or, where another field of the section is wrong, as it parses
    // alone, so that every problem shows at once; undefined when it is wrong itself or not given.
    const given = <T>(section: keyof typeof sections, key: string): T | undefined => {
        const parsed = c[section] as Record<string, unknown> | undefined;
        if (parsed !== undefined) return parsed[key] as T;
        const v = (input[section] as Record<string, unknown> | undefined)?.[key];
        const r = v === undefined ? undefined : (sections[section].shape as Record<string, z.ZodType>)[key]?.safeParse(v);
        return r?.success ? (r.data as T) : undefined;
    };
    const seqs = given<number | null>("gpu", "maxNumSeqs");
    const batched = given<number | null>("gpu", "maxNumBatchedTokens");
    if (typeof seqs === "number" && typeof batched === "number" && batched < seqs) {
        out.push({ path: ["gpu", "maxNumBatchedTokens"], message: `is less than gpu.maxNumSeqs ${seqs}; vLLM requires at least one token per sequence per step` });
    }
    // The directories the stack owns, with the ones derived from them (python.ts and model.ts layout()).
    const venvPath = given<string>("python", "venvPath");
    const cacheDir = given<string>("model", "cacheDir");
    const owned: Array<{ option: PropertyKey[]; base: string; dir: string }> = [];
    if (venvPath !== undefined) owned.push(...[venvPath, `${venvPath}-tools`].map((dir) => ({ option: ["python", "venvPath"], base: venvPath, dir })));
    if (cacheDir !== undefined) owned.push(...[cacheDir, `${cacheDir}-tiktoken`].map((dir) => ({ option: ["model", "cacheDir"], base: cacheDir, dir })));
    const refused = new Set<string>();
    for (const { option, base, dir } of owned) {
        const problem = ownedDirProblem(dir);
        if (problem === null || refused.has(option.join("."))) continue;
        refused.add(option.join("."));
        out.push({ path: option, message: dir === base ? problem : `would make ${dir} beside it, which ${problem}` });
    }
    if (c.python && c.model && !refused.has("python.venvPath") && !refused.has("model.cacheDir")) {
        const clash = owned.find((a) => a.option[0] === "python" && owned.some((b) => b.option[0] === "model" && (within(a.dir, b.dir) || within(b.dir, a.dir))));
        if (clash !== undefined) {
            out.push({
                path: ["model", "cacheDir"],
                message: `overlaps python.venvPath "${c.python.venvPath}" (or the ${c.python.venvPath}-tools and ${c.model.cacheDir}-tiktoken directories beside them): each must be its own directory`,
            });
        }
    }
    if (c.runtime === "docker" && c.dockerImage !== undefined && c.dockerVllmVersion === null && imageTagVersion(c.dockerImage) === null) {
        out.push({ path: ["dockerVllmVersion"], message: `is needed: the tag of dockerImage "${c.dockerImage}" is not a vLLM version, so set the vLLM release the image holds` });
    }
    return out;
}

export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(`invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

/** Options whose values are URLs: what a message shows of them never includes credentials. */
const urlOptions = new Set(urlPaths(WorkstationConfig, []));

/** The options of `s` whose values, or their elements, are `url`s. */
function urlPaths(s: z.core.$ZodType, at: string[]): string[] {
    const def = unwrap(s)._zod.def as z.core.$ZodTypeDef & { shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };
    if (def.shape !== undefined) return Object.entries(def.shape).flatMap(([k, v]) => urlPaths(v, [...at, k]));
    if (def.element !== undefined) return urlPaths(def.element, at);
    return unwrap(s) === url ? [at.join(".")] : [];
}

/** Every string in a value, as a message may show it (withoutCredentials). */
function shown(v: unknown, bare: boolean): unknown {
    if (typeof v === "string") return withoutCredentials(v, bare);
    if (Array.isArray(v)) return v.map((x) => shown(x, bare));
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shown(x, bare)]));
    return v;
}

function quoteValue(raw: unknown, p: PropertyKey[]): string {
    let v: unknown = raw;
    for (const k of p) v = v !== null && typeof v === "object" && Object.hasOwn(v, k) ? (v as Record<PropertyKey, unknown>)[k] : undefined;
    if (v === undefined) return "(not set)";
    const option = p.filter((k) => typeof k === "string").join(".");
    return JSON.stringify(shown(v, urlOptions.has(option)));
}

/** The options that are Pulumi secrets (the schema's `secret`): never in a message, even when they are what is wrong. */
export const secretOptions: readonly string[] = Object.entries(WorkstationConfig.shape)
    .filter(([, s]) => s.meta()?.secret === true)
    .map(([key]) => key);
const secretKeys = new Set(secretOptions);

/** Optimal string alignment distance, case-insensitive: a swapped pair of letters counts once. */
function distance(a: string, b: string): number {
    [a, b] = [a.toLowerCase(), b.toLowerCase()];
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.length][b.length];
}

/** The known key nearest to an unknown one, if it is near enough to be what was meant. */
export function nearestKey(unknown: string, known: readonly string[]): string | null {
    let best: string | null = null;
    let bestD = Infinity;
    for (const k of known) {
        const dk = distance(unknown, k);
        if (dk < bestD) [best, bestD] = [k, dk];
    }
    return best !== null && bestD <= Math.max(2, Math.floor(Math.max(unknown.length, best.length) / 3)) ? best : null;
}

/** The schema under its wrappers (default, prefault, nullable, optional, pipe). */
function unwrap(s: z.core.$ZodType): z.core.$ZodType {
    for (;;) {
        const def = s._zod.def as z.core.$ZodTypeDef & { innerType?: z.core.$ZodType; in?: z.core.$ZodType };
        if (def.innerType !== undefined) s = def.innerType;
        else if (def.type === "pipe" && def.in !== undefined) s = def.in;
        else return s;
    }
}

/** For a discriminated union, the variant the value names; otherwise the schema itself. */
function variant(s: z.core.$ZodType, value: unknown): z.core.$ZodType {
    const def = s._zod.def as z.core.$ZodTypeDef & { options?: z.core.$ZodType[]; discriminator?: string };
    if (def.type !== "union" || def.options === undefined || def.discriminator === undefined) return s;
    const tag = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[def.discriminator] : undefined;
    const shapeOf = (o: z.core.$ZodType) => (unwrap(o)._zod.def as { shape?: Record<string, z.core.$ZodType> }).shape ?? {};
    return def.options.find((o) => (unwrap(shapeOf(o)[def.discriminator!])._zod.def as { values?: unknown[] }).values?.includes(tag)) ?? s;
}

/** The keys the object schema at `p` knows, for the value found there. */
function knownKeysAt(schema: z.core.$ZodType, p: PropertyKey[], value: unknown): string[] {
    let s = variant(unwrap(schema), value);
    let v = value;
    for (const k of p) {
        const shape = (s._zod.def as { shape?: Record<string, z.core.$ZodType> }).shape;
        if (shape === undefined || !Object.hasOwn(shape, k)) return [];
        v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined;
        s = variant(unwrap(shape[k as string]), v);
    }
    return Object.keys((s._zod.def as { shape?: Record<string, z.core.$ZodType> }).shape ?? {});
}

function unknownKey(p: PropertyKey[], key: string, known: readonly string[]): string {
    const near = nearestKey(key, known);
    // The value is not quoted: a key the stack does not know may be a secret set under a mistyped name.
    return `${[...p, key].join(".")}: is not an option of this stack${near !== null ? ` (did you mean ${near}?)` : ""}`;
}

/**
 * Parses the top-level options `keys` of `input`, each on its own so that one bad field does not hide
 * the others, then runs the rules between options on every option that parsed.
 */
function parseOptions(input: Record<string, unknown>, keys: readonly (keyof WorkstationConfig)[]): { parsed: Partial<WorkstationConfig>; problems: string[] } {
    const problems: string[] = [];
    const shape = WorkstationConfig.shape;
    const report = (issues: readonly z.core.$ZodIssue[], key: string) => {
        for (const i of issues) {
            const p = [key, ...i.path];
            if (i.code === "unrecognized_keys") {
                const known = knownKeysAt(shape[key as keyof typeof shape], i.path, input[key]);
                for (const k of i.keys) problems.push(unknownKey(p, k, known));
                continue;
            }
            const value = secretKeys.has(key) ? "(secret)" : quoteValue(input, p);
            // A record's key that breaks the rule is shown as the key, with the rule's own message.
            if (i.code === "invalid_key") {
                const inner = i.issues[0]?.message ?? i.message;
                problems.push(`${p.slice(0, -1).join(".")}: the key ${JSON.stringify(String(p[p.length - 1]))} ${inner.replace(/^Invalid string: /, "")}`);
                continue;
            }
            problems.push(`${p.join(".")}: ${value} ${i.message.replace(/^Invalid input: /, "")}`);
        }
    };
    const parsed: Record<string, unknown> = {};
    for (const key of keys) {
        const r = (shape[key] as z.ZodType).safeParse(Object.hasOwn(input, key) ? input[key] : undefined);
        if (r.success) parsed[key] = r.data;
        else report(r.error.issues, key);
    }
    for (const p of crossChecks(parsed as Partial<WorkstationConfig>, input)) {
        problems.push(`${p.path.join(".")}: ${secretKeys.has(String(p.path[0])) ? "(secret)" : quoteValue(input, p.path)} ${p.message}`);
    }
    return { parsed: parsed as Partial<WorkstationConfig>, problems };
}

/** Parses the raw stack config and reports every problem at once, each starting with the option's path. */
export function parseConfig(raw: unknown): WorkstationConfig {
    const input = (raw ?? {}) as Record<string, unknown>;
    const keys = Object.keys(WorkstationConfig.shape) as (keyof WorkstationConfig)[];
    const problems = Object.keys(input)
        .filter((key) => !Object.hasOwn(WorkstationConfig.shape, key))
        .map((key) => unknownKey([], key, keys));
    const r = parseOptions(input, keys);
    problems.push(...r.problems);
    if (problems.length > 0) throw new ConfigError(problems);
    return r.parsed as WorkstationConfig;
}

/** What is wrong with the `gpu` section (the planner's options), as parseConfig says it; [] when nothing is. */
export function gpuOptionProblems(gpu: unknown): string[] {
    return parseOptions({ gpu }, ["gpu"]).problems;
}
