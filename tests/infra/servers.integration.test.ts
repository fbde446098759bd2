// The local stand-ins for the outside world, checked against the real clients that the stack runs:
// the real `hf` CLI against the Hub double, real uv against the real pypiserver, and the vllm TEST
// DOUBLE (no GPU here, so never the real vLLM) installed from that index the way the stack installs it.
import test from "ava";
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    HfEndpoint,
    PackageIndex,
    RequestLogEntry,
    HfRepoSpec,
    ServersVenv,
    ensureServersVenv,
    ensureWheelhouse,
    freePort,
    getsOf,
    run,
    sha256File,
    startHfEndpoint,
    startPackageIndex,
} from "../infra/servers/index";
import { partialBytes } from "../helpers/workstation";

const REPO = "openai/gpt-oss-20b";
const WEIGHTS = "model-00000-of-00001.safetensors";
const MiB = 1 << 20;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "servers-test-"));
let venv: ServersVenv;
let index: PackageIndex;

test.before("the servers' venv and the wheelhouse exist (built on first use) and the index is up", async (t) => {
    t.timeout(20 * 60_000);
    venv = await ensureServersVenv();
    await ensureWheelhouse();
    index = await startPackageIndex();
});

test.after.always(async () => {
    await index?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
});

function tmp(name: string): string {
    return fs.mkdtempSync(path.join(scratch, `${name}-`));
}


/** The environment an `hf` run gets: this endpoint, a private HF_HOME, no telemetry or update checks. */
function hfEnv(hub: HfEndpoint, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
        ...process.env,
        HF_ENDPOINT: hub.url,
        HF_HOME: tmp("hf-home"),
        HF_HUB_DISABLE_TELEMETRY: "1",
        HF_HUB_DISABLE_UPDATE_CHECK: "1",
        HF_HUB_DISABLE_PROGRESS_BARS: "1",
        NO_COLOR: "1",
        ...extra,
    };
    for (const k of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"]) if (!(k in extra)) delete env[k];
    return env;
}

const weightsGets = (log: readonly RequestLogEntry[]) => getsOf(log, WEIGHTS);

/** A venv made with uv from the local index only (a fresh uv cache, so nothing comes from elsewhere). */
async function venvFromIndex(name: string, python: string, requirements: readonly string[]): Promise<string> {
    const dir = path.join(tmp(name), "venv");
    const env = { ...process.env, UV_CACHE_DIR: tmp(`${name}-uv-cache`), UV_PYTHON_DOWNLOADS: "never" };
    const mk = await run(venv.uv, ["venv", "-q", "--python", python, dir], { env });
    if (mk.code !== 0) throw new Error(mk.stderr);
    const inst = await run(venv.uv, ["pip", "install", "--python", `${dir}/bin/python`, "--index-url", index.url, ...requirements], { env });
    if (inst.code !== 0) throw new Error(`uv pip install ${requirements.join(" ")} from ${index.url} failed:\n${inst.stderr}`);
    return dir;
}

/** The Python the stack asks for (3.12) where this machine has one, else python3. */
function python312(): string {
    const pyenv = path.join(os.homedir(), ".pyenv", "versions");
    const found = fs.existsSync(pyenv) ? fs.readdirSync(pyenv).filter((v) => /^3\.12\.\d+$/.test(v)).sort() : [];
    if (found.length) return path.join(pyenv, found[found.length - 1], "bin", "python3.12");
    return fs.existsSync("/usr/bin/python3.12") ? "/usr/bin/python3.12" : "python3";
}

let productVenvP: Promise<string> | undefined;
/** vllm==0.11.0 and flashinfer-python==0.3.1 installed from the index, as the stack asks for them. */
function productVenv(): Promise<string> {
    productVenvP ??= venvFromIndex("product", python312(), ["vllm==0.11.0", "flashinfer-python==0.3.1"]);
    return productVenvP;
}

// --- Hugging Face ------------------------------------------------------------------------------------

