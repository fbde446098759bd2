import hashlib, html.parser, io, os, platform, sys, zipfile
index, version, dest = os.environ["UV_INDEX_URL"].rstrip("/"), os.environ["UV_VERSION"], os.environ["UV_DEST"]
auth = OriginAuth(index)
opener = urllib.request.build_opener(auth)
arch = {"x86_64": "x86_64", "aarch64": "aarch64"}[platform.machine()]
page_url = plain(index) + "/uv/"
class Links(html.parser.HTMLParser):
    links = []
    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs).get("href", ""))
p = Links()
try:
    p.feed(opener.open(auth.request_for(index + "/uv/"), timeout=60).read().decode())
except Exception as e:
    sys.exit("cannot read the package index %s: %s (check python.indexUrl)" % (page_url, e))
for href in p.links:
    url = urllib.parse.urljoin(page_url, href)
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    if name.startswith("uv-%s-" % version) and name.endswith(".whl") and "manylinux" in name and arch in name:
        break
else:
    sys.exit("the package index %s has no uv %s wheel for %s: pick a python.uvVersion it serves" % (plain(index), version, arch))
want = urllib.parse.urlparse(url).fragment.partition("sha256=")[2]
print("fetching %s" % name, file=sys.stderr)
# A link on the index's own host goes with the index's credentials; one elsewhere without them.
data = opener.open(auth.request_for(url.split("#")[0]), timeout=300).read()
got = hashlib.sha256(data).hexdigest()
if want and got != want:
    sys.exit("uv wheel %s: sha256 %s does not match the index's %s" % (name, got, want))
with zipfile.ZipFile(io.BytesIO(data)) as z:
    member = next(m for m in z.namelist() if m.endswith(".data/scripts/uv"))
    tmp = dest + ".part"
    with open(tmp, "wb") as f:
        f.write(z.read(member))
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
