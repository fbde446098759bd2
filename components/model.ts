// The model at a pinned revision, downloaded with the real `hf` CLI into the stack's Hugging Face cache,
// verified against the Hub's sha256 sums, plus the tiktoken encodings its tokenizer needs offline.
//
// Verifying 13 GB takes a minute, so it happens once, after the download, and leaves a manifest of each
// file's size and mtime. The probe that every preview runs only stats the files against that manifest:
// a deleted, truncated or rewritten file shows as drift without hashing anything.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config";
import type { Connection } from "./host";
import { HostState, ready } from "./hostState";
import type { Observed, Piece } from "./observe";
import { makeOwnedDir, q, removeOwnedDir, say } from "./shell";

type ModelConfig = WorkstationConfig["model"];

export function layout(model: ModelConfig) {
    const repoDir = `${model.cacheDir}/models--${model.repo.replace("/", "--")}`;
    return {
        repoDir,
        snapshot: `${repoDir}/snapshots/${model.revision}`,
        manifest: `${repoDir}/.vllm-workstation-manifest.json`,
        tiktokenDir: `${model.cacheDir}-tiktoken`,
    };
}

// Runs with the venv's Python (huggingface_hub comes with vLLM). Compares every file of the snapshot
// with the Hub's metadata for the pinned revision: sha256 for LFS files, the git blob id for the rest.
const verifyPy = String.raw`
import fnmatch, hashlib, json, os, sys
from huggingface_hub import HfApi
repo, rev, snapshot, manifest = sys.argv[1:5]
exclude = sys.argv[5:]
info = HfApi().model_info(repo, revision=rev, files_metadata=True)
if info.sha != rev:
    sys.exit("the endpoint answered revision %s for %s, not the pinned %s" % (info.sha, repo, rev))
entries, bad = [], []
for s in info.siblings:
    if any(fnmatch.fnmatch(s.rfilename, p) for p in exclude):
        continue
    f = os.path.join(snapshot, s.rfilename)
    if not os.path.exists(f):
        bad.append("%s: missing" % s.rfilename); continue
    if s.lfs:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
        ok, want, got = h.hexdigest() == s.lfs.sha256, s.lfs.sha256, h.hexdigest()
    elif s.blob_id:
        data = open(f, "rb").read()
        got = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        ok, want = got == s.blob_id, s.blob_id
    else:
        ok, want, got = True, "", ""
    if not ok:
        bad.append("%s: expected %s, got %s" % (s.rfilename, want, got)); continue
    st = os.stat(f)
    entries.append([s.rfilename, st.st_size, st.st_mtime_ns])
    print("verified %s" % s.rfilename, file=sys.stderr)
if bad:
    sys.exit("verification failed for %s@%s:\n  %s\nthe files were moved aside; run pulumi up again to download them anew" % (repo, rev, "\n  ".join(bad)))
tmp = manifest + ".part"
json.dump({"revision": rev, "exclude": exclude, "files": sorted(entries)}, open(tmp, "w"))
os.replace(tmp, manifest)
`;

// Stdlib only: it must answer even when the venv is gone.
const probePy = String.raw`
import json, os, sys
snapshot, manifest, rev = sys.argv[1:4]
exclude = sys.argv[4:]
try:
    m = json.load(open(manifest))
except Exception:
    print("model=missing"); sys.exit(0)
if m.get("exclude") != exclude:
    # Verified for another set of files: what is now wanted was never checked.
    print("model=%s files=other-selection" % m["revision"]); sys.exit(0)
changed = []
for name, size, mtime in m["files"]:
    try:
        st = os.stat(os.path.join(snapshot, name))
        if st.st_size != size or st.st_mtime_ns != mtime:
            changed.append(name)
    except OSError:
        changed.append(name)
if changed and os.environ.get("VLLM_WS_REMOVE_CHANGED"):
    # hf trusts a blob that is there, whatever its bytes: take changed files away so they are fetched again.
    for name in changed:
        link = os.path.join(snapshot, name)
        for p in {os.path.realpath(link), link}:
            if os.path.lexists(p):
                os.remove(p)
print("model=%s files=%s" % (m["revision"], "changed:" + ",".join(changed) if changed else "verified"))
`;