test("the real hf download fetches openai/gpt-oss-20b at the pinned commit from the local endpoint, every sha256 matches, and hf cache verify agrees", async (t) => {
    t.timeout(5 * 60_000);
    const hub = await startHfEndpoint();
    try {
        t.regex(hub.commitSha, /^[0-9a-f]{40}$/);
        const env = hfEnv(hub);
        const cache = tmp("hf-cache");
        const r = await run(venv.hf, ["download", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env });
        t.is(r.code, 0, r.stderr);
        const snapshot = path.join(cache, "models--openai--gpt-oss-20b", "snapshots", hub.commitSha);
        for (const [rel, f] of Object.entries(hub.repo.files)) {
            t.is(sha256File(path.join(snapshot, rel)), f.sha256, rel);
        }
        t.truthy(hub.repo.files[WEIGHTS].lfs, "the weights are an LFS file, so the Hub reports their sha256");
        t.true(Object.keys(hub.repo.files).includes("original/config.json"), "a file in a subfolder is fetched too");

        const local = tmp("hf-local");
        const l = await run(venv.hf, ["download", REPO, "--revision", hub.commitSha, "--local-dir", local], { env });
        t.is(l.code, 0, l.stderr);
        for (const [rel, f] of Object.entries(hub.repo.files)) t.is(sha256File(path.join(local, rel)), f.sha256, rel);

        const v = await run(venv.hf, ["cache", "verify", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env });
        t.is(v.code, 0, v.stderr + v.stdout);
        t.regex(v.stdout, /All checksums match/);

        const log = await hub.requestLog();
        // A pinned commit needs no revision lookup: the client lists the tree at it, then HEADs and GETs each file.
        t.true(log.some((e) => e.path === `/api/models/${REPO}/tree/${hub.commitSha}` && e.status === 200));
        t.is(weightsGets(log).length, 2);
        t.true(weightsGets(log).every((e) => e.range === null && e.complete && e.bytes === hub.repo.files[WEIGHTS].size));
        t.true(log.some((e) => e.method === "HEAD" && e.path === `/${REPO}/resolve/${hub.commitSha}/config.json`));

        // A branch name resolves through the model info route to the same commit.
        const m = await run(venv.hf, ["download", REPO, "config.json", "--revision", "main", "--cache-dir", tmp("hf-main")], { env });
        t.is(m.code, 0, m.stderr);
        t.true(m.stdout.includes(hub.commitSha));
    } finally {
        await hub.stop();
    }
});

test("the endpoint's model info carries the blob ids and LFS sha256 sums that HfApi.model_info(files_metadata=True) reads", async (t) => {
    t.timeout(60_000);
    const hub = await startHfEndpoint();
    try {
        const py = [
            "import json, sys",
            "from huggingface_hub import HfApi",
            "i = HfApi().model_info(sys.argv[1], revision=sys.argv[2], files_metadata=True)",
            "print(json.dumps({'sha': i.sha, 'files': {s.rfilename: [s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in i.siblings}}))",
        ].join("\n");
        const r = await run(venv.python, ["-c", py, REPO, "main"], { env: hfEnv(hub) });
        t.is(r.code, 0, r.stderr);
        const info = JSON.parse(r.stdout) as { sha: string; files: Record<string, [number, string, string | null]> };
        t.is(info.sha, hub.commitSha);
        for (const [rel, f] of Object.entries(hub.repo.files)) t.deepEqual(info.files[rel], [f.size, f.blobId, f.lfs ? f.lfs.sha256 : null], rel);
    } finally {
        await hub.stop();
    }
});

test("the endpoint serves another revision of a repository by its sha: its own files and tree, the weights the same blob, main still the first", async (t) => {
    t.timeout(60_000);
    const hub = await startHfEndpoint({ repos: [{ repoId: REPO, variants: ["b"] }] });
    try {
        const b = hub.repo.variants.b;
        t.not(b.commitSha, hub.commitSha);
        t.is(b.files[WEIGHTS].sha256, hub.repo.files[WEIGHTS].sha256, "the weights are shared");
        t.not(b.files["config.json"].blobId, hub.repo.files["config.json"].blobId);
        const info = (await (await fetch(`${hub.url}/api/models/${REPO}/revision/${b.commitSha}?blobs=true`)).json()) as { sha: string; siblings: { rfilename: string; blobId: string }[] };
        t.is(info.sha, b.commitSha);
        t.deepEqual(Object.fromEntries(info.siblings.map((s) => [s.rfilename, s.blobId])), Object.fromEntries(Object.entries(b.files).map(([rel, f]) => [rel, f.blobId])));
        const config = await fetch(`${hub.url}/${REPO}/resolve/${b.commitSha}/config.json`);
        t.is(config.headers.get("x-repo-commit"), b.commitSha);
        t.is((JSON.parse(await config.text()) as { _revision?: string })._revision, "b");
        const tree = (await (await fetch(`${hub.url}/api/models/${REPO}/tree/${b.commitSha}?recursive=true`)).json()) as { path: string; oid: string }[];
        t.is(tree.find((e) => e.path === "config.json")?.oid, b.files["config.json"].blobId);
        t.is(((await (await fetch(`${hub.url}/api/models/${REPO}/revision/main`)).json()) as { sha: string }).sha, hub.commitSha, "main stays at the first commit");
    } finally {
        await hub.stop();
    }
});

