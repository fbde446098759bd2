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

/** A zod string checked by a function that returns what is wrong with it, or null. */
function grammar(check: (v: string) => string | null) {
    return z.string().superRefine((v, ctx) => {
        const problem = check(v);
        if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    });
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

const absolutePath = grammar(absolutePathProblem);

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

const hostname = grammar(hostProblem);

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
const listenAddress = grammar((v) => (v === "localhost" ? null : ipProblem(v) === null ? null : 'must be an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, ::) or "localhost"')).transform((v) =>
    isIP(v) === 6 ? canonicalIPv6(v) : v,
);

// useradd's own rule (NAME_REGEX's default, 32 characters at most); a leading "-" would be an option.
const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name: lower-case letters, digits, _ and -, starting with a letter or _, 32 characters at most");

// Hugging Face's own rule for repository ids (huggingface_hub's validate_repo_id): owner/name, each
// of letters, digits, . _ -, starting and ending with a letter or digit, no "--" or ".." (the cache's
// folder is models--<owner>--<name>), 96 characters at most.
const repoPart = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?";
const repoId = grammar((v) =>
    new RegExp(`^${repoPart}/${repoPart}$`).test(v) && !v.includes("--") && !v.includes("..") && v.length <= 96
        ? null
        : "must be a Hugging Face repository id, owner/name: letters, digits, . _ - (no -- or ..), 96 characters at most",
);

// What clients put in "model": a YAML string in vLLM's --config, an argv element of the container.
// Starting with a letter or digit, so it never reads as a flag.
const servedName = z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$/, "must be a model name of letters, digits and . _ : / + -, starting with a letter or digit, 128 characters at most");

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
);

// The vLLM release an image holds, as its tags write it (v dropped): the same characters as a version pin.
const vllmRelease = z
    .string()
    .max(64)
    .regex(/^\d+\.\d+\.\d+[A-Za-z0-9.+-]*$/, "must be a vLLM release like 0.11.0 or 0.10.1+gptoss");

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

const dockerHost = grammar(dockerHostProblem);

// fnmatch patterns for huggingface_hub's ignore_patterns: path characters plus * ? [ ] !; relative to
// the repository, so no leading "/" and no "..".
const excludePattern = grammar((v) => {
    if (v.length === 0 || v.length > 256) return "must be a pattern of 1 to 256 characters";
    const bad = firstOutside(v, /^[A-Za-z0-9._+\-/*?[\]!]$/);
    if (bad !== null) return `holds ${showChar(bad)}: a pattern may hold only letters, digits, . _ + - / and the wildcards * ? [ ] !`;
    if (v.startsWith("/") || v.split("/").includes("..")) return "must be a pattern relative to the repository (no leading / and no ..)";
    return null;
});

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

const url = grammar(urlProblem);

const semverish = z
    .string()
    .max(64)
    .regex(/^\d+(\.\d+)*([a-z0-9.+-]*)$/i, "must be a version like 0.11.0 or 0.10.1+gptoss");

// `pulumi config set --path a.b 8001` stores the string "8001"; stack files written by hand hold numbers.
const num = () => z.coerce.number<string | number>();
const bool = () => z.union([z.boolean(), z.stringbool()]);

export const Target = z
    .discriminatedUnion("kind", [
        z.strictObject({
            /** Pulumi runs on the workstation itself (inside WSL) and runs scripts with sudo. */
            kind: z.literal("local"),
        }),
        z.strictObject({
            /** Pulumi runs elsewhere (an admin's machine) and reaches the workstation over SSH. */
            kind: z.literal("ssh"),
            /** Host name or address of the workstation. Required. */
            host: hostname,
            /** sshd port. Default 22. */
            port: num().int().min(1).max(65535).default(22),
            /** Login user; needs passwordless sudo unless it is root. Default "root". */
            user: unixUser.default("root"),
            /** Private key on the machine that runs Pulumi (an absolute path). null (auto): ssh's agent and ~/.ssh defaults. */
            privateKeyPath: absolutePath.nullable().default(null),
            /**
             * The workstation's host public key ("ssh-ed25519 AAAA..."), checked strictly.
             * null (auto): trust on first use, recorded in ~/.ssh/known_hosts.
             */
            // Trimmed: a key pasted from a .pub file often brings its line break along.
            hostKey: z.string().trim().pipe(grammar(hostKeyProblem)).nullable().default(null),
        }),
    ])
    .default({ kind: "local" });

