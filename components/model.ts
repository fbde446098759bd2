// The model at a pinned revision, downloaded with huggingface_hub into the stack's Hugging Face cache,
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
import { originAuthPy } from "./python";
import { q, say } from "./shell";
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

// Runs with the venv's Python. Downloads the snapshot into the Hugging Face cache with hf's own
// snapshot_download, after fetching each large LFS file that the endpoint serves over plain HTTP (a
// mirror, an HF_ENDPOINT proxy) over several connections, one byte range each, straight into the blob
// hf would write. hf then finds the blob and only links it into the snapshot. Why not hf alone: over
// HTTP it reads one connection per file in 10 MiB chunks (a cap per connection caps the file, and on a
// small machine the client's CPU falls behind the link), and from huggingface_hub 1.18 a killed run's
// partial file is never resumed, so a lid closed at 12 GB of 13 starts over. These parts are written
// in place and recorded, and the next run fetches only what is missing. Files served through Xet (the
// Hub's own storage) stay with hf, whose hf_xet client fetches in parallel and resumes itself.
const downloadPy = String.raw`
import errno, fnmatch, glob, json, os, sys, threading, time, urllib.parse, urllib.request
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url, snapshot_download
from huggingface_hub.utils import build_hf_headers
repo, rev, cache, connections = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
exclude = sys.argv[5:]
PART = 4 << 20  # the smallest range worth a connection of its own
STEP = 1 << 20  # one read, one write
TAIL = ".vllm-ws.incomplete"
repo_dir = os.path.join(cache, "models--" + repo.replace("/", "--"))
blobs = os.path.join(repo_dir, "blobs")

def say(msg):
    print(msg, file=sys.stderr, flush=True)

def mb(n):
    return "%.1f GB" % (n / 1e9) if n >= 1e9 else "%.0f MB" % (n / 1e6)

# A redirect to a CDN carries a signed URL; the token, or the endpoint's credentials, are for the
# endpoint only, as hf and curl do it.
endpoint_auth = basic_auth(os.environ.get("HF_ENDPOINT", ""))
opener = urllib.request.build_opener(OriginAuth(os.environ.get("HF_ENDPOINT", "")))

class NoRanges(Exception):
    pass

def fetch(name, location, size, blob, n):
    tmp, rec = blob + TAIL, blob + TAIL + ".json"
    home = hf_hub_url(repo, name, revision=rev)
    where, lock = {"url": plain(location)}, threading.Lock()
    parts = None
    try:
        saved = json.load(open(rec))
        # The blob's name is its sha256: a record beside it is for these bytes, whatever URL served them.
        # The file reaches at least every recorded byte, unless something else cut it short.
        got = [[int(a), int(d), int(e)] for a, d, e in saved["parts"]]
        if saved["size"] == size and max(d for _, d, _ in got) <= os.path.getsize(tmp) <= size:
            parts = got
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if parts is None:
        step = -(-size // n)
        parts = [[a, a, min(a + step, size)] for a in range(0, size, step)]
        open(tmp, "wb").close()
    have = sum(d - a for a, d, _ in parts)

    def away(url):
        return origin(url) != origin(home)

    def headers_for(url):
        h = {k: v for k, v in build_hf_headers().items() if not (k.lower() == "authorization" and (away(url) or endpoint_auth))}
        # The endpoint's own credentials replace the token, as in hf (httpx's basic auth from the URL).
        if endpoint_auth and not away(url):
            h["Authorization"] = endpoint_auth
        return h

    def renew(stale):
        # A signed CDN URL lasts so long; a download slower than that asks the endpoint for a new one,
        # once for all the ranges that found the old one refused.
        with lock:
            if where["url"] == stale:
                where["url"] = plain(get_hf_file_metadata(home).location or home)

    fd = os.open(tmp, os.O_WRONLY)
    failures = []

    def save():
        # Best effort: without the record a rerun starts this file over, which is only slower.
        try:
            with open(rec + ".part", "w") as f:
                json.dump({"size": size, "parts": [list(p) for p in parts]}, f)
            os.replace(rec + ".part", rec)
        except OSError:
            if os.path.exists(rec + ".part"):
                os.remove(rec + ".part")

    def work(p):
        tries = 0
        buf = memoryview(bytearray(STEP))
        while p[1] < p[2] and not failures:
            url = where["url"]
            try:
                req = urllib.request.Request(url, headers=dict(headers_for(url), Range="bytes=%d-%d" % (p[1], p[2] - 1)))
                with opener.open(req, timeout=60) as r:
                    if r.status != 206:
                        raise NoRanges("the endpoint answered %d to a Range request" % r.status)
                    while p[1] < p[2] and not failures:
                        k = r.readinto(buf[: min(STEP, p[2] - p[1])])
                        if not k:
                            raise ConnectionError("the connection closed at byte %d of %d" % (p[1], size))
                        w = 0
                        while w < k:
                            w += os.pwrite(fd, buf[w:k], p[1] + w)
                        p[1] += k
                        tries = 0
            except Exception as e:
                tries += 1
                if getattr(e, "code", None) in (401, 403) and away(url) and tries <= 5:
                    say("%s: %s from %s; asking the endpoint for a new URL" % (name, e, urllib.parse.urlsplit(url).hostname))
                    try:
                        renew(url)
                        continue
                    except Exception as again:
                        e = again
                fatal = isinstance(e, NoRanges) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)) or getattr(e, "code", 500) in (401, 403, 404, 416)
                if fatal or tries > 5:
                    failures.append(e)
                    return
                say("%s: %s; retrying from byte %d" % (name, e, p[1]))
                time.sleep(min(2 ** tries, 15))

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in parts if p[1] < p[2]]
    say("fetching %s (%s) over %d connections%s" % (name, mb(size), len(threads), ", resuming at %s" % mb(have) if have else ""))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    alive, tick = threads, 0
    while alive:
        # The record a resume starts from, every half second; progress every 2 s.
        alive[0].join(0.5)
        alive = [t for t in alive if t.is_alive()]
        save()
        tick += 1
        if tick % 4 == 0 or not alive:
            got = sum(d - a for a, d, _ in parts)
            say("%s: %s of %s (%d%%), %.0f MB/s" % (name, mb(got), mb(size), 100 * got // size, (got - have) / 1e6 / max(time.monotonic() - t0, 1e-3)))
    save()
    os.close(fd)
    if failures:
        e = failures[0]
        if isinstance(e, NoRanges):
            for p in (tmp, rec):
                if os.path.exists(p):
                    os.remove(p)
            raise e
        hint = "free some space in %s, then " % cache if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else ""
        sys.exit("fetching %s from %s failed: %s\nwhat arrived is kept (%s of %s): %srun pulumi up again to fetch the rest" % (name, where["url"].split("?")[0], e, mb(sum(d - a for a, d, _ in parts)), mb(size), hint))
    if os.path.getsize(tmp) != size:
        sys.exit("fetching %s: %d bytes arrived, %d expected" % (name, os.path.getsize(tmp), size))
    os.replace(tmp, blob)
    os.remove(rec)

info = HfApi().model_info(repo, revision=rev, files_metadata=True)
large = {}
if connections > 1:
    for s in info.siblings:
        size = s.size or (s.lfs.size if s.lfs else 0) or 0
        if s.lfs and size >= 2 * PART and not any(fnmatch.fnmatch(s.rfilename, p) for p in exclude):
            if not os.path.lexists(os.path.join(repo_dir, "snapshots", rev, s.rfilename)):
                large[s.rfilename] = size
# The small files first, as hf alone would have them early: a kill later costs none of them.
if large:
    snapshot_download(repo_id=repo, revision=rev, cache_dir=cache, ignore_patterns=exclude + [glob.escape(n) for n in large])
kept = set()
for name, size in sorted(large.items()):
    url = hf_hub_url(repo, name, revision=rev)
    meta = get_hf_file_metadata(url)
    if getattr(meta, "xet_file_data", None) is not None or not meta.etag or meta.size != size:
        continue  # hf_xet's to fetch, or not what the listing said: hf decides
    blob = os.path.join(blobs, meta.etag)
    if os.path.exists(blob):
        continue  # a record left by a kill between the rename and its removal goes below
    kept.add(blob + TAIL)
    os.makedirs(blobs, exist_ok=True)
    try:
        fetch(name, plain(meta.location or url), size, blob, min(connections, size // PART))
    except NoRanges as e:
        say("%s: %s; hf fetches it over one connection" % (name, e))
# A partial blob that no wanted file will finish (another revision, a narrowed selection) is dead weight.
for f in os.listdir(blobs) if os.path.isdir(blobs) else []:
    p = os.path.join(blobs, f)
    if (f.endswith(TAIL) and p not in kept) or (f.endswith(TAIL + ".json") and p[: -len(".json")] not in kept):
        os.remove(p)
snapshot_download(repo_id=repo, revision=rev, cache_dir=cache, ignore_patterns=exclude or None)
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
                secretEnv: args.hfToken === null ? modelEnv(args.model) : pulumi.output(args.hfToken).apply((t) => ({ ...modelEnv(args.model), HF_TOKEN: t })),
            },
            { parent: this },
        );
        this.snapshotPath = ready(files, l.snapshot);
        this.tiktokenDir = ready(files, l.tiktokenDir);
        this.registerOutputs({ snapshotPath: this.snapshotPath, tiktokenDir: this.tiktokenDir });
    }
}