test("hf download does not check sha256 itself: a corrupted file lands in the cache and hf cache verify names it", async (t) => {
    t.timeout(5 * 60_000);
    const hub = await startHfEndpoint({ corrupt: [`${REPO}/${WEIGHTS}`] });
    try {
        const env = hfEnv(hub);
        const cache = tmp("hf-corrupt");
        const r = await run(venv.hf, ["download", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env });
        t.is(r.code, 0, r.stderr);
        const got = path.join(cache, "models--openai--gpt-oss-20b", "snapshots", hub.commitSha, WEIGHTS);
        t.is(fs.statSync(got).size, hub.repo.files[WEIGHTS].size);
        t.not(sha256File(got), hub.repo.files[WEIGHTS].sha256);
        const v = await run(venv.hf, ["cache", "verify", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env });
        t.is(v.code, 1);
        t.regex(v.stdout + v.stderr, new RegExp(`${WEIGHTS.replace(/\./g, "\\.")}: expected ${hub.repo.files[WEIGHTS].sha256} \\(sha256\\)`));
    } finally {
        await hub.stop();
    }
});

// huggingface_hub writes a download in 10 MiB chunks (constants.DOWNLOAD_CHUNK_SIZE): what arrived after the
// last whole chunk is lost on a cut, so these tests use weights of several chunks and cut past the first.
const CHUNK = 10 * MiB;
const BIG: HfRepoSpec[] = [{ repoId: REPO, weightsBytes: 32 * MiB }];

test("a download cut off mid-file by the network is resumed by the same hf download with a Range request", async (t) => {
    t.timeout(5 * 60_000);
    const hub = await startHfEndpoint({ repos: BIG, dropAfterBytes: 15 * MiB });
    try {
        const cache = tmp("hf-drop");
        const r = await run(venv.hf, ["download", REPO, WEIGHTS, "--revision", hub.commitSha, "--cache-dir", cache], { env: hfEnv(hub) });
        t.is(r.code, 0, r.stderr);
        t.regex(r.stderr, /Trying to resume download/);
        const size = hub.repo.files[WEIGHTS].size;
        t.is(sha256File(path.join(cache, "models--openai--gpt-oss-20b", "snapshots", hub.commitSha, WEIGHTS)), hub.repo.files[WEIGHTS].sha256);
        const gets = weightsGets(await hub.requestLog());
        t.is(gets.length, 2, JSON.stringify(gets));
        t.like(gets[0], { range: null, dropped: true, complete: false, bytes: 15 * MiB });
        t.like(gets[1], { range: `bytes=${CHUNK}-`, status: 206, complete: true, bytes: size - CHUNK });
    } finally {
        await hub.stop();
    }
});

