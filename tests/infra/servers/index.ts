// Real local servers standing in for the outside world in integration tests (this machine reaches
// package registries only, never the Hugging Face Hub):
//
//   - a package index: the real pypiserver serving the test wheelhouse (tests/infra/wheelhouse.sh), i.e.
//     the vllm and flashinfer-python TEST DOUBLES plus the real wheels they pull in and the uv wheel;
//   - a Hugging Face Hub double (hf_endpoint.py) serving tiny fixture repositories (hf_fixture.py) to the
//     real `hf` client, with a rate limit, a request log, dropped connections, corrupted bytes and a
//     required token on demand.
//
//     const hub = await startHfEndpoint({ rateLimitBytesPerSec: 100e6 });
//     const index = await startPackageIndex();
//     try { ... HF_ENDPOINT=hub.url, --index-url index.url ... } finally { await hub.stop(); await index.stop(); }
//
// Both bind 127.0.0.1 on a free port. Every server started here is killed when the process (or the ava
// worker) exits, and each also watches the test process's pid and exits when it is gone, so a runner
// killed with SIGKILL leaves nothing listening. Big artifacts (venv, wheelhouse, fixtures) live under
// $VLLM_WS_CACHE (default ~/.cache/vllm-workstation), never in git.
import { ChildProcess, execFile, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cacheDir, freePort, repoRoot } from "../../helpers/box";

// The checkout, the cache directory and free ports: the box helper's, one definition for both.
export { cacheDir, freePort, repoRoot };

// --- paths -------------------------------------------------------------------------------------------

/** The Python sources of the servers (not compiled: dist/ has no copy of them). */
export const serversDir = path.join(repoRoot, "tests", "infra", "servers");

// --- child processes ---------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
let hooked = false;
function track(child: ChildProcess): void {
    live.add(child);
    child.once("exit", () => live.delete(child));
    if (hooked) return;
    hooked = true;
    // 'exit' also fires when an ava worker thread ends; only synchronous work runs there.
    process.on("exit", () => {
        for (const c of live) {
            try {
                c.kill("SIGKILL");
            } catch {
                // already gone
            }
        }
    });
}

async function stopChild(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
}

export interface RunResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

/** Runs a command to completion; never throws on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolve) => {
        execFile(
            cmd,
            args,
            { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 10 * 60_000, maxBuffer: 64 << 20 },
            (err, stdout, stderr) => {
                const code = err ? (typeof (err as NodeJS.ErrnoException).code === "number" ? Number((err as NodeJS.ErrnoException).code) : err.killed ? 124 : 1) : 0;
                resolve({ code, stdout: String(stdout), stderr: String(stderr) });
            },
        );
    });
}

async function mustRun(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
    const r = await run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
}

// --- the servers' venv and the wheelhouse ------------------------------------------------------------

export interface ServersVenv {
    readonly dir: string;
    readonly python: string;
    /** uv at the stack's pinned version. */
    readonly uv: string;
    /** The real `hf` CLI, huggingface_hub as pinned in tests/infra/servers/requirements.txt. */
    readonly hf: string;
}

export interface WheelhouseOptions {
    /** Versions of the vllm test double. Default ["0.11.0", "0.10.1+gptoss", "0.11.2", "0.11.1+broken"] (0.11.1+broken fails at start). */
    readonly vllmVersions?: readonly string[];
    /** Versions of the flashinfer-python test double. Default ["0.3.1", "0.4.1"]. */
    readonly flashinferVersions?: readonly string[];
    /** Pythons to fetch real wheels for. Default ["3.11", "3.12"]. */
    readonly pythons?: readonly string[];
    /** uv releases to include. Default ["0.9.5"]. */
    readonly uvVersions?: readonly string[];
    /** More real requirements, each resolved on its own. Default ["packaging", "huggingface-hub==0.36.2"]. */
    readonly extra?: readonly string[];
    /** The huggingface_hub release fetched for the vllm double (its `hf`). Default "1.33.0". */
    readonly huggingfaceHub?: string;
}

