// The model at a pinned revision, downloaded with huggingface_hub into the stack's Hugging Face cache,
// verified against the Hub's sha256 sums, plus the tiktoken encodings its tokenizer needs offline.
//
// Verifying 13 GB takes a minute, so it happens once, after the download, and leaves a manifest of each
// file's size and mtime. The probe that every preview runs only stats the files against that manifest:
// a deleted, truncated or rewritten file shows as drift without hashing anything.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config";
import type { Connection } from "./host";
import { pieceState, ready } from "./hostState";
import type { Observed, Piece } from "./observe";
import { originAuthPy } from "./python";
import { asset, q, say } from "./shell";
import { redactUrl } from "./urls";

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
const verifyPy = asset("model_verify.py");

// Runs with the venv's Python. Downloads the snapshot into the Hugging Face cache with hf's own
// snapshot_download, after fetching each large LFS file that the endpoint serves over plain HTTP (a
// mirror, an HF_ENDPOINT proxy) over several connections, one byte range each, straight into the blob
// hf would write. hf then finds the blob and only links it into the snapshot. Why not hf alone: over
// HTTP it reads one connection per file in 10 MiB chunks (a cap per connection caps the file, and on a
// small machine the client's CPU falls behind the link), and from huggingface_hub 1.18 a killed run's
// partial file is never resumed, so a lid closed at 12 GB of 13 starts over. These parts are written
// in place and recorded, and the next run fetches only what is missing. Files served through Xet (the
// Hub's own storage) stay with hf, whose hf_xet client fetches in parallel and resumes itself.
const downloadPy = asset("model_download.py");

// Stdlib only: it must answer even when the venv is gone.
const probePy = asset("model_probe.py");

/** Stats the snapshot against the manifest and looks for the encodings: no venv, no hashing. */
export function modelProbe(model: ModelConfig): string {
    const l = layout(model);
    return [
        `python3 - ${q(l.snapshot)} ${q(l.manifest)} ${q(model.revision)} ${model.exclude.map(q).join(" ")} <<'VLLM_WS_PY'`,
        probePy.trim(),
        `VLLM_WS_PY`,
        ...Object.keys(model.tiktoken.files)
            .sort((a, b) => a.localeCompare(b))
            .map((file) => `[ -f ${q(`${l.tiktokenDir}/${file}`)} ] && echo ${q(`${file}=present`)} || echo ${q(`${file}=missing`)}`),
    ].join("\n");
}

/** The piece this component declares, as the program looks at it first (observe.ts). */
export function modelPiece(model: ModelConfig): Piece {
    const dir = (path: string) => ({ path, kind: "dir" as const, sha256: null, option: "model.cacheDir" });
    return {
        what: `the model ${model.repo}@${model.revision.slice(0, 12)}`,
        probe: modelProbe(model),
        claims: [dir(model.cacheDir), dir(layout(model).tiktokenDir)],
    };
}

/**
 * The URLs the model step fetches from, in its secret environment: they may carry credentials, which a
 * command line shows to every user on the box and the state would hold in plain text. hf reads
 * HF_ENDPOINT; the tiktoken fetch reads VLLM_WS_TIKTOKEN_BASE.
 */
export function modelEnv(model: ModelConfig): Record<string, string> {
    return { VLLM_WS_TIKTOKEN_BASE: model.tiktoken.baseUrl, ...(model.endpoint ? { HF_ENDPOINT: model.endpoint } : {}) };
}