/** Starts `hf download` of the weights, kills it (SIGKILL) once the server has sent `after` bytes, runs it again. */
async function killAndRerun(hf: string, hub: HfEndpoint, cache: string, after: number): Promise<{ first: RequestLogEntry; second: RequestLogEntry; code: number; stderr: string }> {
    const env = hfEnv(hub);
    const args = ["download", REPO, WEIGHTS, "--revision", hub.commitSha, "--cache-dir", cache];
    const child: ChildProcess = spawn(hf, args, { env, stdio: "ignore" });
    const blobs = path.join(cache, "models--openai--gpt-oss-20b", "blobs");
    const deadline = Date.now() + 60_000;
    // The partial file on disk is what a resume can build on: wait until enough of it is written.
    const partial = () => partialBytes(blobs);
    while (partial() < after) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the first download ended or stalled at ${partial()} bytes`);
        await new Promise((r) => setTimeout(r, 50));
    }
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    // The server logs the cut-off response once it notices the closed socket.
    for (let i = 0; i < 100 && weightsGets(await hub.requestLog()).length < 1; i++) await new Promise((r) => setTimeout(r, 50));
    const again = await run(hf, args, { env });
    const gets = weightsGets(await hub.requestLog());
    return { first: gets[0], second: gets[gets.length - 1], code: again.code, stderr: again.stderr };
}

test.serial("an hf download killed mid-file resumes with a Range request on the next run with huggingface_hub 0.36.2, the release transformers 4.x pins", async (t) => {
    t.timeout(10 * 60_000);
    const legacy = await venvFromIndex("hf-0.36", "python3", ["huggingface-hub==0.36.2"]);
    const hub = await startHfEndpoint({ repos: BIG, rateLimitBytesPerSec: 8 * MiB });
    try {
        const cache = tmp("hf-kill-legacy");
        const { first, second, code, stderr } = await killAndRerun(`${legacy}/bin/hf`, hub, cache, CHUNK);
        t.is(code, 0, stderr);
        t.is(first.range, null);
        t.false(first.complete);
        const m = /^bytes=(\d+)-$/.exec(second.range ?? "");
        t.truthy(m, `the second GET asks for the rest: ${JSON.stringify(second)}`);
        const from = Number(m![1]);
        t.true(from >= CHUNK && from % CHUNK === 0, `resumed from ${from}`);
        t.like(second, { status: 206, complete: true, bytes: hub.repo.files[WEIGHTS].size - from });
        t.is(sha256File(path.join(cache, "models--openai--gpt-oss-20b", "snapshots", hub.commitSha, WEIGHTS)), hub.repo.files[WEIGHTS].sha256);
    } finally {
        await hub.stop();
    }
});

test.serial("an hf download killed mid-file starts the file over on the next run with huggingface_hub 2.x, which keeps no partial file across runs", async (t) => {
    t.timeout(10 * 60_000);
    const hub = await startHfEndpoint({ repos: BIG, rateLimitBytesPerSec: 8 * MiB });
    try {
        const cache = tmp("hf-kill-latest");
        const { first, second, code, stderr } = await killAndRerun(venv.hf, hub, cache, CHUNK);
        t.is(code, 0, stderr);
        t.false(first.complete);
        // Since huggingface_hub 1.18 each run downloads into its own uniquely named temporary file
        // (<etag>.<random>.incomplete) and deletes it on failure; a SIGKILL leaves it behind, unused.
        t.like(second, { range: null, status: 200, complete: true, bytes: hub.repo.files[WEIGHTS].size });
        const blobs = path.join(cache, "models--openai--gpt-oss-20b", "blobs");
        const orphans = fs.readdirSync(blobs).filter((f) => f.endsWith(".incomplete"));
        t.is(orphans.length, 1, "the killed run's partial file stays in blobs/ and takes disk space");
        t.true(fs.statSync(path.join(blobs, orphans[0])).size >= CHUNK);
        t.is(sha256File(path.join(cache, "models--openai--gpt-oss-20b", "snapshots", hub.commitSha, WEIGHTS)), hub.repo.files[WEIGHTS].sha256);
    } finally {
        await hub.stop();
    }
});

test("the endpoint answers like the Hub for an unknown revision, an unknown repository and a missing or wrong token", async (t) => {
    t.timeout(5 * 60_000);
    const token = "hf_test_" + crypto.randomBytes(8).toString("hex");
    const hub = await startHfEndpoint({ token });
    try {
        const auth = { Authorization: `Bearer ${token}` };
        const rev = await fetch(`${hub.url}/api/models/${REPO}/revision/${"0".repeat(40)}`, { headers: auth });
        t.is(rev.status, 404);
        t.is(rev.headers.get("x-error-code"), "RevisionNotFound");
        const repo = await fetch(`${hub.url}/api/models/openai/no-such-model/revision/main`, { headers: auth });
        t.is(repo.status, 401);
        t.is(repo.headers.get("x-error-code"), "RepoNotFound");
        const none = await fetch(`${hub.url}/${REPO}/resolve/main/config.json`, { method: "HEAD" });
        t.is(none.status, 401);
        t.is(none.headers.get("x-error-code"), "GatedRepo");
        const wrong = await fetch(`${hub.url}/${REPO}/resolve/main/config.json`, { method: "HEAD", headers: { Authorization: "Bearer nope" } });
        t.is(wrong.status, 401);
        t.is(wrong.headers.get("x-error-message"), "Invalid credentials in Authorization header");
        const ok = await fetch(`${hub.url}/${REPO}/resolve/main/config.json`, { method: "HEAD", headers: auth });
        t.is(ok.status, 200);
        t.is(ok.headers.get("x-repo-commit"), hub.commitSha);
        t.is(ok.headers.get("etag"), `"${hub.repo.files["config.json"].blobId}"`);
        const tik = await fetch(`${hub.tiktoken.baseUrl}/o200k_base.tiktoken`);
        t.is(tik.status, 200, "the tiktoken files need no token");
        t.is(crypto.createHash("sha256").update(Buffer.from(await tik.arrayBuffer())).digest("hex"), hub.tiktoken.files["o200k_base.tiktoken"]);

        const cache = tmp("hf-token");
        const denied = await run(venv.hf, ["download", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env: hfEnv(hub) });
        t.not(denied.code, 0);
        t.regex(denied.stderr + denied.stdout, /requires approval|gated|restricted/i);
        const badRev = await run(venv.hf, ["download", REPO, "--revision", "no-such-branch", "--cache-dir", cache], { env: hfEnv(hub, { HF_TOKEN: token }) });
        t.not(badRev.code, 0);
        t.regex(badRev.stderr + badRev.stdout, /Revision not found/i);
        await hub.clearRequestLog();
        const allowed = await run(venv.hf, ["download", REPO, "--revision", hub.commitSha, "--cache-dir", cache], { env: hfEnv(hub, { HF_TOKEN: token }) });
        t.is(allowed.code, 0, allowed.stderr);
        const log = await hub.requestLog();
        t.true(log.filter((e) => e.path.startsWith(`/${REPO}/`) || e.path.startsWith("/api/models/")).every((e) => e.auth && e.status !== 401));
    } finally {
        await hub.stop();
    }
});

// --- the package index and the vllm test double -------------------------------------------------------

test("uv pip install from the local index installs the vllm test double, whose vllm --version prints the pinned version", async (t) => {
    t.timeout(10 * 60_000);
    const dir = await productVenv();
    const v = await run(`${dir}/bin/vllm`, ["--version"]);
    t.is(v.code, 0, v.stderr);
    t.is(v.stdout.trim(), "0.11.0");
    const imp = await run(`${dir}/bin/python`, ["-c", "import vllm, flashinfer; print(vllm.IS_TEST_DOUBLE, flashinfer.__version__)"]);
    t.is(imp.stdout.trim(), "True 0.3.1", imp.stderr);
    // The real `hf` comes with it, as it does with real vLLM (through transformers).
    const hf = await run(`${dir}/bin/hf`, ["version"], { env: { ...process.env, HF_HUB_DISABLE_UPDATE_CHECK: "1", NO_COLOR: "1" } });
    t.is(hf.code, 0, hf.stderr);

    // The index serves only the wheelhouse: no fallback to PyPI for anything else.
    const env = { ...process.env, UV_CACHE_DIR: tmp("uv-cache-miss") };
    const miss = await run(venv.uv, ["pip", "install", "--dry-run", "--python", `${dir}/bin/python`, "--index-url", index.url, "numpy"], { env });
    t.not(miss.code, 0);

    // A local version such as the gpt-oss preview builds' resolves as well.
    const gptoss = await run(venv.uv, ["pip", "install", "--dry-run", "--python", `${dir}/bin/python`, "--index-url", index.url, "vllm==0.10.1+gptoss"], { env });
    t.is(gptoss.code, 0, gptoss.stderr);
    t.regex(gptoss.stderr, /vllm==0\.10\.1\+gptoss/);
});

test("uv pip compile --generate-hashes against the local index locks the test doubles with the wheelhouse's sha256 sums", async (t) => {
    t.timeout(5 * 60_000);
    const wh = await ensureWheelhouse();
    const work = tmp("lock");
    fs.writeFileSync(path.join(work, "requirements.in"), "vllm==0.11.0\nflashinfer-python==0.3.1\n");
    const env = { ...process.env, UV_CACHE_DIR: tmp("uv-cache-lock") };
    const r = await run(
        venv.uv,
        ["pip", "compile", "requirements.in", "--generate-hashes", "--python-version", "3.12", "--index-url", index.url, "-o", "requirements.lock"],
        { env, cwd: work },
    );
    t.is(r.code, 0, r.stderr);
    const lock = fs.readFileSync(path.join(work, "requirements.lock"), "utf8");
    const vllmWheel = sha256File(path.join(wh.dir, "vllm-0.11.0-py3-none-any.whl"));
    t.regex(lock, new RegExp(`^vllm==0\\.11\\.0 \\\\\\n\\s+--hash=sha256:${vllmWheel}`, "m"));
    t.regex(lock, /^flashinfer-python==0\.3\.1 \\/m);
    t.regex(lock, /^huggingface-hub==/m);
    t.regex(lock, /^six==/m, "six is locked for Python 3.12, as vLLM 0.11.0 declares it for Python > 3.11");
});

interface Served {
    readonly child: ChildProcess;
    readonly port: number;
    readonly url: string;
    output(): string;
    stop(): Promise<number | null>;
}

async function serveDouble(dir: string, args: readonly string[], env: NodeJS.ProcessEnv, port: number): Promise<Served> {
    const child = spawn(`${dir}/bin/vllm`, ["serve", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
        if (child.exitCode !== null) throw new Error(`vllm serve exited ${child.exitCode}:\n${out}`);
        try {
            if ((await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).status === 200) break;
        } catch {
            // not up yet
        }
        if (Date.now() > deadline) throw new Error(`vllm serve did not answer /health in 30 s:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
    }
    return {
        child,
        port,
        url,
        output: () => out,
        stop: async () => {
            if (child.exitCode !== null) return child.exitCode;
            const code = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
            child.kill("SIGTERM");
            return code;
        },
    };
}