/** Stats the snapshot against the manifest and looks for the encodings: no venv, no hashing. */
export function modelProbe(model: ModelConfig): string {
    const l = layout(model);
    return [
        `python3 - ${q(l.snapshot)} ${q(l.manifest)} ${q(model.revision)} ${model.exclude.map(q).join(" ")} <<'VLLM_WS_PY'`,
        probePy.trim(),
        `VLLM_WS_PY`,
        ...Object.keys(model.tiktoken.files)
            .sort((a, b) => a.localeCompare(b))
            .map((file) => `[ -f ${q(`${l.tiktokenDir}/${file}`)} ] && echo "${file}=present" || echo "${file}=missing"`),
    ].join("\n");
}

/** The piece this component declares, as the program looks at it first (observe.ts). */
export function modelPiece(model: ModelConfig): Piece {
    return { what: `the model ${model.repo}@${model.revision.slice(0, 12)}`, probe: modelProbe(model) };
}

export function modelScripts(model: ModelConfig, venvPath: string) {
    const l = layout(model);
    const hfEnv = [`HF_HUB_CACHE=${q(model.cacheDir)}`, ...(model.endpoint ? [`HF_ENDPOINT=${q(model.endpoint)}`] : [])].join(" ");
    const tiktoken = Object.entries(model.tiktoken.files).sort(([a], [b]) => a.localeCompare(b));
    const excludeArgs = model.exclude.map(q).join(" ");
    return {
        apply: [
            makeOwnedDir(model.cacheDir),
            makeOwnedDir(l.tiktokenDir),
            ...tiktoken.map(([file, sum]) =>
                [
                    `if ! echo ${q(`${sum}  ${l.tiktokenDir}/${file}`)} | sha256sum -c --status 2>/dev/null; then`,
                    `  ${say(`fetching ${file}`)}`,
                    `  curl -fsSL --retry 3 -o ${q(`${l.tiktokenDir}/${file}.part`)} ${q(`${model.tiktoken.baseUrl}/${file}`)}`,
                    `  echo ${q(`${sum}  ${l.tiktokenDir}/${file}.part`)} | sha256sum -c --status || { echo ${q(`${file} from ${model.tiktoken.baseUrl} does not match sha256 ${sum}`)} >&2; rm -f ${q(`${l.tiktokenDir}/${file}.part`)}; exit 1; }`,
                    `  mv -f ${q(`${l.tiktokenDir}/${file}.part`)} ${q(`${l.tiktokenDir}/${file}`)}`,
                    `fi`,
                ].join("\n"),
            ),
            `if [ "$(VLLM_WS_REMOVE_CHANGED=1 python3 - ${q(l.snapshot)} ${q(l.manifest)} ${q(model.revision)} ${excludeArgs} <<'VLLM_WS_PY'`,
            probePy.trim(),
            `VLLM_WS_PY`,
            `)" != ${q(`model=${model.revision} files=verified`)} ]; then`,
            `  ${say(`downloading ${model.repo}@${model.revision} into ${model.cacheDir}${model.endpoint ? ` from ${model.endpoint}` : ""}`)}`,
            // After a kill: huggingface_hub up to 1.17 resumes <etag>.incomplete with a Range request;
            // from 1.18 each run writes <etag>.<random>.incomplete and starts over, so a killed run's
            // partial file is only dead weight (up to a whole shard): clear those, keep the resumable kind.
            `  [ -d ${q(`${l.repoDir}/blobs`)} ] && find ${q(`${l.repoDir}/blobs`)} -maxdepth 1 -name '*.*.incomplete' -delete`,
            // hf's --exclude takes every pattern after one flag up to huggingface_hub 0.x (argparse) and one
            // pattern per flag from 1.0 (typer); ask the installed version which it is.
            `  excl=()`,
            ...(model.exclude.length
                ? [
                      `  if ${q(`${venvPath}/bin/python`)} -c 'import sys, huggingface_hub as h; sys.exit(int(h.__version__.split(".")[0]) < 1)'; then`,
                      `    excl=(${model.exclude.map((p) => `--exclude ${q(p)}`).join(" ")})`,
                      `  else excl=(--exclude ${excludeArgs}); fi`,
                  ]
                : []),
            `  ${hfEnv} ${q(`${venvPath}/bin/hf`)} download ${q(model.repo)} --revision ${q(model.revision)} --cache-dir ${q(model.cacheDir)} "\${excl[@]}" >/dev/null`,
            `  ${say("verifying checksums")}`,
            `  if ! ${hfEnv} ${q(`${venvPath}/bin/python`)} - ${q(model.repo)} ${q(model.revision)} ${q(l.snapshot)} ${q(l.manifest)} ${excludeArgs} <<'VLLM_WS_PY'`,
            verifyPy.trim(),
            `VLLM_WS_PY`,
            `  then`,
            // A corrupt blob would be trusted by the next hf download; move the snapshot away so it refetches.
            `    rm -rf ${q(l.repoDir)}; exit 1`,
            `  fi`,
            `fi`,
        ].join("\n"),
        probe: modelProbe(model),
        expected: [`model=${model.revision} files=verified`, ...tiktoken.map(([file]) => `${file}=present`)].join("\n"),
        remove: model.keepOnDestroy
            ? say(`keeping ${model.repo} in ${model.cacheDir} (model.keepOnDestroy)`)
            : [
                  `rm -rf ${q(l.repoDir)}`,
                  `rm -rf ${q(`${model.cacheDir}/.locks/models--${model.repo.replace("/", "--")}`)}`,
                  `rmdir ${q(`${model.cacheDir}/.locks`)} 2>/dev/null || true`,
                  // hf tags the cache dir on first use; the tag goes when the last repository does.
                  `if ! ls -d ${q(model.cacheDir)}/models--* >/dev/null 2>&1; then rm -f ${q(`${model.cacheDir}/CACHEDIR.TAG`)}; fi`,
                  `rm -f ${Object.keys(model.tiktoken.files).sort().map((f) => q(`${l.tiktokenDir}/${f}`)).join(" ")}`,
                  removeOwnedDir(l.tiktokenDir),
                  removeOwnedDir(model.cacheDir),
              ].join("\n"),
    };
}

