import test, { ExecutionContext } from "ava";
import { heredocs, pythonParses, runScript, syntaxOk } from "../helpers/script";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Model, parseConfig } from "../../components/config/schema";
import { layout, modelEnv, modelScripts } from "../../components/pieces/model";
import { q } from "../../components/host/shell";
import { tempDir } from "../helpers/tempDir";

const revision = "0123456789abcdef0123456789abcdef01234567";
const defaults = parseConfig({ model: { revision } }).model;
const venv = "/opt/vllm-workstation/venv";

const strict = (script: string) => runScript(script);

const hex = (algo: string, data: string | Buffer) => crypto.createHash(algo).update(data).digest("hex");


test("the layout follows the Hugging Face cache: models--owner--name/snapshots/<revision>", (t) => {
    t.deepEqual(layout(defaults), {
        repoDir: "/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b",
        snapshot: `/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/snapshots/${revision}`,
        manifest: `/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/.vllm-workstation-manifest-${revision}.json`,
        tiktokenDir: "/var/lib/vllm-workstation/hf-tiktoken",
    });
});

test("the layout follows a custom repository and cache dir", (t) => {
    const m = parseConfig({ model: { revision, repo: "my-org/my.model_v2", cacheDir: "/srv/hf" } }).model;
    t.is(layout(m).snapshot, `/srv/hf/models--my-org--my.model_v2/snapshots/${revision}`);
    t.is(layout(m).tiktokenDir, "/srv/hf-tiktoken");
});

test("with keepOnDestroy the remove script deletes nothing and says so", (t) => {
    const m = parseConfig({ model: { revision, keepOnDestroy: true } }).model;
    const remove = modelScripts(m, venv).remove;
    t.false(/\brm\b/.test(remove));
    t.false(/rmdir/.test(remove));
    t.is(strict(remove).stderr, "keeping openai/gpt-oss-20b in /var/lib/vllm-workstation/hf (model.keepOnDestroy)\n");
});

test("without keepOnDestroy the remove script removes the pinned revision, the one served before it and the encodings, and releases the directories", (t) => {
    const remove = modelScripts(defaults, venv).remove.split("\n");
    t.deepEqual(remove, [
        "own_release_hf_revision '/var/lib/vllm-workstation/hf' 'openai/gpt-oss-20b' '0123456789abcdef0123456789abcdef01234567'",
        "own_prune_hf_revisions '/var/lib/vllm-workstation/hf' 'openai/gpt-oss-20b'",
        "# With the .part file a fetch cut off midway left of each.",
        "rm -f '/var/lib/vllm-workstation/hf-tiktoken/cl100k_base.tiktoken' '/var/lib/vllm-workstation/hf-tiktoken/cl100k_base.tiktoken.part' '/var/lib/vllm-workstation/hf-tiktoken/o200k_base.tiktoken' '/var/lib/vllm-workstation/hf-tiktoken/o200k_base.tiktoken.part'",
        "own_release_dir '/var/lib/vllm-workstation/hf-tiktoken'",
        "own_release_dir '/var/lib/vllm-workstation/hf'",
    ]);
});

test("remove keeps other models and their locks in a shared cache dir", (t) => {
    const dir = tempDir(t, "model");
    // The model section alone: the whole config refuses a cache under /tmp, which the stack would own.
    const m = Model.parse({ revision, cacheDir: `${dir}/hf` });
    const l = layout(m);
    // The revision as the model's apply noted it before its download.
    t.is(strict(`own_claim_hf_revision ${q(m.cacheDir)} ${q(m.repo)} ${revision}`).code, 0);
    const others = [`${dir}/hf/models--other--model/snapshots/x/f`, `${dir}/hf/.locks/models--other--model/f.lock`, `${dir}/hf/version.txt`, `${dir}/hf/CACHEDIR.TAG`];
    for (const f of [`${l.snapshot}/config.json`, `${dir}/hf/.locks/models--openai--gpt-oss-20b/a.lock`, `${l.tiktokenDir}/o200k_base.tiktoken`, `${l.tiktokenDir}/.vllm-workstation-made-this`, ...others]) {
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, "x");
    }
    const r = strict(modelScripts(m, venv).remove);
    t.is(r.code, 0, r.stderr);
    t.false(fs.existsSync(l.repoDir));
    t.false(fs.existsSync(l.tiktokenDir));
    t.false(fs.existsSync(`${dir}/hf/.locks/models--openai--gpt-oss-20b`));
    for (const f of others) t.true(fs.existsSync(f), f);
});