test("the vllm test double serves /health and /v1/models from its --config and records argv, config and environment", async (t) => {
    t.timeout(10 * 60_000);
    const dir = await productVenv();
    const hub = await startHfEndpoint(); // only for the fixture's files: the model dir and the tiktoken dir
    await hub.stop();
    const model = hub.repo.dir;
    const tiktokenDir = path.join(path.dirname(path.dirname(model)), "_tiktoken");
    const work = tmp("serve");
    const port = await freePort();
    const config = path.join(work, "vllm.yaml");
    // The shape components/pieces/vllmService.ts renders: a comment header, JSON-quoted strings, bare numbers.
    fs.writeFileSync(
        config,
        `# managed by vllm-workstation\nserved-model-name: "gpt-oss-20b"\nhost: "127.0.0.1"\nport: ${port}\ngpu-memory-utilization: 0.9\nmax-model-len: 8192\nkv-cache-dtype: "auto"\nenforce-eager: true\n`,
    );
    const record = path.join(work, "record.json");
    const env: NodeJS.ProcessEnv = { ...process.env, HF_HUB_OFFLINE: "1", TIKTOKEN_ENCODINGS_BASE: tiktokenDir, VLLM_STANDIN_RECORD: record, VLLM_WS_MARKER: "from-the-test" };
    delete env.VLLM_API_KEY;
    const served = await serveDouble(dir, [model, "--config", config, "--max-num-seqs", "4"], env, port);
    try {
        const models = (await (await fetch(`${served.url}/v1/models`)).json()) as { object: string; data: { id: string; root: string; max_model_len: number }[] };
        t.is(models.object, "list");
        t.deepEqual(
            models.data.map((m) => [m.id, m.root, m.max_model_len]),
            [["gpt-oss-20b", model, 8192]],
        );
        const chat = await fetch(`${served.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ model: "gpt-oss-20b", messages: [{ role: "user", content: "ping" }] }),
        });
        t.is(chat.status, 200);
        const body = (await chat.json()) as { object: string; choices: { message: { role: string; content: string } }[] };
        t.is(body.object, "chat.completion");
        t.is(body.choices[0].message.role, "assistant");
        const wrongModel = await fetch(`${served.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "other", messages: [] }) });
        t.is(wrongModel.status, 404);

        const rec = JSON.parse(fs.readFileSync(record, "utf8"));
        t.deepEqual(rec.argv.slice(1), ["serve", model, "--config", config, "--max-num-seqs", "4"]);
        t.is(rec.model, model);
        t.like(rec.config, { "served-model-name": "gpt-oss-20b", port, "gpu-memory-utilization": 0.9, "enforce-eager": true });
        t.like(rec.args, { "served-model-name": "gpt-oss-20b", port, "max-num-seqs": "4", "enforce-eager": true });
        t.is(rec.env.VLLM_WS_MARKER, "from-the-test");
        t.is(rec.env.HF_HUB_OFFLINE, "1");
        t.is(rec.model_config.model_type, "gpt_oss");
        t.regex(served.output(), /vllm-standin-record: /);
    } finally {
        t.is(await served.stop(), 0, "SIGTERM stops it cleanly");
    }
});