export function modelScripts(model: ModelConfig, venvPath: string) {
    const l = layout(model);
    const hfEnv = `HF_HUB_CACHE=${q(model.cacheDir)}`;
    const shownBase = redactUrl(model.tiktoken.baseUrl);
    const tiktoken = Object.entries(model.tiktoken.files).sort(([a], [b]) => a.localeCompare(b));
    const excludeArgs = model.exclude.map(q).join(" ");
    return {
        apply: [
            // Where it fetches from, credentials left out (they travel in modelEnv): another endpoint is a change.
            `# endpoint: ${model.endpoint === null ? "the Hub" : q(redactUrl(model.endpoint))}; tiktoken: ${q(shownBase)}`,
            `own_dir ${q(model.cacheDir)}`,
            `own_dir ${q(l.tiktokenDir)}`,
            // The URL reaches curl as a config on stdin, quoted for it: not on its command line. curl sends
            // the URL's credentials as basic auth, and not across a redirect to another host.
            `tiktoken_url=\${VLLM_WS_TIKTOKEN_BASE//\\\\/\\\\\\\\}; tiktoken_url=\${tiktoken_url//\\"/\\\\\\"}`,
            ...tiktoken.map(([file, sum]) =>
                [
                    `if ! echo ${q(`${sum}  ${l.tiktokenDir}/${file}`)} | sha256sum -c --status 2>/dev/null; then`,
                    `  ${say(`fetching ${file}`)}`,
                    `  curl -fsSL --retry 3 -o ${q(`${l.tiktokenDir}/${file}.part`)} -K - <<<"url = \\"$tiktoken_url/"${q(file)}"\\""`,
                    `  echo ${q(`${sum}  ${l.tiktokenDir}/${file}.part`)} | sha256sum -c --status || { echo ${q(`${file} from ${shownBase} does not match sha256 ${sum}`)} >&2; rm -f ${q(`${l.tiktokenDir}/${file}.part`)}; exit 1; }`,
                    `  mv -f ${q(`${l.tiktokenDir}/${file}.part`)} ${q(`${l.tiktokenDir}/${file}`)}`,
                    `fi`,
                ].join("\n"),
            ),
            `if [ "$(VLLM_WS_REMOVE_CHANGED=1 python3 - ${q(l.snapshot)} ${q(l.manifest)} ${q(model.revision)} ${excludeArgs} <<'VLLM_WS_PY'`,
            probePy.trim(),
            `VLLM_WS_PY`,
            `)" != ${q(`model=${model.revision} files=verified`)} ]; then`,
            `  ${say(`downloading ${model.repo}@${model.revision} into ${model.cacheDir}${model.endpoint ? ` from ${redactUrl(model.endpoint)}` : ""}`)}`,
            // After a kill: huggingface_hub up to 1.17 resumes <etag>.incomplete with a Range request;
            // from 1.18 each run writes <etag>.<random>.incomplete and starts over, so a killed run's
            // partial file is only dead weight (up to a whole shard): clear those, keep the resumable
            // kinds (the download script's own <etag>.vllm-ws.incomplete, and hf's older one).
            `  [ -d ${q(`${l.repoDir}/blobs`)} ] && find ${q(`${l.repoDir}/blobs`)} -maxdepth 1 -name '*.*.incomplete' ! -name '*.vllm-ws.incomplete' -delete`,
            `  ${[hfEnv, q(`${venvPath}/bin/python`), "-", q(model.repo), q(model.revision), q(model.cacheDir), String(model.connections), ...model.exclude.map(q)].join(" ")} <<'VLLM_WS_PY'`,
            originAuthPy.trim(),
            downloadPy.trim(),
            `VLLM_WS_PY`,
            `  ${say("verifying checksums")}`,
            `  if ! ${hfEnv} ${q(`${venvPath}/bin/python`)} - ${q(model.repo)} ${q(model.revision)} ${q(l.snapshot)} ${q(l.manifest)} ${excludeArgs} <<'VLLM_WS_PY'`,
            verifyPy.trim(),
            `VLLM_WS_PY`,
            `  then`,
            // A corrupt blob would be trusted by the next hf download; move the snapshot away so it refetches.
            `    own_remove_hf_revision ${q(model.cacheDir)} ${q(model.repo)} ${q(model.revision)}; exit 1`,
            `  fi`,
            `fi`,
        ].join("\n"),
        probe: modelProbe(model),
        expected: [`model=${model.revision} files=verified`, ...tiktoken.map(([file]) => `${file}=present`)].join("\n"),
        remove: model.keepOnDestroy
            ? say(`keeping ${model.repo} in ${model.cacheDir} (model.keepOnDestroy)`)
            : [
                  // Only the pinned revision: another revision or repository in the same cache stays.
                  `own_remove_hf_revision ${q(model.cacheDir)} ${q(model.repo)} ${q(model.revision)}`,
                  // And the revision served before it, kept for the way back (the service's switch notes each).
                  `own_prune_hf_revisions ${q(model.cacheDir)} ${q(model.repo)}`,
                  `rm -f ${Object.keys(model.tiktoken.files).sort().map((f) => q(`${l.tiktokenDir}/${f}`)).join(" ")}`,
                  `own_release_dir ${q(l.tiktokenDir)}`,
                  `own_release_dir ${q(model.cacheDir)}`,
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
        // The probe is the piece's, not from `scripts`: it needs no venv, so the program runs it before anything.
        const secretEnv = args.hfToken === null ? modelEnv(args.model) : pulumi.output(args.hfToken).apply((t) => ({ ...modelEnv(args.model), HF_TOKEN: t }));
        const files = pieceState(`${name}-files`, piece, scripts, { connection: args.connection, observed: args.observed, secretEnv }, { parent: this });
        this.snapshotPath = ready(files, l.snapshot);
        this.tiktokenDir = ready(files, l.tiktokenDir);
        this.registerOutputs({ snapshotPath: this.snapshotPath, tiktokenDir: this.tiktokenDir });
    }
}