test("remove takes the cache dir away when nothing else is in it", (t) => {
    const dir = tempDir(t, "model");
    const m = Model.parse({ revision, cacheDir: `${dir}/hf` });
    const l = layout(m);
    t.is(strict(`own_claim_hf_revision ${q(m.cacheDir)} ${q(m.repo)} ${revision}`).code, 0);
    const madeByApply = [`${dir}/hf/.vllm-workstation-made-this`, `${l.tiktokenDir}/.vllm-workstation-made-this`, `${dir}/hf/CACHEDIR.TAG`];
    for (const f of [`${l.snapshot}/config.json`, `${dir}/hf/.locks/models--openai--gpt-oss-20b/a.lock`, `${l.tiktokenDir}/o200k_base.tiktoken`, ...madeByApply]) {
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, "x");
    }
    const r = strict(modelScripts(m, venv).remove);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(fs.readdirSync(dir), []);
    t.is(strict(modelScripts(m, venv).remove).code, 0, "remove is safe to run again");
});

/** The line that runs the download script, and the one that runs the verifier. */
function pythonLines(apply: string): { download: string; verify: string } {
    const lines = apply.split("\n");
    const at = (first: string) => lines[lines.findIndex((l, i) => l.includes("<<'VLLM_WS_PY'") && lines[i + 1]?.startsWith(first))];
    // The download starts with the URL credential helpers (originAuthPy), the verifier with its own imports.
    return { download: at("import base64, urllib.parse"), verify: at("import fnmatch, hashlib") };
}

test("apply downloads with the venv's Python at the pinned revision into the cache dir, over model.connections, without HF_ENDPOINT by default", (t) => {
    const apply = modelScripts(defaults, venv).apply;
    t.is(
        pythonLines(apply).download,
        `  HF_HUB_CACHE='/var/lib/vllm-workstation/hf' '${venv}/bin/python' - 'openai/gpt-oss-20b' '${revision}' '/var/lib/vllm-workstation/hf' 4 'original/*' 'metal/*' <<'VLLM_WS_PY'`,
    );
    t.false("HF_ENDPOINT" in modelEnv(defaults));
    const one = modelScripts(parseConfig({ model: { revision, connections: 1 } }).model, venv).apply;
    t.true(pythonLines(one).download.includes(`'/var/lib/vllm-workstation/hf' 1 'original/*'`));
});

test("apply skips the excluded files in the download and in the verification, and passes none when none are", (t) => {
    const { download, verify } = pythonLines(modelScripts(defaults, venv).apply);
    t.true(download.endsWith(` 4 'original/*' 'metal/*' <<'VLLM_WS_PY'`));
    t.true(verify.endsWith(`'/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/.vllm-workstation-manifest-${revision}.json' 'original/*' 'metal/*' <<'VLLM_WS_PY'`));
    const none = modelScripts(parseConfig({ model: { revision, exclude: [] } }).model, venv).apply;
    t.true(pythonLines(none).download.endsWith(` 4 <<'VLLM_WS_PY'`));
    t.false(none.includes("'original/*'"));
});

test("a mirror reaches the download and the verification as HF_ENDPOINT in the step's secret environment, never in the script", (t) => {
    const m = parseConfig({ model: { revision, endpoint: "https://hf-mirror.example.com" } }).model;
    t.is(modelEnv(m).HF_ENDPOINT, "https://hf-mirror.example.com");
    const apply = modelScripts(m, venv).apply;
    t.false(apply.includes("HF_ENDPOINT="), "set nowhere in the script: it is exported before it");
    t.true(apply.split("\n").some((l) => l.includes("from https://hf-mirror.example.com")));
});

