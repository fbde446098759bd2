// The model step's download script (components/pieces/model.ts), run as the apply script runs it, with the real
// huggingface_hub 1.33.0 (the release the stack's vLLM pins bring) against the Hub double, on this
// machine: the ranged fetch of a large file, a cut connection, a redirect to a CDN, and hf alone. The
// lifecycle on the box (kill and resume, a full disk) is in faults.integration.test.ts.
import test, { ExecutionContext } from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Model, parseConfig } from "../../components/config/schema";
import { layout, modelScripts } from "../../components/pieces/model";
import { tempDir } from "../helpers/tempDir";
import { ensureWheelhouse, getsOf, HfEndpoint, HfEndpointOptions, RequestLogEntry, run, sha256File, startHfEndpoint, withUserinfo } from "../infra/servers/index";

const REPO = "openai/gpt-oss-20b";
const WEIGHTS = "model-00000-of-00001.safetensors";
const MiB = 1 << 20;
const weightsBytes = 20 * MiB;
const repos = [{ repoId: REPO, weightsBytes }];

let python: string;

test.before("a venv with huggingface_hub 1.33.0 from the test wheelhouse", async () => {
    const wh = await ensureWheelhouse();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-model-it-"));
    process.on("exit", () => fs.rmSync(scratch, { recursive: true, force: true }));
    const dir = path.join(scratch, "venv");
    const env = { ...process.env, UV_PYTHON_DOWNLOADS: "never", UV_CACHE_DIR: path.join(scratch, "uv-cache") };
    for (const args of [
        ["venv", "-q", "--python", "python3", dir],
        ["pip", "install", "-q", "--offline", "--no-index", "--find-links", wh.dir, "--python", path.join(dir, "bin", "python"), "huggingface_hub==1.33.0"],
    ]) {
        const r = await run(wh.venv.uv, args, { env });
        if (r.code !== 0) throw new Error(`uv ${args.join(" ")} failed:\n${r.stderr}`);
    }
    python = path.join(dir, "bin", "python");
});

/** The download script as apply renders it: the heredoc after the line that starts it. */
function downloadScript(): string {
    const lines = modelScripts(parseConfig({ model: { revision: "0".repeat(40) } }).model, "/venv").apply.split("\n");
    // It starts with the URL credential helpers (originAuthPy), which only the download script uses.
    const start = lines.findIndex((l, i) => l.includes("<<'VLLM_WS_PY'") && lines[i + 1]?.startsWith("import base64, urllib.parse"));
    const end = lines.indexOf("VLLM_WS_PY", start + 1);
    return lines.slice(start + 1, end).join("\n");
}

interface Download {
    code: number;
    stderr: string;
    cache: string;
    log: RequestLogEntry[];
}

