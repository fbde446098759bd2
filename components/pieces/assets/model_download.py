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