test("credentials in model.endpoint and model.tiktoken.baseUrl stay out of every script; only their hosts show", (t) => {
    const m = parseConfig({
        model: { revision, endpoint: "https://mirror-user:mirror-s3cret@hf-mirror.example.com", tiktoken: { baseUrl: "https://enc-user:enc-s3cret@enc.example.com/encodings" } },
    }).model;
    const s = modelScripts(m, venv);
    for (const text of [s.apply, s.probe, s.expected, s.remove]) {
        t.false(/s3cret|mirror-user|enc-user/.test(text));
    }
    t.true(s.apply.includes("https://***@hf-mirror.example.com"));
    t.true(s.apply.includes("https://***@enc.example.com/encodings"));
    t.deepEqual(modelEnv(m), { VLLM_WS_TIKTOKEN_BASE: "https://enc-user:enc-s3cret@enc.example.com/encodings", HF_ENDPOINT: "https://mirror-user:mirror-s3cret@hf-mirror.example.com" });
    // Another host is another script; a rotated password alone is not.
    const rotated = parseConfig({ model: { revision, endpoint: "https://mirror-user:rotated-pw@hf-mirror.example.com", tiktoken: m.tiktoken } }).model;
    t.is(modelScripts(rotated, venv).apply, s.apply);
    const moved = parseConfig({ model: { revision, endpoint: "https://mirror-user:mirror-s3cret@other-mirror.example.com", tiktoken: m.tiktoken } }).model;
    t.not(modelScripts(moved, venv).apply, s.apply);
});

test("apply clears hf's unresumable partial files before a download and keeps the resumable ones", (t) => {
    const line = modelScripts(defaults, venv).apply.split("\n").find((l) => l.includes("-name '*.*.incomplete'"));
    t.is(line, `  [ -d '/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/blobs' ] && find '/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/blobs' -maxdepth 1 -name '*.*.incomplete' ! -name '*.vllm-ws.incomplete' -delete`);
});

test("the embedded Python snippets are valid Python", (t) => {
    const s = modelScripts(defaults, venv);
    const fromApply = heredocs(s.apply);
    const fromProbe = heredocs(s.probe);
    t.is(fromApply.length, 3, "the manifest check, the download and the verifier");
    t.is(fromProbe.length, 1);
    for (const body of [...fromApply, ...fromProbe]) t.is(pythonParses(body), "ok");
    t.is(fromApply[0], fromProbe[0], "apply and probe check the manifest the same way");
});

test("every model script is valid bash", (t) => {
    for (const raw of [{}, { keepOnDestroy: true }, { endpoint: "https://hf-mirror.example.com" }]) {
        const s = modelScripts(parseConfig({ model: { revision, ...raw } }).model, venv);
        t.is(syntaxOk(s.apply), "ok");
        t.is(syntaxOk(s.probe), "ok");
        t.is(syntaxOk(s.remove), "ok");
    }
});

test("expected is the verified revision and each tiktoken file present, in name order", (t) => {
    t.is(modelScripts(defaults, venv).expected, `model=${revision} files=verified\ncl100k_base.tiktoken=present\no200k_base.tiktoken=present`);
    const m = parseConfig({ model: { revision, tiktoken: { files: { "z.tiktoken": "a".repeat(64), "b.tiktoken": "b".repeat(64), "m.tiktoken": "c".repeat(64) } } } }).model;
    t.deepEqual(modelScripts(m, venv).expected.split("\n").slice(1), ["b.tiktoken=present", "m.tiktoken=present", "z.tiktoken=present"]);
});

test("apply checks each tiktoken file against its configured sha256", (t) => {
    const apply = modelScripts(defaults, venv).apply;
    for (const [file, sum] of Object.entries(defaults.tiktoken.files)) {
        t.true(apply.includes(`echo '${sum}  /var/lib/vllm-workstation/hf-tiktoken/${file}' | sha256sum -c --status`));
        // The URL reaches curl on stdin, from the step's environment: the script names only the file.
        t.true(apply.includes(`-K - <<<"url = \\"$tiktoken_url/"'${file}'"\\""`));
    }
    t.is(modelEnv(defaults).VLLM_WS_TIKTOKEN_BASE, "https://openaipublic.blob.core.windows.net/encodings");
});