test("the vllm test double refuses to start offline without the model or without the tiktoken encodings", async (t) => {
    t.timeout(10 * 60_000);
    const dir = await productVenv();
    const hub = await startHfEndpoint();
    await hub.stop();
    const base = { ...process.env, HF_HUB_OFFLINE: "1", VLLM_STANDIN_RECORD: path.join(tmp("refuse"), "record.json") };
    const missing = await run(`${dir}/bin/vllm`, ["serve", path.join(scratch, "no-such-model"), "--port", String(await freePort())], { env: base, timeoutMs: 30_000 });
    t.is(missing.code, 1);
    t.regex(missing.stderr, /not available locally and HF_HUB_OFFLINE=1/);
    const repoId = await run(`${dir}/bin/vllm`, ["serve", "openai/gpt-oss-20b"], { env: { ...base, HF_HUB_CACHE: tmp("empty-cache") }, timeoutMs: 30_000 });
    t.is(repoId.code, 1);
    const noTiktoken = await run(`${dir}/bin/vllm`, ["serve", hub.repo.dir], { env: { ...base, TIKTOKEN_ENCODINGS_BASE: tmp("no-tiktoken") }, timeoutMs: 30_000 });
    t.is(noTiktoken.code, 1);
    t.regex(noTiktoken.stderr, /no o200k_base\.tiktoken/);
    const badConfig = await run(`${dir}/bin/vllm`, ["serve", hub.repo.dir, "--config", path.join(scratch, "x.json")], { env: base, timeoutMs: 30_000 });
    t.is(badConfig.code, 2);
    t.regex(badConfig.stderr, /yaml/);
});

