// The one schema of the stack's options. index.ts parses the stack config with it once; components get
// the parsed value, with every default filled, and never default again.
//
// Pulumi config keys are the top-level fields (`vllm-workstation:server`, ...); nested fields are set
// with `pulumi config set --path server.port 8001`. Secrets (apiKey, hfToken) are separate top-level
// keys read with getSecret, so they stay Pulumi secrets from the stack file to the box.
import * as path from "path";
import { z } from "zod";
import { redactUrls } from "./urls";

const absolutePath = z.string().refine((p) => path.posix.isAbsolute(p) && path.posix.normalize(p) === p && (p === "/" || !p.endsWith("/")), {
    message: "must be an absolute, normalized path",
});

// `pulumi config set --path a.b 8001` stores the string "8001"; stack files written by hand hold numbers.
const num = () => z.coerce.number<string | number>();
const bool = () => z.union([z.boolean(), z.stringbool()]);

const semverish = z.string().regex(/^\d+(\.\d+)*([a-z0-9.+-]*)$/i, "must be a version like 0.11.0 or 0.10.1+gptoss");

const hostname = z.string().min(1).regex(/^[A-Za-z0-9.:_-]+$/, "must be a host name or an IP address");

export const Target = z
    .discriminatedUnion("kind", [
        z.object({
            /** Pulumi runs on the workstation itself (inside WSL) and runs scripts with sudo. */
            kind: z.literal("local"),
        }),
        z.object({
            /** Pulumi runs elsewhere (an admin's machine) and reaches the workstation over SSH. */
            kind: z.literal("ssh"),
            /** Host name or address of the workstation. Required. */
            host: hostname,
            /** sshd port. Default 22. */
            port: num().int().min(1).max(65535).default(22),
            /** Login user; needs passwordless sudo unless it is root. Default "root". */
            user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a Unix user name").default("root"),
            /** Private key on the machine that runs Pulumi. null (auto): ssh's agent and ~/.ssh defaults. */
            privateKeyPath: z.string().nullable().default(null),
            /**
             * The workstation's host public key ("ssh-ed25519 AAAA..."), checked strictly.
             * null (auto): trust on first use, recorded in ~/.ssh/known_hosts.
             */
            hostKey: z.string().nullable().default(null),
        }),
    ])
    .default({ kind: "local" });