// A box in a temp dir: tiktoken files served from file://, and the venv's python standing in with a
// fake huggingface_hub that answers model_info from hub.json and whose snapshot_download copies a
// prepared snapshot and logs its call. Its files are small, so the download script leaves them all to
// snapshot_download; the ranged fetch of large files meets the real huggingface_hub and the Hub double
// in the integration tests.
function fakeBox(t: ExecutionContext, opts: { endpoint?: string; keepOnDestroy?: boolean; exclude?: string[] } = {}) {
    const dir = tempDir(t, "model");
    const encodings = { "a.tiktoken": "encoding a\n", "b.tiktoken": "encoding b\n" };
    fs.mkdirSync(`${dir}/enc`);
    for (const [f, text] of Object.entries(encodings)) fs.writeFileSync(`${dir}/enc/${f}`, text);
    // The model section alone (the whole config refuses a cache under /tmp, which the stack would own),
    // with the encodings read through file:// so the test needs no server; the stack itself takes only http(s).
    const section = Model.parse({
        revision,
        cacheDir: `${dir}/hf`,
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(opts.keepOnDestroy ? { keepOnDestroy: true } : {}),
        ...(opts.exclude ? { exclude: opts.exclude } : {}),
    });
    const m = { ...section, tiktoken: { baseUrl: `file://${dir}/enc`, files: Object.fromEntries(Object.entries(encodings).map(([f, text]) => [f, hex("sha256", text)])) } };
    const l = layout(m);
    const files: Record<string, string> = { "config.json": '{"model_type": "gpt_oss"}\n', "model.safetensors": "pretend these are weights\n" };
    fs.mkdirSync(`${dir}/download`);
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(`${dir}/download/${f}`, text);
    const hub = {
        sha: revision,
        siblings: [
            { rfilename: "config.json", size: Buffer.byteLength(files["config.json"]), lfs: null, blob_id: hex("sha1", Buffer.concat([Buffer.from(`blob ${Buffer.byteLength(files["config.json"])}\0`), Buffer.from(files["config.json"])])) },
            { rfilename: "model.safetensors", size: Buffer.byteLength(files["model.safetensors"]), lfs: { sha256: hex("sha256", files["model.safetensors"]) }, blob_id: "ignored-for-lfs" },
            // Excluded by the default model.exclude: never downloaded, so verification must skip it.
            { rfilename: "original/model.safetensors", size: 1000, lfs: { sha256: "e".repeat(64) }, blob_id: "ignored-for-lfs" },
            { rfilename: "metal/model.bin", size: 1000, lfs: { sha256: "f".repeat(64) }, blob_id: "ignored-for-lfs" },
        ],
    };
    fs.writeFileSync(`${dir}/hub.json`, JSON.stringify(hub));
    fs.mkdirSync(`${dir}/fakehub/huggingface_hub`, { recursive: true });
    fs.writeFileSync(
        `${dir}/fakehub/huggingface_hub/__init__.py`,
        [
            "import json, os, shutil",
            "from types import SimpleNamespace as NS",
            "class HfApi:",
            "    def model_info(self, repo, revision=None, files_metadata=False):",
            `        d = json.load(open(${JSON.stringify(`${dir}/hub.json`)}))`,
            "        sibs = [NS(rfilename=s['rfilename'], size=s['size'], lfs=NS(**s['lfs']) if s['lfs'] else None, blob_id=s['blob_id']) for s in d['siblings']]",
            "        return NS(sha=d['sha'], siblings=sibs)",
            "def hf_hub_url(repo, filename, revision=None):",
            "    return 'https://hub.invalid/%s/resolve/%s/%s' % (repo, revision, filename)",
            "def get_hf_file_metadata(url):",
            "    raise AssertionError('a file the fake Hub lists as small was fetched in ranges: ' + url)",
            "def snapshot_download(repo_id, revision, cache_dir, ignore_patterns=None):",
            `    with open(${JSON.stringify(`${dir}/hf.log`)}, 'a') as f:`,
            "        f.write(json.dumps({'repo_id': repo_id, 'revision': revision, 'cache_dir': cache_dir, 'ignore_patterns': ignore_patterns, 'HF_HUB_CACHE': os.environ.get('HF_HUB_CACHE'), 'HF_ENDPOINT': os.environ.get('HF_ENDPOINT')}) + '\\n')",
            "    snap = os.path.join(cache_dir, 'models--' + repo_id.replace('/', '--'), 'snapshots', revision)",
            "    os.makedirs(snap, exist_ok=True)",
            `    src = ${JSON.stringify(`${dir}/download`)}`,
            "    for f in os.listdir(src):",
            "        shutil.copy(os.path.join(src, f), snap)",
            "",
        ].join("\n"),
    );
    fs.writeFileSync(`${dir}/fakehub/huggingface_hub/utils.py`, "def build_hf_headers():\n    return {}\n");
    const venvPath = `${dir}/venv`;
    fs.mkdirSync(`${venvPath}/bin`, { recursive: true });
    fs.writeFileSync(`${venvPath}/bin/python`, `#!/bin/sh\nPYTHONPATH='${dir}/fakehub' exec python3 "$@"\n`, { mode: 0o755 });
    type Call = { repo_id: string; revision: string; cache_dir: string; ignore_patterns: string[] | null; HF_HUB_CACHE: string | null; HF_ENDPOINT: string | null };
    const hfCalls = (): Call[] => (fs.existsSync(`${dir}/hf.log`) ? fs.readFileSync(`${dir}/hf.log`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Call) : []);
    // apply with its secret environment exported first, as the provider's step runs it (host/connection.ts).
    const scripts = modelScripts(m, venvPath);
    const exports = Object.entries(modelEnv(m)).map(([k, v]) => `export ${k}=${q(v)}\n`).join("");
    return { dir, m, l, venvPath, hfCalls, scripts: { ...scripts, apply: exports + scripts.apply } };
}

