import json, os, sys
snapshot, manifest, rev = sys.argv[1:4]
exclude = sys.argv[4:]
try:
    m = json.load(open(manifest))
except Exception:
    print("model=missing"); sys.exit(0)
if m.get("revision") != rev:
    # Not this revision's: nothing here was checked against it, and nothing of another revision is touched.
    print("model=%s files=other-revision" % m.get("revision")); sys.exit(0)
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
    # Only the snapshot's own entry and the blob it links to in this repository's blobs/ go: an entry a
    # person pointed at a file elsewhere loses the link, never that file, and a name that climbs out of
    # the snapshot (a manifest edited by someone) touches nothing.
    top = os.path.realpath(snapshot) + os.sep
    blobs = os.path.realpath(os.path.join(snapshot, os.pardir, os.pardir, "blobs")) + os.sep
    for name in changed:
        link = os.path.join(snapshot, name)
        if not (os.path.realpath(os.path.dirname(link)) + os.sep).startswith(top) or (os.path.isdir(link) and not os.path.islink(link)):
            continue
        target = os.path.realpath(link)
        if target.startswith(blobs) and os.path.isfile(target):
            os.remove(target)
        if os.path.lexists(link):
            os.remove(link)
print("model=%s files=%s" % (m["revision"], "changed:" + ",".join(changed) if changed else "verified"))