test("the vllm test double enforces its API key on /v1 and leaves /health open", async (t) => {
    t.timeout(10 * 60_000);
    const dir = await productVenv();
    const key = "sk-test-" + crypto.randomBytes(12).toString("hex");
    for (const how of ["VLLM_API_KEY", "--api-key"] as const) {
        const port = await freePort();
        const env: NodeJS.ProcessEnv = { ...process.env, VLLM_STANDIN_RECORD: path.join(tmp("key"), "record.json") };
        delete env.HF_HUB_OFFLINE;
        if (how === "VLLM_API_KEY") env.VLLM_API_KEY = key;
        else delete env.VLLM_API_KEY;
        const args = ["some/model", "--port", String(port), ...(how === "--api-key" ? ["--api-key", key] : [])];
        const served = await serveDouble(dir, args, env, port);
        try {
            t.is((await fetch(`${served.url}/health`)).status, 200, how);
            t.is((await fetch(`${served.url}/v1/models`)).status, 401, how);
            t.is((await fetch(`${served.url}/v1/models`, { headers: { Authorization: "Bearer wrong" } })).status, 401, how);
            const ok = await fetch(`${served.url}/v1/models`, { headers: { Authorization: `Bearer ${key}` } });
            t.is(ok.status, 200, how);
            t.is(((await ok.json()) as { data: { id: string }[] }).data[0].id, "some/model", "served under the model's name by default");
            t.false(served.output().includes(key), "the key stays out of the log");
        } finally {
            await served.stop();
        }
    }
});