test("on an empty box the probe reports the model and every tiktoken file missing", (t) => {
    const box = fakeBox(t);
    const r = strict(box.scripts.probe);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, "model=missing\na.tiktoken=missing\nb.tiktoken=missing\n");
});

test("apply fetches the encodings, downloads and verifies the model; the probe then prints exactly expected", (t) => {
    const box = fakeBox(t);
    const r = strict(box.scripts.apply);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(box.hfCalls(), [{ repo_id: "openai/gpt-oss-20b", revision, cache_dir: `${box.dir}/hf`, ignore_patterns: ["original/*", "metal/*"], HF_HUB_CACHE: `${box.dir}/hf`, HF_ENDPOINT: null }]);
    t.true(r.stderr.includes("verified config.json"));
    t.true(r.stderr.includes("verified model.safetensors"));
    t.is(fs.readFileSync(`${box.l.tiktokenDir}/a.tiktoken`, "utf8"), "encoding a\n");
    t.deepEqual(fs.readdirSync(box.l.tiktokenDir).filter((f) => !f.startsWith(".vllm-workstation")).sort(), ["a.tiktoken", "b.tiktoken"], "no .part file is left");
    const manifest = JSON.parse(fs.readFileSync(box.l.manifest, "utf8"));
    t.is(manifest.revision, revision);
    t.deepEqual(
        manifest.files.map((f: [string, number, number]) => f.slice(0, 2)),
        ["config.json", "model.safetensors"].map((f) => [f, fs.statSync(`${box.l.snapshot}/${f}`).size]),
    );
    t.is(strict(box.scripts.probe).stdout.trim(), box.scripts.expected);
});

test("apply on a box that is already converged downloads nothing", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    const again = strict(box.scripts.apply);
    t.is(again.code, 0, again.stderr);
    t.is(again.stderr, "");
    t.is(box.hfCalls().length, 1);
});

test("apply hands the configured mirror to huggingface_hub as HF_ENDPOINT", (t) => {
    const box = fakeBox(t, { endpoint: "https://hf-mirror.example.com" });
    const r = strict(box.scripts.apply);
    t.is(r.code, 0, r.stderr);
    t.is(box.hfCalls()[0].HF_ENDPOINT, "https://hf-mirror.example.com");
});

test("apply refuses a tiktoken file whose sha256 differs and leaves no partial file", (t) => {
    const box = fakeBox(t);
    fs.writeFileSync(`${box.dir}/enc/b.tiktoken`, "tampered\n");
    const r = strict(box.scripts.apply);
    t.is(r.code, 1);
    t.true(r.stderr.includes(`b.tiktoken from file://${box.dir}/enc does not match sha256 ${hex("sha256", "encoding b\n")}`));
    t.deepEqual(fs.readdirSync(box.l.tiktokenDir).filter((f) => !f.startsWith(".vllm-workstation")), ["a.tiktoken"]);
    t.deepEqual(box.hfCalls(), [], "the model is not downloaded after a failed step");
});

