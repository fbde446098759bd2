#!/usr/bin/env python3
"""A Hugging Face Hub double for tests: the part of the Hub's HTTP API that `hf download`,
snapshot_download/hf_hub_download, HfApi.model_info/list_repo_tree and `hf cache verify` use, served from
repositories made by hf_fixture.py. Stdlib only; a thread per connection; HTTP/1.1 keep-alive.

    hf_endpoint.py --root DIR [--host 127.0.0.1] [--port 0] [--rate-limit BYTES_PER_S]
                   [--token T] [--request-log FILE] [--drop-after-bytes N [--drop-times K]]
                   [--corrupt REPO/FILE ...] [--cdn-host NAME [--cdn-expire-after N]] [--ignore-range] [--parent-pid PID]

Prints `listening on http://HOST:PORT` once it accepts connections (port 0 picks a free one).

Routes (REPO is owner/name; REV a branch such as main, or the full commit sha of any revision the fixture
made of it; both may be %-quoted):
  GET  /api/models/REPO[/revision/REV][?blobs=true]   model info: sha, siblings (+ size, blobId, lfs)
  GET  /api/models/REPO/tree/REV[/PATH][?recursive=true&expand=true]  tree listing, as list_repo_tree
  HEAD|GET /REPO/resolve/REV/FILE   the file, with the Hub's headers (ETag, X-Repo-Commit, X-Linked-Etag
                                    and X-Linked-Size for LFS files, Accept-Ranges) and Range (206/416)
  GET  /api/whoami-v2               the token's user (401 without a valid one)
  GET  /api/agent-harnesses         an empty registry (huggingface_hub 2.x fetches it at CLI start)
  GET  /tiktoken/NAME               the fake tiktoken encodings (root/_tiktoken), never behind a token
  GET  /health                      200

Errors carry the Hub's X-Error-Code header, which huggingface_hub turns into its exception types:
unknown repo -> 401 RepoNotFound (what the Hub answers without a token), unknown revision -> 404
RevisionNotFound, unknown file -> 404 EntryNotFound. With --token every route but /tiktoken and /health
wants `Authorization: Bearer T`: none -> 401 GatedRepo, another -> 401 "Invalid credentials in
Authorization header", as the Hub answers for a gated repo.

Options for tests:
  --rate-limit       caps each response body at that many bytes per second (slow links, kill tests)
  --request-log      appends a JSON line per request: method, path, query, range, status, bytes of body
                     sent, whether the body was sent whole, and whether a token came with it
  --drop-after-bytes cuts the connection of the first K (--drop-times, default 1) GETs of a body larger
                     than N bytes after N bytes, as a flaky network would
  --corrupt          serves REPO/FILE with one byte flipped (same size, same advertised hashes), so
                     checksum verification can be shown to catch it
  --cdn-host         answers LFS resolve requests with a 302, as the Hub does, to the same path on
                     http://NAME:PORT (this server under another host name) with a `signed` query,
                     which stands for a presigned URL: there no token is needed (tests that a client
                     keeps its token from the CDN)
  --cdn-expire-after makes each such signature good for N GETs at the CDN, then answers it 403 "Request has
                     expired" (a signed URL that expired in the middle of a long download)
  --ignore-range     answers every request with the whole file (200, no Accept-Ranges), as some proxies do
  --parent-pid       exits when that process is gone (tests that die by SIGKILL leave no server behind)

With HF_ENDPOINT_BASIC_AUTH=USER:PASSWORD in its environment (never on the command line, which every user
of the machine can read), every route but /health, and the CDN's signed URLs, wants HTTP basic auth with
those credentials, as a private mirror behind a proxy does: none -> 401 with a Basic challenge, others
-> 401. The request log then says which kind of Authorization came (`auth_kind`: basic or bearer).
"""

import argparse
import base64
import datetime
import hmac
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from parent_watch import exit_with

CHUNK = 1 << 20