export interface Wheelhouse {
    readonly dir: string;
    /** File names of the wheels in it. */
    readonly wheels: readonly string[];
    readonly venv: ServersVenv;
}

const wheelhouseScript = path.join(repoRoot, "tests", "infra", "wheelhouse.sh");
const memo = new Map<string, Promise<unknown>>();
function once<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = memo.get(key) as Promise<T> | undefined;
    if (!p) {
        p = make();
        memo.set(key, p);
        p.catch(() => memo.delete(key));
    }
    return p;
}

function venvOf(dir: string): ServersVenv {
    return { dir, python: path.join(dir, "bin", "python"), uv: path.join(dir, "bin", "uv"), hf: path.join(dir, "bin", "hf") };
}

/** The servers' venv (pypiserver, huggingface_hub, uv), made once per machine by tests/infra/wheelhouse.sh. */
export function ensureServersVenv(): Promise<ServersVenv> {
    return once("venv", async () => {
        const out = await mustRun("bash", [wheelhouseScript, "--venv"], { env: { ...process.env, VLLM_WS_CACHE: cacheDir() } });
        return venvOf(out.trim().split("\n").pop()!);
    });
}

/** Builds (first time, or after its sources changed) and returns the test wheelhouse. */
export function ensureWheelhouse(opts: WheelhouseOptions = {}): Promise<Wheelhouse> {
    const env: NodeJS.ProcessEnv = { ...process.env, VLLM_WS_CACHE: cacheDir() };
    const set = (name: string, v?: readonly string[]): void => {
        if (v) env[name] = v.join(" ");
        else delete env[name];
    };
    set("WHEELHOUSE_VLLM_VERSIONS", opts.vllmVersions);
    set("WHEELHOUSE_FLASHINFER_VERSIONS", opts.flashinferVersions);
    set("WHEELHOUSE_PYTHONS", opts.pythons);
    set("WHEELHOUSE_UV_VERSIONS", opts.uvVersions);
    set("WHEELHOUSE_EXTRA", opts.extra);
    set("WHEELHOUSE_HF_HUB", opts.huggingfaceHub === undefined ? undefined : [opts.huggingfaceHub]);
    return once(`wheelhouse ${JSON.stringify(opts)}`, async () => {
        const out = await mustRun("bash", [wheelhouseScript], { env, timeoutMs: 20 * 60_000 });
        const dir = out.trim().split("\n").pop()!;
        const wheels = fs.readdirSync(dir).filter((f) => f.endsWith(".whl")).sort();
        return { dir, wheels, venv: await ensureServersVenv() };
    });
}

// --- the package index -------------------------------------------------------------------------------

/** Credentials a server asks for with HTTP basic auth. */
export interface BasicAuth {
    readonly user: string;
    readonly password: string;
}

/** `url` with the credentials as its userinfo (percent-encoded), as a stack config would carry them. */
export function withUserinfo(url: string, auth: BasicAuth): string {
    const u = new URL(url);
    u.username = encodeURIComponent(auth.user);
    u.password = encodeURIComponent(auth.password);
    return u.toString();
}

export interface PackageIndexOptions {
    /** A directory of wheels to serve. Default: ensureWheelhouse(wheelhouse). */
    readonly dir?: string;
    readonly wheelhouse?: WheelhouseOptions;
    /** Every listing and download then needs these credentials (401 without, 403 with others). */
    readonly basicAuth?: BasicAuth;
    /** Log every request (`<LocalRequest: GET http://...>`) in logPath, for tests that count them. */
    readonly logRequests?: boolean;
}

export interface PackageIndex {
    /** The simple index, for --index-url: http://127.0.0.1:PORT/simple/ */
    readonly url: string;
    /** http://127.0.0.1:PORT */
    readonly root: string;
    readonly port: number;
    /** The directory served. */
    readonly dir: string;
    /** pypiserver's own log (requests included); removed by stop(). */
    readonly logPath: string;
    stop(): Promise<void>;
}