test("apply fails on a corrupt download and moves the repository away so the next run fetches it again", (t) => {
    const box = fakeBox(t);
    fs.writeFileSync(`${box.dir}/download/model.safetensors`, "corrupted weights\n");
    const r = strict(box.scripts.apply);
    t.is(r.code, 1);
    t.true(r.stderr.includes(`verification failed for openai/gpt-oss-20b@${revision}`));
    t.regex(r.stderr, /model\.safetensors: expected [0-9a-f]{64}, got [0-9a-f]{64}/);
    t.false(fs.existsSync(box.l.repoDir));
});

/** What the record says of the pinned revision (own.sh's entry for it), or "" when it holds nothing. */
const revisionKind = (box: ReturnType<typeof fakeBox>) => strict(`own_kind ${q(`hf-revision ${box.m.cacheDir} ${box.m.repo} ${revision}`)}`).stdout.trim();

/** The pinned revision as someone's own download (HF_HUB_CACHE pointed at the stack's cache) left it there. */
function someonesDownload(box: ReturnType<typeof fakeBox>): void {
    const made = strict(`own_dir ${q(box.m.cacheDir)}`);
    if (made.code !== 0) throw new Error(made.stderr);
    fs.mkdirSync(box.l.snapshot, { recursive: true });
    for (const f of fs.readdirSync(`${box.dir}/download`)) fs.copyFileSync(`${box.dir}/download/${f}`, `${box.l.snapshot}/${f}`);
}

test("the pinned revision is in the record as the stack's before its download, so destroy removes one cut off midway", (t) => {
    const box = fakeBox(t);
    // The download dies once it has made the snapshot's first file.
    const hfInit = `${box.dir}/fakehub/huggingface_hub/__init__.py`;
    fs.writeFileSync(hfInit, fs.readFileSync(hfInit, "utf8").replace("        shutil.copy(os.path.join(src, f), snap)", "        shutil.copy(os.path.join(src, f), snap); os._exit(9)"));
    t.not(strict(box.scripts.apply).code, 0);
    t.is(fs.readdirSync(box.l.snapshot).length, 1, "a partial snapshot");
    t.is(revisionKind(box), "made");
    const r = strict(box.scripts.remove);
    t.is(r.code, 0, r.stderr);
    t.false(fs.existsSync(box.l.repoDir));
});

test("a pinned revision someone had downloaded into the cache is used, adopted, and left in place by destroy", (t) => {
    const box = fakeBox(t);
    someonesDownload(box);
    const r = strict(box.scripts.apply);
    t.is(r.code, 0, r.stderr);
    t.true(r.stderr.includes(`using ${box.l.snapshot}, which was in the cache before: vllm-workstation leaves it in place`), r.stderr);
    t.is(revisionKind(box), "adopted");
    t.is(strict(box.scripts.probe).stdout.trim(), box.scripts.expected);
    // A switch that succeeds notes the revision it serves: the entry stays adopted.
    t.is(strict(`own_note_hf_revision ${q(box.m.cacheDir)} ${q(box.m.repo)} ${revision}`).code, 0);
    t.is(revisionKind(box), "adopted");
    const again = strict(box.scripts.apply);
    t.is(again.code, 0, again.stderr);
    t.is(again.stderr, "", "a converged box says nothing");
    const removed = strict(box.scripts.remove);
    t.is(removed.code, 0, removed.stderr);
    t.true(removed.stderr.includes(`leaving ${box.l.snapshot}: vllm-workstation did not download it`), removed.stderr);
    t.deepEqual(fs.readdirSync(box.l.snapshot).sort(), ["config.json", "model.safetensors"]);
    t.false(fs.existsSync(box.l.manifest), "the stack's manifest of it goes");
    t.is(revisionKind(box), "", "and so does its entry");
});