export const Cuda = z
    .object({
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
    .object({
        /** uv release to install (from the package index below). Default 0.9.5. */
        uvVersion: semverish.default("0.9.5"),
        /** Python of the venv. Default "3.12": a system interpreter, or one uv downloads. */
        version: z.string().regex(/^3\.\d+$/, "must be a minor version like 3.12").default("3.12"),
        /** Where the venv lives; the stack owns this directory and removes it on destroy. */
        venvPath: absolutePath.default("/opt/vllm-workstation/venv"),
        /** Primary package index (a mirror goes here). Default PyPI. */
        indexUrl: z.url().default("https://pypi.org/simple"),
        /** Extra indexes, e.g. the gpt-oss preview wheels' indexes. Default none. */
        extraIndexUrls: z.array(z.url()).default([]),
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
         * A lock file (`uv pip compile --generate-hashes` output) relative to the project root. null (auto):
         * resolved on the workstation at first converge and kept in the stack's state, so later converges
         * install exactly the same hashes.
         */
        lockFile: z.string().nullable().default(null),
    })
    .prefault({});

export const Model = z
    .object({
        /** Hugging Face repository. Default openai/gpt-oss-20b. */
        repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "must be owner/name").default("openai/gpt-oss-20b"),
        /** Commit to pin: 40 hex characters, never a branch, so every box gets the same bytes. Required. */
        revision: z.string().regex(/^[0-9a-f]{40}$/, "must be a full 40-character commit hash"),
        /** The Hugging Face cache directory (HF_HUB_CACHE). Owned by the stack. */
        cacheDir: absolutePath.default("/var/lib/vllm-workstation/hf"),
        /** A Hub mirror (HF_ENDPOINT). null (auto): the real Hub. */
        endpoint: z.url().nullable().default(null),
        /**
         * The tiktoken encodings gpt-oss's harmony tokenizer loads at start. They are fetched once, checked
         * against these sha256 sums, and handed to the service through TIKTOKEN_ENCODINGS_BASE so it starts
         * offline. Default: OpenAI's public encodings store and tiktoken's own published hashes.
         */
        tiktoken: z
            .object({
                baseUrl: z.url().default("https://openaipublic.blob.core.windows.net/encodings"),
                files: z.record(z.string().regex(/^[\w.-]+\.tiktoken$/, "must be a *.tiktoken file name"), z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256")).default({
                    "o200k_base.tiktoken": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                    "cl100k_base.tiktoken": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                }),
            })
            .prefault({}),
        /**
         * Files of the repository not to download. Default: gpt-oss's original/ and metal/ copies of the
         * weights, which vLLM never reads (another 27 GB).
         */
        exclude: z.array(z.string().min(1)).default(["original/*", "metal/*"]),
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
    .object({
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
        maxNumBatchedTokens: num().int().min(16).nullable().default(null),
        /** Skip CUDA graphs. null (auto): on when offloading or tight on VRAM. */
        enforceEager: bool().nullable().default(null),
        /** VLLM_ATTENTION_BACKEND. null (auto): TRITON_ATTN on Ampere, Ada and consumer Blackwell; see planner.ts. */
        attentionBackend: z.enum(["TRITON_ATTN", "FLASH_ATTN", "FLASHINFER"]).nullable().default(null),
        /** --kv-cache-dtype. null (auto): "auto" (bf16); "fp8" only where the card supports it. */
        kvCacheDtype: z.enum(["auto", "fp8"]).nullable().default(null),
    })
    .prefault({});

export const Server = z
    .object({
        /** Listen address. Default 127.0.0.1; anything else requires the apiKey secret. */
        host: z.union([z.ipv4(), z.ipv6(), z.literal("localhost")]).default("127.0.0.1"),
        /** Listen port. Default 8000. */
        port: num().int().min(1).max(65535).default(8000),
        /** Name clients ask for. null (auto): the repository name, e.g. gpt-oss-20b. */
        servedModelName: z.string().min(1).nullable().default(null),
        /** Unix user the service runs as; created by the stack. Default "vllm". */
        user: z.string().regex(/^[a-z_][a-z0-9_-]*$/, "must be a Unix user name").default("vllm"),
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
    dockerImage: z.string().min(1).default("vllm/vllm-openai:v0.11.0"),
    cuda: Cuda,
    python: Python,
    model: Model,
    gpu: Gpu,
    server: Server,
    /** Pulumi secret; required when server.host is not loopback. */
    apiKey: z
        .string()
        .min(16, "must be at least 16 characters")
        // systemd's EnvironmentFile= gives quotes and backslashes meaning; keep keys to token characters.
        .regex(/^[A-Za-z0-9._~+/=-]+$/, "may hold only letters, digits and . _ ~ + / = -")
        .nullable()
        .default(null),
    /** Pulumi secret; needed only for gated repositories or a mirror that asks for one. */
    hfToken: z.string().min(1).nullable().default(null),
});

export type WorkstationConfig = z.infer<typeof WorkstationConfig>;
export type RawWorkstationConfig = z.input<typeof WorkstationConfig>;

const loopback = new Set(["127.0.0.1", "::1", "localhost"]);

/** Paths the stack must never own: removing them on destroy would take the user's files with them. */
const forbiddenRoots = ["/", "/root", "/home", "/etc", "/usr", "/var", "/opt", "/tmp", "/bin", "/lib", "/mnt", "/mnt/c"];

interface Problem {
    readonly path: PropertyKey[];
    readonly message: string;
}

// Rules that tie options together, all in one place. Each rule runs when the sections it reads parsed,
// so a bad port does not hide a missing API key.
function crossChecks(c: Partial<WorkstationConfig>): Problem[] {
    const out: Problem[] = [];
    if (c.server && "apiKey" in c && !loopback.has(c.server.host) && c.apiKey === null) {
        out.push({
            path: ["apiKey"],
            message: `is required when server.host is "${c.server.host}" (not loopback): set it with \`pulumi config set --secret apiKey ...\``,
        });
    }
    const owned: Array<[PropertyKey[], string | undefined]> = [
        [["python", "venvPath"], c.python?.venvPath],
        [["model", "cacheDir"], c.model?.cacheDir],
    ];
    for (const [p, value] of owned) {
        if (value !== undefined && (forbiddenRoots.includes(value) || /^\/home\/[^/]+$/.test(value))) {
            out.push({ path: p, message: "is a system or home directory that destroy would remove: pick a directory the stack can own, e.g. /opt/vllm-workstation/venv" });
        }
    }
    if (c.python && c.model) {
        const [v, m] = [c.python.venvPath, c.model.cacheDir];
        if (v === m || v.startsWith(m + "/") || m.startsWith(v + "/")) {
            out.push({ path: ["model", "cacheDir"], message: `overlaps python.venvPath "${v}": each must be its own directory` });
        }
    }
    if (c.runtime === "docker" && c.target?.kind === "ssh") {
        out.push({ path: ["runtime"], message: `runs through the Docker engine of the machine that runs Pulumi: use it with target.kind "local"` });
    }
    return out;
}

export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(`invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

function quoteValue(raw: unknown, p: PropertyKey[]): string {
    let v: unknown = raw;
    for (const k of p) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined;
    if (v === undefined) return "(not set)";
    // A URL's credentials never show, even in the message about that URL.
    return redactUrls(JSON.stringify(v));
}

/** Secrets must never appear in an error message, even when they are what is wrong. */
const secretKeys = new Set(["apiKey", "hfToken"]);

/**
 * Parses the raw stack config and reports every problem at once, each starting with the option's path.
 * Each top-level option is parsed on its own so that one bad field does not hide the others, and the
 * rules between options run on every option that parsed.
 */
export function parseConfig(raw: unknown): WorkstationConfig {
    const input = (raw ?? {}) as Record<string, unknown>;
    const problems: string[] = [];
    const report = (issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
        for (const i of issues) {
            const p = [...prefix, ...i.path];
            const value = secretKeys.has(String(p[0])) ? "(secret)" : quoteValue(input, p);
            problems.push(`${p.join(".") || "(root)"}: ${value} ${i.message.replace(/^Invalid input: /, "")}`);
        }
    };
    const shape = WorkstationConfig.shape;
    for (const key of Object.keys(input)) {
        if (!(key in shape)) problems.push(`${key}: ${quoteValue(input, [key])} is not an option of this stack`);
    }
    const parsed: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(shape)) {
        const r = (schema as z.ZodType).safeParse(input[key]);
        if (r.success) parsed[key] = r.data;
        else report(r.error.issues, [key]);
    }
    for (const p of crossChecks(parsed as Partial<WorkstationConfig>)) {
        problems.push(`${p.path.join(".")}: ${secretKeys.has(String(p.path[0])) ? "(secret)" : quoteValue(input, p.path)} ${p.message}`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return parsed as WorkstationConfig;
}