async function waitHttp(url: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (child.exitCode !== null || child.signalCode !== null) return false;
        try {
            const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
            if (r.ok) return true;
        } catch {
            // not up yet
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    return false;
}

/** The real pypiserver (no fallback to PyPI) serving the test wheelhouse on 127.0.0.1. */
export async function startPackageIndex(opts: PackageIndexOptions = {}): Promise<PackageIndex> {
    const venv = await ensureServersVenv();
    const dir = opts.dir ?? (await ensureWheelhouse(opts.wheelhouse)).dir;
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "package-index-"));
    const logPath = path.join(logDir, "pypiserver.log");
    for (let attempt = 1; ; attempt++) {
        // pypiserver cannot report a port it picked itself: take a free one, retry if it got taken.
        const port = await freePort();
        const log = fs.openSync(logPath, "a");
        const child = spawn(
            venv.python,
            [path.join(serversDir, "run_index.py"), String(process.pid), "run", "-p", String(port), "-i", "127.0.0.1", "--disable-fallback", "--health-endpoint", "/health", ...(opts.logRequests ? ["-v"] : []), dir],
            {
                stdio: ["ignore", log, log],
                env: opts.basicAuth ? { ...process.env, VLLM_WS_INDEX_BASIC_AUTH: `${opts.basicAuth.user}:${opts.basicAuth.password}` } : process.env,
            },
        );
        fs.closeSync(log);
        track(child);
        if (await waitHttp(`http://127.0.0.1:${port}/health`, child, 30_000)) {
            const root = `http://127.0.0.1:${port}`;
            return {
                url: `${root}/simple/`,
                root,
                port,
                dir,
                logPath,
                stop: async () => {
                    await stopChild(child);
                    fs.rmSync(logDir, { recursive: true, force: true });
                },
            };
        }
        await stopChild(child);
        if (attempt === 5) {
            const log = fs.readFileSync(logPath, "utf8").slice(-4000);
            fs.rmSync(logDir, { recursive: true, force: true });
            throw new Error(`pypiserver did not come up on 127.0.0.1; its log:\n${log}`);
        }
    }
}

// --- the Hugging Face endpoint -----------------------------------------------------------------------

export interface HfRepoSpec {
    /** owner/name. Default openai/gpt-oss-20b. */
    readonly repoId: string;
    /** Size of the random weights tensor in model-00000-of-00001.safetensors. Default 8 MiB. */
    readonly weightsBytes?: number;
    /** Seed of those bytes. Default 20. */
    readonly seed?: number;
    /**
     * Names of more commits of the same repository: config.json and README.md name the variant, the
     * weights are the same blob. `main` stays at the first commit; each is served by its sha.
     */
    readonly variants?: readonly string[];
}

export interface FixtureFile {
    readonly size: number;
    /** The git blob id the Hub reports (for LFS files, the pointer's). */
    readonly blobId: string;
    /** sha256 of the content. */
    readonly sha256: string;
    /** Present for LFS files (*.safetensors, tokenizer.json, as the real repo's .gitattributes says). */
    readonly lfs: { readonly sha256: string; readonly size: number; readonly pointerSize: number } | null;
}

export interface FixtureRepo {
    readonly repoId: string;
    /** The full 40-hex commit; deterministic for a given spec. */
    readonly commitSha: string;
    readonly refs: Readonly<Record<string, string>>;
    /** The repo's files on disk (what the endpoint serves). */
    readonly dir: string;
    readonly files: Readonly<Record<string, FixtureFile>>;
    /** The other commits (HfRepoSpec.variants), by variant name. */
    readonly variants: Readonly<Record<string, { readonly commitSha: string; readonly dir: string; readonly files: Readonly<Record<string, FixtureFile>> }>>;
}

export interface HfFixture {
    readonly root: string;
    readonly repos: Readonly<Record<string, FixtureRepo>>;
    /** Fake tiktoken encodings: file name -> sha256 (served under /tiktoken/). */
    readonly tiktoken: Readonly<Record<string, string>>;
    readonly tiktokenDir: string;
}