export const Cuda = z
    .strictObject({
        /** The CUDA toolkit root: nvcc is at <home>/bin/nvcc. Default /usr/local/cuda. */
        home: absolutePath.default("/usr/local/cuda"),
        /**
         * WSL's driver library directory (libcuda.so.1 lives there, put in by Windows' NVIDIA driver).
         * Default /usr/lib/wsl/lib; on native Linux the driver's libraries are on the default path.
         */
        wslLibDir: absolutePath.default("/usr/lib/wsl/lib"),
    })
    .prefault({});

export const Python = z
    .strictObject({
        /** uv release to install (from the package index below). Default 0.9.5. */
        uvVersion: semverish.default("0.9.5"),
        /** Python of the venv. Default "3.12": a system interpreter, or one uv downloads. */
        version: z.string().regex(/^3\.\d{1,2}$/, "must be a minor version like 3.12").default("3.12"),
        /**
         * Where the venv lives; the stack owns this directory (and `<venvPath>-tools` beside it) and
         * removes it on destroy, so system, home and shared directories are refused (ownedDirProblem).
         */
        venvPath: absolutePath.default("/opt/vllm-workstation/venv"),
        /** Primary package index (a mirror goes here). Default PyPI. */
        indexUrl: url.default("https://pypi.org/simple"),
        /** Extra indexes, e.g. the gpt-oss preview wheels' indexes. Default none. */
        extraIndexUrls: z.array(url).max(16).default([]),
        /**
         * uv's --index-strategy. Default "first-index"; the seeds' preview wheels need
         * "unsafe-best-match" to take vllm from an extra index and torch from another.
         */
        indexStrategy: z.enum(["first-index", "unsafe-first-match", "unsafe-best-match"]).default("first-index"),
        /** vLLM version. Default 0.11.0: a release that runs gpt-oss on Ampere and newer (sm_80+). */
        vllmVersion: semverish.default("0.11.0"),
        /** FlashInfer version; must be the one the vLLM release was built against. Default 0.3.1 (vLLM 0.11.0's). */
        flashinferVersion: semverish.default("0.3.1"),
        /**
         * A lock file (`uv pip compile --generate-hashes` output) relative to the project root, and inside
         * the project (program.ts refuses a symlink out of it). null (auto): resolved on the workstation
         * at first converge and kept in the stack's state, so later converges install exactly the same hashes.
         */
        lockFile: grammar(relativePathProblem).nullable().default(null),
    })
    .prefault({});

export const Model = z.strictObject({
    /** Hugging Face repository. Default openai/gpt-oss-20b. */
    repo: repoId.default("openai/gpt-oss-20b"),
    /** Commit to pin: 40 hex characters, never a branch, so every box gets the same bytes. Required. */
    revision: z.string().regex(/^[0-9a-f]{40}$/, "must be a full 40-character commit hash"),
    /**
     * The Hugging Face cache directory (HF_HUB_CACHE). Owned by the stack (and `<cacheDir>-tiktoken`
     * beside it), so system, home and shared directories are refused (ownedDirProblem).
     */
    cacheDir: absolutePath.default("/var/lib/vllm-workstation/hf"),
    /** A Hub mirror (HF_ENDPOINT). null (auto): the real Hub. */
    endpoint: url.nullable().default(null),
    /**
     * The tiktoken encodings gpt-oss's harmony tokenizer loads at start. They are fetched once, checked
     * against these sha256 sums, and handed to the service through TIKTOKEN_ENCODINGS_BASE so it starts
     * offline. Default: OpenAI's public encodings store and tiktoken's own published hashes.
     */
    tiktoken: z
        .strictObject({
            baseUrl: url.default("https://openaipublic.blob.core.windows.net/encodings"),
            files: z
                .record(
                    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,118}\.tiktoken$/, "must be a *.tiktoken file name of letters, digits and . _ -"),
                    z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256"),
                )
                .default({
                    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                }),
        })
        .prefault({}),
    /**
     * Files of the repository not to download (fnmatch patterns). Default: gpt-oss's original/ and
     * metal/ copies of the weights, which vLLM never reads (another 27 GB).
     */
    exclude: z.array(excludePattern).max(64).default(["original/*", "metal/*"]),
    /**
     * Connections per large file (8 MiB and up, one per 4 MiB at most) where the endpoint serves it
     * over plain HTTP, as a mirror does: each fetches a byte range, so a cap per connection (a CDN
     * edge, a proxy) does not cap the download, and a killed download resumes where it stopped.
     * Files the endpoint serves through Xet (the Hub itself) are left to hf, whose hf_xet client
     * fetches in parallel already. 1: every file through hf alone. Default 4.
     */
    connections: num().int().min(1).max(16).default(4),
    /** Keep the downloaded model on destroy (it is large and slow to fetch again). Default false. */
    keepOnDestroy: bool().default(false),
});