test("a pinned revision someone downloaded that does not verify is left in place, named, and the apply fails", (t) => {
    const box = fakeBox(t);
    someonesDownload(box);
    fs.writeFileSync(`${box.l.snapshot}/model.safetensors`, "their own fine-tune\n");
    fs.writeFileSync(`${box.dir}/download/model.safetensors`, "their own fine-tune\n");
    const r = strict(box.scripts.apply);
    t.is(r.code, 1);
    t.true(r.stderr.includes(`leaving ${box.l.snapshot}: it was in the cache before vllm-workstation used it, and its files do not match the Hub's; move it away, then run pulumi up again`), r.stderr);
    t.is(fs.readFileSync(`${box.l.snapshot}/model.safetensors`, "utf8"), "their own fine-tune\n");
});

test("a revision the stack verified before keeps its entry as the stack's, and one adopted whose snapshot is gone is downloaded as the stack's", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    t.is(revisionKind(box), "made");
    // An entry lost (an earlier release noted none): the stack's manifest of it says whose it is.
    t.is(strict(`own_forget ${q(`hf-revision ${box.m.cacheDir} ${box.m.repo} ${revision}`)}`).code, 0);
    t.is(strict(box.scripts.apply).code, 0);
    t.is(revisionKind(box), "made");
    const other = fakeBox(t);
    someonesDownload(other);
    t.is(strict(other.scripts.apply).code, 0);
    t.is(revisionKind(other), "adopted");
    fs.rmSync(other.l.repoDir, { recursive: true });
    t.is(strict(other.scripts.apply).code, 0);
    t.is(revisionKind(other), "made");
});

test("apply fails when the endpoint answers another revision than the pinned one", (t) => {
    const box = fakeBox(t);
    const hub = JSON.parse(fs.readFileSync(`${box.dir}/hub.json`, "utf8"));
    fs.writeFileSync(`${box.dir}/hub.json`, JSON.stringify({ ...hub, sha: "f".repeat(40) }));
    const r = strict(box.scripts.apply);
    t.is(r.code, 1);
    t.true(r.stderr.includes(`the endpoint answered revision ${"f".repeat(40)} for openai/gpt-oss-20b, not the pinned ${revision}`));
});

test("the probe shows a rewritten or deleted model file as changed, without hashing", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    fs.appendFileSync(`${box.l.snapshot}/model.safetensors`, "more");
    t.is(strict(box.scripts.probe).stdout.split("\n")[0], `model=${revision} files=changed:model.safetensors`);
    fs.rmSync(`${box.l.snapshot}/config.json`);
    t.is(strict(box.scripts.probe).stdout.split("\n")[0], `model=${revision} files=changed:config.json,model.safetensors`);
});

test("the probe shows a deleted tiktoken file as missing", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    fs.rmSync(`${box.l.tiktokenDir}/a.tiktoken`);
    t.deepEqual(strict(box.scripts.probe).stdout.trim().split("\n").slice(1), ["a.tiktoken=missing", "b.tiktoken=present"]);
});

test("remove takes the partial files a fetch or a verification cut off midway left, and the directories with them", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    fs.writeFileSync(`${box.l.tiktokenDir}/a.tiktoken.part`, "enc");
    fs.writeFileSync(`${box.l.manifest}.part`, "{");
    const r = strict(box.scripts.remove);
    t.is(r.code, 0, r.stderr);
    t.false(fs.existsSync(box.l.tiktokenDir));
    t.false(fs.existsSync(box.m.cacheDir));
});

test("after apply, keepOnDestroy's remove leaves the model and the encodings in place", (t) => {
    const box = fakeBox(t, { keepOnDestroy: true });
    t.is(strict(box.scripts.apply).code, 0);
    t.is(strict(box.scripts.remove).code, 0);
    t.is(strict(box.scripts.probe).stdout.trim(), box.scripts.expected);
});

test("apply fails verification naming a file the Hub lists that was neither downloaded nor excluded", (t) => {
    const box = fakeBox(t, { exclude: ["original/*"] });
    const r = strict(box.scripts.apply);
    t.is(r.code, 1);
    t.true(r.stderr.includes("metal/model.bin: missing"));
    t.false(r.stderr.includes("original/model.safetensors"));
});