export interface HfEndpointOptions {
    /** Per response body, bytes per second. Default unlimited. */
    readonly rateLimitBytesPerSec?: number;
    /** When set, every route but /tiktoken and /health needs `Authorization: Bearer <token>`. */
    readonly token?: string;
    /** Default [{ repoId: "openai/gpt-oss-20b" }]. */
    readonly repos?: readonly HfRepoSpec[];
    /** Cut the connection after this many body bytes (of bodies larger than that), dropTimes times. */
    readonly dropAfterBytes?: number;
    /** Default 1. */
    readonly dropTimes?: number;
    /** "owner/name/file" entries served with one byte flipped (same size and advertised hashes). */
    readonly corrupt?: readonly string[];
    /**
     * A host name for this endpoint (e.g. "localhost"): LFS files are then answered with the Hub's 302 to
     * the same path there with a `signed` query, a stand-in for a presigned CDN URL that needs no token.
     */
    readonly cdnHost?: string;
    /** With cdnHost: each signature is good for this many GETs at the CDN, then answered 403 (expired). */
    readonly cdnExpireAfter?: number;
    /** Answer Range requests with the whole file (200), as some proxies do. */
    readonly ignoreRange?: boolean;
    /** Every route but /health and the CDN's signed URLs then needs these credentials (basic auth). */
    readonly basicAuth?: BasicAuth;
}

export interface RequestLogEntry {
    readonly t: number;
    readonly method: "GET" | "HEAD";
    /** Decoded path, without the query. */
    readonly path: string;
    readonly query: string;
    /** The Range header, as sent. */
    readonly range: string | null;
    readonly status: number | null;
    /** Body bytes sent. */
    readonly bytes: number;
    /** Whether the whole body went out. */
    readonly complete: boolean;
    /** Whether an Authorization header came with it. */
    readonly auth: boolean;
    /** Its scheme, lower case ("basic", "bearer"), null without one. */
    readonly auth_kind: string | null;
    /** The Host header it came with. */
    readonly host: string | null;
    /** Set when dropAfterBytes cut this response. */
    readonly dropped?: boolean;
}

/** The GETs of one repository file in an endpoint's request log (resolve URLs end with the file's path). */
export function getsOf(log: readonly RequestLogEntry[], file: string): RequestLogEntry[] {
    return log.filter((e) => e.method === "GET" && e.path.endsWith(`/${file}`));
}

/** sha256 of a file, hex: what the Hub reports for an LFS file. */
export function sha256File(p: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
}

export interface HfEndpoint {
    /** For HF_ENDPOINT: http://127.0.0.1:PORT */
    readonly url: string;
    readonly port: number;
    /** The first repo's id and commit (openai/gpt-oss-20b by default). */
    readonly repoId: string;
    readonly commitSha: string;
    readonly repo: FixtureRepo;
    readonly repos: Readonly<Record<string, FixtureRepo>>;
    /** Where the stack's model.tiktoken.baseUrl can point, and the sha256 of each file there. */
    readonly tiktoken: { readonly baseUrl: string; readonly files: Readonly<Record<string, string>> };
    readonly requestLogPath: string;
    /** Every request so far, oldest first (a response still streaming is logged when it ends). */
    requestLog(): Promise<RequestLogEntry[]>;
    clearRequestLog(): Promise<void>;
    stop(): Promise<void>;
}

const defaultRepos: readonly HfRepoSpec[] = [{ repoId: "openai/gpt-oss-20b" }];