class Repo:
    def __init__(self, repo_dir):
        with open(os.path.join(repo_dir, ".hf-repo.json")) as f:
            meta = json.load(f)
        self.dir = repo_dir
        self.id = meta["repoId"]
        self.commit = meta["commit"]
        self.refs = meta["refs"]
        self.files = meta["files"]
        for rel, m in self.files.items():
            size = os.path.getsize(os.path.join(repo_dir, rel))
            if size != m["size"]:
                sys.exit("%s/%s is %d bytes but its metadata says %d: make the fixture again" % (self.id, rel, size, m["size"]))
        dirs = set()
        for rel in self.files:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        self.dirs = dirs
        st = os.stat(os.path.join(repo_dir, ".hf-repo.json"))
        self.modified = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        # Other commits of the same repository (hf_fixture.py --variant), each a tree of its own beside it.
        self.revisions = {self.commit: self}
        extra = repo_dir + ".revisions"
        if os.path.isdir(extra):
            for name in sorted(os.listdir(extra)):
                if os.path.isfile(os.path.join(extra, name, ".hf-repo.json")):
                    r = Repo(os.path.join(extra, name))
                    self.revisions[r.commit] = r

    def resolve(self, rev):
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.revisions else None

    def at(self, commit):
        """The repository as it is at that commit (its files, its tree)."""
        return self.revisions[commit]


def load_repos(root):
    repos = {}
    for owner in sorted(os.listdir(root)):
        od = os.path.join(root, owner)
        if owner.startswith(("_", ".")) or not os.path.isdir(od):
            continue
        for name in sorted(os.listdir(od)):
            if os.path.isfile(os.path.join(od, name, ".hf-repo.json")):
                r = Repo(os.path.join(od, name))
                repos[r.id] = r
    return repos


class Log:
    def __init__(self, path):
        self.path, self.lock = path, threading.Lock()

    def write(self, entry):
        if not self.path:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock, open(self.path, "a") as f:
            f.write(line)