// Known bug: the manifest does not record model.exclude, so after exclude shrinks the probe inside
// apply still reports files=verified and the newly wanted files are never fetched.
test("narrowing model.exclude downloads the files it no longer excludes on the next apply", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    t.is(box.hfCalls().length, 1);
    const narrowed = modelScripts({ ...box.m, exclude: ["original/*"] }, box.venvPath);
    strict(`export VLLM_WS_TIKTOKEN_BASE=${q(box.m.tiktoken.baseUrl)}\n${narrowed.apply}`);
    t.is(box.hfCalls().length, 2, "the download runs again for the metal/ files");
    t.deepEqual(box.hfCalls()[1].ignore_patterns, ["original/*"]);
});

test("each revision has a manifest of its own, so the revision kept for the way back stays verified", (t) => {
    t.not(layout({ ...defaults, revision: "a".repeat(40) }).manifest, layout({ ...defaults, revision: "b".repeat(40) }).manifest);
});

test("a manifest that is not the pinned revision's never removes a file: the probe says so and touches nothing", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    const m = JSON.parse(fs.readFileSync(box.l.manifest, "utf8"));
    fs.writeFileSync(box.l.manifest, JSON.stringify({ ...m, revision: "b".repeat(40), files: m.files.map(([name]: [string]) => [name, 1, 1]) }));
    const before = fs.readdirSync(box.l.snapshot).sort();
    const r = strict(`export VLLM_WS_REMOVE_CHANGED=1\n${box.scripts.probe}`);
    t.is(r.stdout.split("\n")[0], `model=${"b".repeat(40)} files=other-revision`);
    t.deepEqual(fs.readdirSync(box.l.snapshot).sort(), before);
});

test("a changed snapshot entry a person pointed at a file elsewhere loses the link, never that file", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    const theirs = path.join(box.dir, "their-weights.safetensors");
    fs.writeFileSync(theirs, "weights of someone's own\n");
    const entry = path.join(box.l.snapshot, "model.safetensors");
    fs.rmSync(entry);
    fs.symlinkSync(theirs, entry);
    const r = strict(`export VLLM_WS_REMOVE_CHANGED=1\n${box.scripts.probe}`);
    t.is(r.stdout.split("\n")[0], `model=${revision} files=changed:model.safetensors`);
    t.is(fs.readFileSync(theirs, "utf8"), "weights of someone's own\n");
    t.false(fs.existsSync(entry), "the snapshot's entry goes, so the next download puts the pinned file back");
});

test("a manifest entry that climbs out of the snapshot removes nothing", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    const outside = path.join(box.dir, "outside.txt");
    fs.writeFileSync(outside, "not the stack's\n");
    const rel = path.relative(box.l.snapshot, outside);
    const m = JSON.parse(fs.readFileSync(box.l.manifest, "utf8"));
    fs.writeFileSync(box.l.manifest, JSON.stringify({ ...m, files: [...m.files, [rel, 1, 1]] }));
    const r = strict(`export VLLM_WS_REMOVE_CHANGED=1\n${box.scripts.probe}`);
    // (JSON.parse rounds the other entries' nanosecond mtimes, so they read as changed too.)
    t.true(r.stdout.split("\n")[0].endsWith(`,${rel}`), r.stdout);
    t.is(fs.readFileSync(outside, "utf8"), "not the stack's\n");
});

test("a changed snapshot entry that links into the repository's blobs loses its blob too, so hf fetches it again", (t) => {
    const box = fakeBox(t);
    t.is(strict(box.scripts.apply).code, 0);
    const blobs = path.join(box.l.snapshot, "..", "..", "blobs");
    fs.mkdirSync(blobs, { recursive: true });
    const blob = path.join(blobs, "0123abcd");
    fs.writeFileSync(blob, "bytes rewritten in place\n");
    const entry = path.join(box.l.snapshot, "config.json");
    fs.rmSync(entry);
    fs.symlinkSync(path.relative(box.l.snapshot, blob), entry);
    const r = strict(`export VLLM_WS_REMOVE_CHANGED=1\n${box.scripts.probe}`);
    t.is(r.stdout.split("\n")[0], `model=${revision} files=changed:config.json`);
    t.false(fs.existsSync(blob));
    t.false(fs.existsSync(entry) || fs.lstatSync(path.dirname(entry)).isFile());
});