export interface ModelCacheArgs {
    readonly connection: Connection;
    readonly model: ModelConfig;
    /** The venv whose hf CLI downloads; an Output so the download waits for the install. */
    readonly venvPath: pulumi.Input<string>;
    readonly hfToken: pulumi.Input<string> | null;
    /** What the program saw of each piece this run, by probe (observe.ts); null: the last refresh's. */
    readonly observed: Observed | null;
}

export class ModelCache extends pulumi.ComponentResource {
    /** The snapshot directory vLLM loads, once downloaded and verified. */
    public readonly snapshotPath: pulumi.Output<string>;
    /** The directory for TIKTOKEN_ENCODINGS_BASE. */
    public readonly tiktokenDir: pulumi.Output<string>;

    constructor(name: string, args: ModelCacheArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:ModelCache", name, {}, opts);
        const l = layout(args.model);
        const scripts = pulumi.output(args.venvPath).apply((venv) => modelScripts(args.model, venv));
        const piece = modelPiece(args.model);
        const files = new HostState(
            `${name}-files`,
            {
                connection: args.connection,
                what: piece.what,
                apply: scripts.apply((s) => s.apply),
                // Not from `scripts`: the probe needs no venv, so the program can run it before anything.
                probe: piece.probe,
                observed: args.observed?.get(piece.probe),
                expected: scripts.apply((s) => s.expected),
                remove: scripts.apply((s) => s.remove),
                secretEnv: args.hfToken === null ? {} : pulumi.output(args.hfToken).apply((t) => ({ HF_TOKEN: t })),
            },
            { parent: this },
        );
        this.snapshotPath = ready(files, l.snapshot);
        this.tiktokenDir = ready(files, l.tiktokenDir);
        this.registerOutputs({ snapshotPath: this.snapshotPath, tiktokenDir: this.tiktokenDir });
    }
}
