// The model at a pinned revision, downloaded with huggingface_hub into the stack's Hugging Face cache,
// verified against the Hub's sha256 sums, plus the tiktoken encodings its tokenizer needs offline.
//
// Verifying 13 GB takes a minute, so it happens once, after the download, and leaves a manifest of each
// file's size and mtime. The probe that every preview runs only stats the files against that manifest:
// a deleted, truncated or rewritten file shows as drift without hashing anything.
import type { WorkstationConfig } from "../config/schema";
import type { Piece } from "./observe";
import { originAuthPy } from "./python";
import { asset, fillFragment, q, say } from "../host/shell";
import { redactUrl } from "../config/urls";

type ModelConfig = WorkstationConfig["model"];

export function layout(model: ModelConfig) {
    const repoDir = `${model.cacheDir}/models--${model.repo.replace("/", "--")}`;
    return {
        repoDir,
        snapshot: `${repoDir}/snapshots/${model.revision}`,
        // One per revision: the revision kept for the way back stays verified, so going back to it reads no Hub.
        manifest: `${repoDir}/.vllm-workstation-manifest-${model.revision}.json`,
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
    const probe = fillFragment("model_probe.sh", { SNAPSHOT: q(l.snapshot), MANIFEST: q(l.manifest), REVISION: q(model.revision), EXCLUDE: model.exclude.map(q).join(" "), PROBE_PY: probePy.trim() });
    const present = (file: string) => `[ -f ${q(`${l.tiktokenDir}/${file}`)} ] && echo ${q(`${file}=present`)} || echo ${q(`${file}=missing`)}`;
    return [probe, ...Object.keys(model.tiktoken.files).sort((a, b) => a.localeCompare(b)).map(present)].join("\n");
}

/** The model as a piece: what the program looks at first (observe.ts) and the workstation declares (declarePieces). */
export function modelPiece(model: ModelConfig): Piece {
    const dir = (path: string) => ({ path, kind: "dir" as const, sha256: null, option: "model.cacheDir" });
    return {
        name: "model",
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
    const shownBase = redactUrl(model.tiktoken.baseUrl);
    const tiktoken = Object.entries(model.tiktoken.files).sort(([a], [b]) => a.localeCompare(b));
    const fetch = ([file, sum]: [string, string]) =>
        fillFragment("model_tiktoken.sh", {
            SUM_LINE: q(`${sum}  ${l.tiktokenDir}/${file}`),
            FETCHING: q(`fetching ${file}`),
            PART: q(`${l.tiktokenDir}/${file}.part`),
            FILE: q(file),
            PART_SUM_LINE: q(`${sum}  ${l.tiktokenDir}/${file}.part`),
            MISMATCH: q(`${file} from ${shownBase} does not match sha256 ${sum}`),
            DEST: q(`${l.tiktokenDir}/${file}`),
        });
    const common = { CACHE_DIR: q(model.cacheDir), REPO: q(model.repo), REVISION: q(model.revision) };
    return {
        apply: fillFragment("model_apply.sh", {
            ...common,
            EXCLUDE: model.exclude.map(q).join(" "),
            ENDPOINT: model.endpoint === null ? "the Hub" : q(redactUrl(model.endpoint)),
            TIKTOKEN_BASE: q(shownBase),
            TIKTOKEN_DIR: q(l.tiktokenDir),
            TIKTOKEN_FETCHES: tiktoken.map(fetch).join("\n"),
            SNAPSHOT: q(l.snapshot),
            MANIFEST: q(l.manifest),
            PROBE_PY: probePy.trim(),
            VERIFIED: q(`model=${model.revision} files=verified`),
            DOWNLOADING: q(`downloading ${model.repo}@${model.revision} into ${model.cacheDir}${model.endpoint ? ` from ${redactUrl(model.endpoint)}` : ""}`),
            BLOBS: q(`${l.repoDir}/blobs`),
            REVISION_ENTRY: q(`hf-revision ${model.cacheDir} ${model.repo} ${model.revision}`),
            NOT_OURS: q(`leaving ${l.snapshot}: it was in the cache before vllm-workstation used it, and its files do not match the Hub's; move it away, then run pulumi up again`),
            PYTHON: q(`${venvPath}/bin/python`),
            DOWNLOAD_ARGS: [q(model.repo), q(model.revision), q(model.cacheDir), String(model.connections), ...model.exclude.map(q)].join(" "),
            DOWNLOAD_PY: `${originAuthPy.trim()}\n${downloadPy.trim()}`,
            VERIFY_PY: verifyPy.trim(),
        }),
        probe: modelProbe(model),
        expected: [`model=${model.revision} files=verified`, ...tiktoken.map(([file]) => `${file}=present`)].join("\n"),
        remove: model.keepOnDestroy
            ? say(`keeping ${model.repo} in ${model.cacheDir} (model.keepOnDestroy)`)
            : fillFragment("model_remove.sh", {
                  ...common,
                  TIKTOKEN_FILES: Object.keys(model.tiktoken.files)
                      .sort()
                      .flatMap((f) => [q(`${l.tiktokenDir}/${f}`), q(`${l.tiktokenDir}/${f}.part`)])
                      .join(" "),
                  TIKTOKEN_DIR: q(l.tiktokenDir),
              }),
    };
}