/** Makes (or reuses from the cache) the fixture repositories; keyed by the generator and the specs. */
export function makeHfFixture(repos: readonly HfRepoSpec[] = defaultRepos): Promise<HfFixture> {
    const generator = path.join(serversDir, "hf_fixture.py");
    const specs = repos.map((r) => ({ repoId: r.repoId, weightsBytes: r.weightsBytes ?? 8 << 20, seed: r.seed ?? 20, variants: r.variants ?? [] }));
    const key = crypto.createHash("sha256").update(fs.readFileSync(generator)).update(JSON.stringify(specs)).digest("hex").slice(0, 16);
    return once(`fixture ${key}`, async () => {
        const root = path.join(cacheDir(), "hf-fixtures", key);
        fs.mkdirSync(root, { recursive: true });
        const out: Record<string, FixtureRepo> = {};
        let tiktoken: Record<string, string> = {};
        for (const s of specs) {
            // flock: ava workers of other test files may make the same fixture at the same time.
            const variants = s.variants.flatMap((v) => ["--variant", v]);
            const json = await mustRun("flock", [path.join(root, ".lock"), "python3", generator, "--root", root, "--repo", s.repoId, "--weights-bytes", String(s.weightsBytes), "--seed", String(s.seed), ...variants], {
                timeoutMs: 30 * 60_000,
            });
            type Made = { commit: string; files: Record<string, FixtureFile>; dir: string };
            const parsed = JSON.parse(json) as { repos: Record<string, Made & { refs: Record<string, string>; variants: Record<string, Made> }>; tiktoken: Record<string, string> };
            const r = parsed.repos[s.repoId];
            const made = Object.fromEntries(Object.entries(r.variants).map(([v, m]) => [v, { commitSha: m.commit, dir: m.dir, files: m.files }]));
            out[s.repoId] = { repoId: s.repoId, commitSha: r.commit, refs: r.refs, dir: r.dir, files: r.files, variants: made };
            tiktoken = parsed.tiktoken;
        }
        return { root, repos: out, tiktoken, tiktokenDir: path.join(root, "_tiktoken") };
    });
}

/** The Hub double on 127.0.0.1, serving the fixture repositories to the real `hf` client. */
export async function startHfEndpoint(opts: HfEndpointOptions = {}): Promise<HfEndpoint> {
    const specs = opts.repos ?? defaultRepos;
    if (specs.length === 0) throw new Error("startHfEndpoint: repos is empty");
    const fixture = await makeHfFixture(specs);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-endpoint-"));
    const requestLogPath = path.join(work, "requests.jsonl");
    fs.writeFileSync(requestLogPath, "");
    const args = [path.join(serversDir, "hf_endpoint.py"), "--root", fixture.root, "--port", "0", "--request-log", requestLogPath, "--parent-pid", String(process.pid)];
    if (opts.rateLimitBytesPerSec) args.push("--rate-limit", String(Math.round(opts.rateLimitBytesPerSec)));
    if (opts.token) args.push("--token", opts.token);
    if (opts.dropAfterBytes) args.push("--drop-after-bytes", String(opts.dropAfterBytes), "--drop-times", String(opts.dropTimes ?? 1));
    for (const c of opts.corrupt ?? []) args.push("--corrupt", c);
    if (opts.cdnHost) args.push("--cdn-host", opts.cdnHost);
    if (opts.cdnExpireAfter) args.push("--cdn-expire-after", String(opts.cdnExpireAfter));
    if (opts.ignoreRange) args.push("--ignore-range");

    const env = opts.basicAuth ? { ...process.env, HF_ENDPOINT_BASIC_AUTH: `${opts.basicAuth.user}:${opts.basicAuth.password}` } : process.env;
    const child = spawn("python3", args, { stdio: ["ignore", "pipe", "pipe"], env });
    track(child);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-8000);
    });
    const port = await new Promise<number>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`hf_endpoint.py did not start in 30 s\n${stderr}`)), 30_000);
        child.stdout!.on("data", (d: Buffer) => {
            out += d.toString();
            const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        });
        child.once("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`hf_endpoint.py exited ${code}\n${stderr}`));
        });
    });
    child.stdout!.resume();

    const url = `http://127.0.0.1:${port}`;
    const first = fixture.repos[specs[0].repoId];
    return {
        url,
        port,
        repoId: first.repoId,
        commitSha: first.commitSha,
        repo: first,
        repos: fixture.repos,
        tiktoken: { baseUrl: `${url}/tiktoken`, files: fixture.tiktoken },
        requestLogPath,
        requestLog: async () =>
            (await fs.promises.readFile(requestLogPath, "utf8"))
                .split("\n")
                .filter((l) => l.trim())
                .map((l) => JSON.parse(l) as RequestLogEntry)
                .sort((a, b) => a.t - b.t),
        clearRequestLog: async () => fs.promises.writeFile(requestLogPath, ""),
        stop: async () => {
            await stopChild(child);
            fs.rmSync(work, { recursive: true, force: true });
        },
    };
}