export const Gpu = z
    .strictObject({
        /**
         * The card class to plan for. "auto" reads nvidia-smi on the workstation at each run; the named
         * tiers are presets of the same planner for a card of that size, for boxes without a card yet.
         */
        tier: z.enum(["auto", "12gb", "16gb", "24gb"]).default("auto"),
        /** Context length. null (auto): the longest the card fits, capped at 32768 unless set. */
        maxModelLen: num().int().min(256).max(131072).nullable().default(null),
        /** Share of VRAM vLLM may take, 0 < x <= 1 (vLLM refuses more). null (auto): the planner's. */
        gpuMemoryUtilization: num().gt(0).max(1).nullable().default(null),
        /** GiB of weights kept in host RAM. null (auto): what the card cannot hold, 0 on 24 GB cards. */
        cpuOffloadGb: num().min(0).max(64).nullable().default(null),
        /** Concurrent sequences. null (auto): from the planner. */
        maxNumSeqs: num().int().min(1).max(1024).nullable().default(null),
        /** Tokens per scheduler step. null (auto): from the planner. */
        maxNumBatchedTokens: num().int().min(16).max(1048576).nullable().default(null),
        /** Skip CUDA graphs. null (auto): on when offloading or tight on VRAM. */
        enforceEager: bool().nullable().default(null),
        /** VLLM_ATTENTION_BACKEND. null (auto): TRITON_ATTN on Ampere, Ada and consumer Blackwell; see planner.ts. */
        attentionBackend: z.enum(["TRITON_ATTN", "FLASH_ATTN", "FLASHINFER"]).nullable().default(null),
        /** --kv-cache-dtype. null (auto): "auto" (bf16); "fp8" only where the card supports it. */
        kvCacheDtype: z.enum(["auto", "fp8"]).nullable().default(null),
    })
    .prefault({});

export const Server = z
    .strictObject({
        /** Listen address. Default 127.0.0.1; anything but loopback (isLoopback) requires the apiKey secret. */
        host: listenAddress.default("127.0.0.1"),
        /** Listen port. Default 8000. */
        port: num().int().min(1).max(65535).default(8000),
        /** Name clients ask for. null (auto): the repository name, e.g. gpt-oss-20b. */
        servedModelName: servedName.nullable().default(null),
        /** Unix user the service runs as; created by the stack. Default "vllm"; never root. */
        user: unixUser
            .refine((u) => u !== "root", "must not be root: the service runs as an unprivileged user of its own (default vllm), without access to the secrets file")
            .default("vllm"),
        /** How long `pulumi up` waits for /health after (re)starting, in seconds. Default 900 (loading 13 GB takes minutes). */
        healthTimeoutSeconds: num().int().min(5).max(7200).default(900),
    })
    .prefault({});