async function download(t: ExecutionContext, hub: HfEndpoint, opts: { connections?: number; token?: string; cache?: string; endpoint?: string } = {}): Promise<Download> {
    const dir = tempDir(t, "model-it");
    const cache = opts.cache ?? path.join(dir, "hf");
    fs.writeFileSync(path.join(dir, "download.py"), downloadScript());
    const env: NodeJS.ProcessEnv = { ...process.env, HF_ENDPOINT: opts.endpoint ?? hub.url, HF_HUB_CACHE: cache, HF_HOME: path.join(dir, "home"), HF_HUB_DISABLE_TELEMETRY: "1" };
    for (const k of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"]) delete env[k];
    if (opts.token) env.HF_TOKEN = opts.token;
    await hub.clearRequestLog();
    const r = await run(python, [path.join(dir, "download.py"), REPO, hub.commitSha, cache, String(opts.connections ?? 4), "original/*", "metal/*"], { env, timeoutMs: 120_000 });
    return { code: r.code, stderr: r.stderr, cache, log: await hub.requestLog() };
}

function weightsIn(cache: string, hub: HfEndpoint): string {
    const m = Model.parse({ revision: hub.commitSha, cacheDir: cache });
    return path.join(layout(m).snapshot, WEIGHTS);
}

const sha256 = sha256File;
const weightsGets = (log: readonly RequestLogEntry[]) => getsOf(log, WEIGHTS);

async function withHub<T>(opts: HfEndpointOptions, f: (hub: HfEndpoint) => Promise<T>): Promise<T> {
    const hub = await startHfEndpoint({ repos, ...opts });
    try {
        return await f(hub);
    } finally {
        await hub.stop();
    }
}

test("a large file comes over model.connections ranged GETs straight into hf's blob, which the snapshot links", async (t) => {
    await withHub({}, async (hub) => {
        const d = await download(t, hub);
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        // Four ranges of a quarter each (the last one shorter), as the script splits a file.
        const size = hub.repo.files[WEIGHTS].size;
        const step = Math.ceil(size / 4);
        const ranges = [0, 1, 2, 3].map((i) => `bytes=${i * step}-${Math.min((i + 1) * step, size) - 1}`);
        t.deepEqual(gets.map((g) => g.range).sort(), ranges.sort());
        t.true(gets.every((g) => g.status === 206 && g.complete));
        const file = weightsIn(d.cache, hub);
        const sum = hub.repo.files[WEIGHTS].lfs!.sha256;
        t.is(path.basename(fs.realpathSync(file)), sum, "the blob is named by its sha256, as hf names it");
        t.is(sha256(file), sum);
        t.regex(d.stderr, /fetching model-00000-of-00001\.safetensors \(21 MB\) over 4 connections/);
        const blobs = path.dirname(fs.realpathSync(file));
        t.deepEqual(fs.readdirSync(blobs).filter((f) => f.includes("incomplete")), [], "no partial file or record is left");
        for (const f of Object.keys(hub.repo.files).filter((f) => !f.startsWith("original/"))) t.true(fs.existsSync(path.join(path.dirname(file), f)), f);
    });
});

test("a connection cut in the middle of a range is retried from the byte it stopped at, and the file is whole", async (t) => {
    await withHub({ dropAfterBytes: 3 * MiB, dropTimes: 2 }, async (hub) => {
        const d = await download(t, hub);
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        const cut = gets.filter((g) => g.dropped);
        t.is(cut.length, 2);
        for (const c of cut) {
            const [start, end] = /bytes=(\d+)-(\d+)/.exec(c.range!)!.slice(1).map(Number);
            t.true(gets.some((g) => g.range === `bytes=${start + c.bytes}-${end}` && g.complete), `the rest of ${c.range} was asked for`);
        }
        t.is(gets.reduce((n, g) => n + g.bytes, 0), hub.repo.files[WEIGHTS].size, "no byte was fetched twice");
        t.regex(d.stderr, /retrying from byte \d+/);
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
    });
});

test("with a token, the ranged GETs that follow the Hub's redirect to its CDN carry no Authorization", async (t) => {
    await withHub({ token: "hf_test_token", cdnHost: "localhost" }, async (hub) => {
        const d = await download(t, hub, { token: "hf_test_token" });
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        t.is(gets.length, 4);
        t.true(gets.every((g) => g.host === `localhost:${hub.port}` && g.query === "signed=1" && !g.auth), JSON.stringify(gets));
        const hub_ = d.log.filter((e) => e.host === `127.0.0.1:${hub.port}`);
        t.true(hub_.length > 0 && hub_.every((e) => e.auth), "every request to the endpoint itself had the token");
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
    });
});

test("with credentials in HF_ENDPOINT, hf and the ranged GETs send them as basic auth to the endpoint, and never to its CDN", async (t) => {
    const auth = { user: "mirror-user", password: "mirror%pw-1" };
    for (const cdnHost of [undefined, "localhost"]) {
        await withHub({ basicAuth: auth, cdnHost }, async (hub) => {
            const d = await download(t, hub, { endpoint: withUserinfo(hub.url, auth) });
            t.is(d.code, 0, d.stderr);
            const gets = weightsGets(d.log);
            t.is(gets.length, 4, "the weights came over ranges");
            const home = d.log.filter((e) => e.host === `127.0.0.1:${hub.port}`);
            t.deepEqual(home.filter((e) => e.auth_kind !== "basic").map((e) => `${e.method} ${e.path}`), [], "every request to the endpoint had the credentials");
            t.deepEqual(d.log.filter((e) => e.host !== `127.0.0.1:${hub.port}` && e.auth).map((e) => e.path), [], "none to the CDN");
            if (cdnHost) t.true(gets.every((g) => g.host === `localhost:${hub.port}`));
            t.false(/mirror-user|mirror%pw-1|mirror%25pw-1/.test(d.stderr), "no message shows them");
            t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
        });
    }
});

// The same redirect through huggingface_hub alone: what the double's 302 looks like to hf's own client,
// and the behaviour the ranged fetch keeps to.
test("a CDN URL that expires in the middle of the download is renewed from the endpoint, and the ranges go on from where they were", async (t) => {
    // Each signature is good for two GETs: two of the four ranges find theirs expired at once.
    await withHub({ token: "hf_test_token", cdnHost: "localhost", cdnExpireAfter: 2 }, async (hub) => {
        const d = await download(t, hub, { token: "hf_test_token" });
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        const refused = gets.filter((g) => g.status === 403);
        t.true(refused.length >= 1, JSON.stringify(gets));
        t.regex(d.stderr, /Request has expired|HTTP Error 403/);
        t.regex(d.stderr, /asking the endpoint for a new URL/);
        t.true(new Set(gets.filter((g) => g.status === 206).map((g) => g.query)).size >= 2, "a newer signature was used");
        t.true(gets.every((g) => !g.auth), "the token never went to the CDN");
        t.is(gets.filter((g) => g.status === 206).reduce((n, g) => n + g.bytes, 0), hub.repo.files[WEIGHTS].size, "no byte was fetched twice");
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
    });
});

test("with a token and model.connections 1, huggingface_hub follows the redirect to the CDN without Authorization too", async (t) => {
    await withHub({ token: "hf_test_token", cdnHost: "localhost" }, async (hub) => {
        const d = await download(t, hub, { token: "hf_test_token", connections: 1 });
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        t.deepEqual(gets.map((g) => [g.host, g.auth, g.status]), [[`localhost:${hub.port}`, false, 200]]);
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
    });
});

test("with model.connections 1 every file is left to huggingface_hub: one whole GET of the weights", async (t) => {
    await withHub({}, async (hub) => {
        const d = await download(t, hub, { connections: 1 });
        t.is(d.code, 0, d.stderr);
        const gets = weightsGets(d.log);
        t.deepEqual(gets.map((g) => [g.range, g.status]), [[null, 200]]);
        t.notRegex(d.stderr, /fetching model-00000/);
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
    });
});

test("an endpoint that ignores Range requests gets the file from huggingface_hub over one connection", async (t) => {
    await withHub({ ignoreRange: true }, async (hub) => {
        const d = await download(t, hub);
        t.is(d.code, 0, d.stderr);
        t.regex(d.stderr, /model-00000-of-00001\.safetensors: the endpoint answered 200 to a Range request; hf fetches it over one connection/);
        const whole = weightsGets(d.log).filter((g) => g.range === null);
        t.deepEqual(whole.map((g) => [g.status, g.complete]), [[200, true]]);
        t.is(sha256(weightsIn(d.cache, hub)), hub.repo.files[WEIGHTS].lfs!.sha256);
        t.deepEqual(fs.readdirSync(path.dirname(fs.realpathSync(weightsIn(d.cache, hub)))).filter((f) => f.includes("incomplete")), []);
    });
});

test("a record of ranges left beside a finished blob (a kill between the rename and the record's removal) is cleared, and nothing is fetched", async (t) => {
    await withHub({}, async (hub) => {
        const first = await download(t, hub);
        t.is(first.code, 0, first.stderr);
        const link = weightsIn(first.cache, hub);
        const blob = fs.realpathSync(link);
        fs.writeFileSync(`${blob}.vllm-ws.incomplete.json`, JSON.stringify({ size: hub.repo.files[WEIGHTS].size, parts: [] }));
        fs.rmSync(link);
        const again = await download(t, hub, { cache: first.cache });
        t.is(again.code, 0, again.stderr);
        t.deepEqual(weightsGets(again.log), [], "the blob was there: hf only linked it");
        t.deepEqual(fs.readdirSync(path.dirname(blob)).filter((f) => f.includes("incomplete")), []);
        t.is(fs.realpathSync(link), blob);
    });
});

test("a wrong token fails the download with the endpoint's answer and fetches nothing", async (t) => {
    await withHub({ token: "hf_test_token" }, async (hub) => {
        const d = await download(t, hub, { token: "hf_wrong" });
        t.is(d.code, 1);
        t.regex(d.stderr, /Invalid credentials in Authorization header/);
        t.deepEqual(weightsGets(d.log), []);
    });
});