class HubError(Exception):
    def __init__(self, status, code, message, commit=None, challenge=None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit, self.challenge = status, code, message, commit, challenge


def truthy(q, name):
    return q.get(name, ["false"])[-1].lower() in ("1", "true", "yes")


def make_handler(opts, repos, log):
    drops = {"left": opts.drop_times if opts.drop_after_bytes else 0}
    drops_lock = threading.Lock()
    corrupt = set(opts.corrupt or [])
    signing = {"gen": 1, "served": 0}
    signing_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "hf-endpoint-test-double/1"
        sys_version = ""

        def log_message(self, fmt, *args):
            pass  # the request log is the record; stderr stays for errors

        # --- plumbing ------------------------------------------------------------------------------

        def setup(self):
            super().setup()
            self.entry = None

        def begin(self):
            parsed = urllib.parse.urlsplit(self.path)
            auth = self.headers.get("Authorization")
            self.entry = {
                "t": round(time.time(), 3),
                "method": self.command,
                "path": urllib.parse.unquote(parsed.path),
                "query": parsed.query,
                "range": self.headers.get("Range"),
                "auth": bool(auth),
                "auth_kind": (auth or "").split(" ", 1)[0].lower() or None,
                "host": self.headers.get("Host"),
                "status": None,
                "bytes": 0,
                "complete": False,
            }
            return parsed

        def finish_entry(self):
            if self.entry is not None:
                log.write(self.entry)
                self.entry = None

        def head(self, status, headers, length):
            self.entry["status"] = status
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def send_bytes(self, status, body, ctype, headers=None):
            h = {"Content-Type": ctype}
            h.update(headers or {})
            self.head(status, h, len(body))
            if self.command != "HEAD":
                self.wfile.write(body)
                self.entry["bytes"] = len(body)
            self.entry["complete"] = True

        def send_json(self, status, obj, headers=None):
            self.send_bytes(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

        def send_error_hub(self, e):
            h = {"X-Error-Code": e.code, "X-Error-Message": e.message} if e.code else {"X-Error-Message": e.message}
            if e.challenge:
                h["WWW-Authenticate"] = e.challenge
            if e.commit:
                h["X-Repo-Commit"] = e.commit
            self.send_json(e.status, {"error": e.message}, h)

        def at_cdn(self, q):
            """The `signed` value of a request to the CDN host name; None for one to the Hub itself."""
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            return q["signed"][-1] if opts.cdn_host and host == opts.cdn_host and "signed" in q else None

        def check_basic(self):
            if not opts.basic_auth:
                return
            got = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(opts.basic_auth.encode()).decode()
            if not hmac.compare_digest(got.encode(), want.encode()):
                raise HubError(401, None, "Invalid username or password", challenge='Basic realm="hub"')

        def check_token(self):
            if opts.basic_auth:
                return self.check_basic()
            if not opts.token:
                return
            got = self.headers.get("Authorization", "")
            if not got:
                raise HubError(401, "GatedRepo", "Access to this model is restricted. You must have access to it and be authenticated to access it. Please log in.")
            if got != "Bearer " + opts.token:
                raise HubError(401, None, "Invalid credentials in Authorization header")

        def find_repo(self, parts):
            """Splits raw path segments `owner/name/...` into the repo and the segments that follow."""
            for n in (2, 1):
                rid = "/".join(urllib.parse.unquote(x) for x in parts[:n])
                if rid in repos:
                    return repos[rid], parts[n:]
            raise HubError(401, "RepoNotFound", "Repository not found")

        def find_rev(self, repo, rev):
            commit = repo.resolve(rev)
            if commit is None:
                raise HubError(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            return commit

        # --- verbs ---------------------------------------------------------------------------------

        def do_HEAD(self):
            self.route()

        def do_GET(self):
            self.route()

        def route(self):
            parsed = self.begin()
            try:
                raw = parsed.path
                q = urllib.parse.parse_qs(parsed.query)
                if raw == "/health":
                    return self.send_bytes(200, b"ok\n", "text/plain")
                if raw.startswith("/tiktoken/"):
                    self.check_basic()
                    name = urllib.parse.unquote(raw[len("/tiktoken/"):])
                    p = os.path.join(opts.root, "_tiktoken", name)
                    if "/" in name or not os.path.isfile(p):
                        raise HubError(404, "EntryNotFound", "no such encoding")
                    return self.send_file(p, {"ETag": '"%s"' % name}, corrupt=False)
                if raw == "/api/agent-harnesses":
                    self.check_basic()
                    # huggingface_hub >= 2 asks for this registry at CLI start; the Hub's answer, empty.
                    return self.send_json(200, {"standardEnvVars": [], "harnesses": {}})
                # A "presigned" CDN URL: the signature is the credential, not a token.
                if self.at_cdn(q) is None:
                    self.check_token()
                if raw == "/api/whoami-v2":
                    if not opts.token:
                        raise HubError(401, None, "Invalid credentials in Authorization header")
                    return self.send_json(200, {"type": "user", "name": "test-user", "fullname": "Test User", "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "read"}}})
                if raw.startswith("/api/models/"):
                    return self.api_models(raw[len("/api/models/"):], q)
                m = re.match(r"^/(.+?)/resolve/([^/]+)/(.+)$", raw)
                if m:
                    repo, _ = self.find_repo(m.group(1).split("/"))
                    return self.resolve(repo, urllib.parse.unquote(m.group(2)), urllib.parse.unquote(m.group(3)), self.at_cdn(q))
                raise HubError(404, None, "Sorry, we can't find the page you are looking for.")
            except HubError as e:
                self.send_error_hub(e)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                self.finish_entry()

        def api_models(self, rest, q):
            # REPO, REPO/revision/REV or REPO/tree/REV[/PATH]; the client %-quotes REV (refs/pr/1 is one
            # segment) and leaves the repo id as it is.
            repo, tail = self.find_repo(rest.split("/"))
            tail = [urllib.parse.unquote(x) for x in tail if x != ""]
            if not tail:
                return self.model_info(repo, "main", q)
            if tail[0] == "revision" and len(tail) == 2:
                return self.model_info(repo, tail[1], q)
            if tail[0] == "tree" and len(tail) >= 2:
                return self.tree(repo, tail[1], "/".join(tail[2:]), q)
            raise HubError(404, None, "Sorry, we can't find the page you are looking for.")

        def model_info(self, repo, rev, q):
            commit = self.find_rev(repo, rev)
            repo = repo.at(commit)
            blobs = truthy(q, "blobs")
            siblings = []
            for rel, m in repo.files.items():
                s = {"rfilename": rel}
                if blobs:
                    s["size"] = m["size"]
                    s["blobId"] = m["blobId"]
                    if m["lfs"]:
                        s["lfs"] = dict(m["lfs"])
                siblings.append(s)
            try:
                with open(os.path.join(repo.dir, "config.json")) as f:
                    cfg = json.load(f)
            except (OSError, ValueError):
                cfg = {}
            self.send_json(
                200,
                {
                    "_id": commit[:24],
                    "id": repo.id,
                    "modelId": repo.id,
                    "author": repo.id.split("/")[0],
                    "sha": commit,
                    "lastModified": repo.modified,
                    "createdAt": repo.modified,
                    "private": False,
                    "gated": False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "library_name": "transformers",
                    "pipeline_tag": "text-generation",
                    "tags": ["transformers", "safetensors", cfg.get("model_type", "unknown"), "test-fixture"],
                    "config": {k: cfg[k] for k in ("architectures", "model_type") if k in cfg},
                    "siblings": siblings,
                    "usedStorage": sum(m["size"] for m in repo.files.values()),
                },
            )

        def tree(self, repo, rev, path, q):
            commit = self.find_rev(repo, rev)
            repo = repo.at(commit)
            path = path.strip("/")
            if path and path not in repo.dirs:
                raise HubError(404, "EntryNotFound", "%s does not exist on %s" % (path, rev), commit)
            recursive, expand = truthy(q, "recursive"), truthy(q, "expand")
            prefix = path + "/" if path else ""

            def wanted(p):
                if not p.startswith(prefix) or p == path:
                    return False
                return recursive or "/" not in p[len(prefix):]

            out = []
            for d in sorted(repo.dirs):
                if wanted(d):
                    out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
            for rel, m in repo.files.items():
                if wanted(rel):
                    e = {"type": "file", "oid": m["blobId"], "size": m["size"], "path": rel}
                    if m["lfs"]:
                        e["lfs"] = {"oid": m["lfs"]["sha256"], "size": m["lfs"]["size"], "pointerSize": m["lfs"]["pointerSize"]}
                    out.append(e)
            if expand:
                for e in out:
                    e["lastCommit"] = {"id": commit, "title": "test fixture", "date": repo.modified}
            self.send_json(200, out)

        def resolve(self, repo, rev, rel, signed=None):
            commit = self.find_rev(repo, rev)
            repo = repo.at(commit)
            m = repo.files.get(rel)
            if m is None:
                raise HubError(404, "EntryNotFound", "Entry not found", commit)
            h = {"X-Repo-Commit": commit, "Content-Disposition": 'inline; filename="%s"' % rel.rsplit("/", 1)[-1]}
            if not opts.ignore_range:
                h["Accept-Ranges"] = "bytes"
            if m["lfs"]:
                # What the Hub sends for LFS files (there on the redirect to its CDN): the sha256 as ETag.
                h["ETag"] = '"%s"' % m["lfs"]["sha256"]
                h["X-Linked-Etag"] = h["ETag"]
                h["X-Linked-Size"] = str(m["size"])
            else:
                h["ETag"] = '"%s"' % m["blobId"]
            if signed is not None and opts.cdn_expire_after:
                # A signature is good for so many GETs, then the CDN refuses it as S3 does an expired URL.
                with signing_lock:
                    if signed != str(signing["gen"]):
                        raise HubError(403, None, "Request has expired")
                    if self.command == "GET":
                        signing["served"] += 1
                        if signing["served"] % opts.cdn_expire_after == 0:
                            signing["gen"] += 1
            if m["lfs"] and opts.cdn_host and signed is None:
                # The Hub's answer for an LFS file: its headers, and the way to the CDN.
                loc = "http://%s:%d%s?signed=%d" % (opts.cdn_host, self.server.server_address[1], urllib.parse.urlsplit(self.path).path, signing["gen"])
                self.head(302, dict(h, Location=loc), 0)
                self.entry["complete"] = True
                return
            self.send_file(os.path.join(repo.dir, rel), h, corrupt=("%s/%s" % (repo.id, rel)) in corrupt)

        def send_file(self, p, headers, corrupt):
            size = os.path.getsize(p)
            start, end, status = 0, size - 1, 200
            rng = None if opts.ignore_range else self.headers.get("Range")
            if rng:
                mm = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
                if not mm or (mm.group(1) == "" and mm.group(2) == ""):
                    raise HubError(416, None, "bad Range %s" % rng)
                if mm.group(1) == "":
                    start = max(size - int(mm.group(2)), 0)
                else:
                    start = int(mm.group(1))
                    if mm.group(2):
                        end = min(int(mm.group(2)), size - 1)
                if start >= size or start > end:
                    self.entry["status"] = 416
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.entry["complete"] = True
                    return
                status = 206
                headers = dict(headers, **{"Content-Range": "bytes %d-%d/%d" % (start, end, size)})
            headers = dict(headers, **{"Content-Type": "application/octet-stream"})
            length = end - start + 1
            self.head(status, headers, length)
            if self.command == "HEAD":
                self.entry["complete"] = True
                return

            cut = None
            if opts.drop_after_bytes and length > opts.drop_after_bytes:
                with drops_lock:
                    if drops["left"] > 0:
                        drops["left"] -= 1
                        cut = opts.drop_after_bytes
            flip = size // 2 if corrupt else None
            rate = opts.rate_limit
            chunk = CHUNK if not rate else max(1024, min(CHUNK, rate // 20))
            t0, sent, pos = time.monotonic(), 0, start
            with open(p, "rb") as f:
                f.seek(start)
                while sent < length:
                    n = min(chunk, length - sent)
                    if cut is not None:
                        n = min(n, cut - sent)
                        if n <= 0:
                            # A flaky network: the promised length never arrives.
                            self.entry["dropped"] = True
                            self.close_connection = True
                            self.wfile.flush()
                            try:
                                self.connection.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass
                            return
                    data = f.read(n)
                    if not data:
                        break
                    if flip is not None and pos <= flip < pos + len(data):
                        b = bytearray(data)
                        b[flip - pos] ^= 0xFF
                        data = bytes(b)
                    self.wfile.write(data)
                    sent += len(data)
                    pos += len(data)
                    self.entry["bytes"] = sent
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            self.entry["complete"] = sent == length

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rate-limit", type=int, default=0, help="bytes per second per response body; 0: unlimited")
    ap.add_argument("--token")
    ap.add_argument("--request-log")
    ap.add_argument("--drop-after-bytes", type=int, default=0)
    ap.add_argument("--drop-times", type=int, default=1)
    ap.add_argument("--corrupt", action="append")
    ap.add_argument("--cdn-host")
    ap.add_argument("--cdn-expire-after", type=int, default=0)
    ap.add_argument("--ignore-range", action="store_true")
    ap.add_argument("--parent-pid", type=int)
    opts = ap.parse_args()
    opts.basic_auth = os.environ.pop("HF_ENDPOINT_BASIC_AUTH", "") or None
    repos = load_repos(opts.root)
    if not repos:
        sys.exit("no repositories under %s (make them with hf_fixture.py)" % opts.root)
    if opts.parent_pid:
        exit_with(opts.parent_pid)
    httpd = Server((opts.host, opts.port), make_handler(opts, repos, Log(opts.request_log)))
    print("listening on http://%s:%d" % (opts.host, httpd.server_address[1]), flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
