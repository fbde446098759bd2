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