export const WorkstationConfig = z.object({
    /** Where the workstation is. Default: this machine. */
    target: Target,
    /** How vLLM runs: a systemd service over the venv (default) or the vllm/vllm-openai container. */
    runtime: z.enum(["systemd", "docker"]).default("systemd"),
    /** The container image for runtime "docker". Default vllm/vllm-openai:v0.11.0. */
    dockerImage: dockerReference.default("vllm/vllm-openai:v0.11.0"),
    /** The vLLM release inside dockerImage; its flags and variables follow it. null: read from a `:vX.Y.Z` tag. */
    dockerVllmVersion: vllmRelease.nullable().default(null),
    /** The Docker engine, as DOCKER_HOST (unix://, tcp:// or ssh://) on the workstation. null: the docker CLI's default. */
    dockerHost: dockerHost.nullable().default(null),
    cuda: Cuda,
    python: Python,
    model: Model,
    gpu: Gpu,
    server: Server,
    /** Pulumi secret; required when server.host is not loopback. */
    apiKey: z
        .string()
        .min(16, "must be at least 16 characters")
        .max(1024, "must be at most 1024 characters")
        // systemd's EnvironmentFile= gives quotes and backslashes meaning; keep keys to token characters.
        .regex(/^[A-Za-z0-9._~+/=-]+$/, "may hold only letters, digits and . _ ~ + / = -")
        .nullable()
        .default(null),
    /** Pulumi secret; needed only for gated repositories or a mirror that asks for one. */
    hfToken: z
        .string()
        .min(1)
        .max(1024, "must be at most 1024 characters")
        // It travels in an HTTP header: printable ASCII, no spaces, quotes or backslashes.
        .regex(/^[!#-&(-[\]-~]+$/, "may hold only printable ASCII characters other than spaces, quotes and backslashes")
        .nullable()
        .default(null),
});

export type WorkstationConfig = z.infer<typeof WorkstationConfig>;
export type RawWorkstationConfig = z.input<typeof WorkstationConfig>;

/** "vllm/vllm-openai:v0.11.0" -> "0.11.0"; null when the tag is not a version. */
export function imageTagVersion(image: string): string | null {
    const m = /:v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$/.exec(image);
    return m ? m[1] : null;
}

interface Problem {
    readonly path: PropertyKey[];
    readonly message: string;
}

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
    // The directories the stack owns, with the ones derived from them (python.ts and model.ts layout()).
    // Checked also when another field of the section is wrong, so that every problem shows at once.
    const given = (section: "python" | "model", key: string, parsed: string | undefined): string | undefined => {
        if (parsed !== undefined) return parsed;
        const v = (input[section] as Record<string, unknown> | undefined)?.[key];
        return typeof v === "string" && absolutePathProblem(v) === null ? v : undefined;
    };
    const venvPath = given("python", "venvPath", c.python?.venvPath);
    const cacheDir = given("model", "cacheDir", c.model?.cacheDir);
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
const urlOptions = new Set(["python.indexUrl", "python.extraIndexUrls", "model.endpoint", "model.tiktoken.baseUrl"]);

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

/** Secrets must never appear in an error message, even when they are what is wrong. */
const secretKeys = new Set(["apiKey", "hfToken"]);

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
 * Parses the raw stack config and reports every problem at once, each starting with the option's path.
 * Each top-level option is parsed on its own so that one bad field does not hide the others, and the
 * rules between options run on every option that parsed.
 */
export function parseConfig(raw: unknown): WorkstationConfig {
    const input = (raw ?? {}) as Record<string, unknown>;
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
    for (const key of Object.keys(input)) {
        if (!Object.hasOwn(shape, key)) problems.push(unknownKey([], key, Object.keys(shape)));
    }
    const parsed: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(shape)) {
        const r = (schema as z.ZodType).safeParse(Object.hasOwn(input, key) ? input[key] : undefined);
        if (r.success) parsed[key] = r.data;
        else report(r.error.issues, key);
    }
    for (const p of crossChecks(parsed as Partial<WorkstationConfig>, input)) {
        problems.push(`${p.path.join(".")}: ${secretKeys.has(String(p.path[0])) ? "(secret)" : quoteValue(input, p.path)} ${p.message}`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return parsed as WorkstationConfig;
}
