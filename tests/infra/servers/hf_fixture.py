#!/usr/bin/env python3
"""Makes a tiny stand-in of a Hugging Face model repository for the HF endpoint double (hf_endpoint.py).

    hf_fixture.py --root DIR [--repo openai/gpt-oss-20b] [--weights-bytes N] [--seed S] [--variant V ...]

Writes DIR/<org>/<name>/ with the files of a (very) small gpt-oss-like checkpoint, plus
DIR/<org>/<name>/.hf-repo.json (what the Hub would know: the commit, the refs and each file's size, git
blob id and, for LFS files, sha256), and DIR/_tiktoken/*.tiktoken, the encodings gpt-oss's tokenizer
loads from TIKTOKEN_ENCODINGS_BASE. Prints that metadata as JSON on stdout.

Each --variant V makes another commit of the same repository in DIR/<org>/<name>.revisions/V/ (its own
.hf-repo.json): the same files but config.json and README.md, which name V, so the weights are shared and
the commit differs, as a later revision on the Hub would. `main` stays at the first commit; the endpoint
serves every commit by its sha.

Stdlib only. Deterministic: the same arguments give the same bytes and so the same commit sha, which is
derived from the content like a git commit is, so a different weights size is a different commit.
Existing output for the same arguments is reused (the weights file can be gigabytes for benchmarks).
"""

import argparse
import fnmatch
import hashlib
import json
import os
import random
import shutil
import struct
import sys

GENERATOR = 3  # bump when the layout changes, so cached fixtures are made again

# As in the real repository: these patterns are stored with git LFS, so the Hub reports their sha256.
GITATTRIBUTES = """*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
tokenizer.json filter=lfs diff=lfs merge=lfs -text
"""


def lfs_patterns(gitattributes):
    return [line.split()[0] for line in gitattributes.splitlines() if "filter=lfs" in line]


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha256, size)).encode()


def file_meta(path, rel, patterns):
    h256, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h256.update(chunk)
            size += len(chunk)
    is_lfs = any(fnmatch.fnmatch(os.path.basename(rel), p) or fnmatch.fnmatch(rel, p) for p in patterns)
    if is_lfs:
        sha = h256.hexdigest()
        pointer = lfs_pointer(sha, size)
        # On the Hub an LFS file's git oid is the pointer's blob id, and the sha256 is in `lfs`.
        return {"size": size, "blobId": git_blob_sha1(pointer), "lfs": {"sha256": sha, "size": size, "pointerSize": len(pointer)}, "sha256": sha}
    with open(path, "rb") as f:
        data = f.read()
    return {"size": size, "blobId": git_blob_sha1(data), "lfs": None, "sha256": h256.hexdigest()}


def safetensors_bytes(n_bytes, seed):
    """A valid safetensors file: one U8 tensor of n_bytes deterministic pseudo-random bytes."""
    header = json.dumps(
        {"__metadata__": {"format": "pt", "note": "vllm-workstation test fixture, not a model"}, "fixture.weights": {"dtype": "U8", "shape": [n_bytes], "data_offsets": [0, n_bytes]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(header)) + header, random.Random(seed)


def write_weights(path, n_bytes, seed):
    head, rng = safetensors_bytes(n_bytes, seed)
    with open(path, "wb") as f:
        f.write(head)
        left = n_bytes
        while left:
            n = min(left, 1 << 24)
            f.write(rng.randbytes(n))
            left -= n


def fake_tiktoken(name, n):
    """tiktoken's file format (base64 token, space, rank) with n single/double-byte tokens: loadable, tiny."""
    import base64

    rng = random.Random(name)
    toks, seen = [], set()
    for i in range(256):
        toks.append(bytes([i]))
        seen.add(bytes([i]))
    while len(toks) < n:
        t = bytes([rng.randrange(32, 127), rng.randrange(32, 127)])
        if t not in seen:
            seen.add(t)
            toks.append(t)
    return "".join("%s %d\n" % (base64.b64encode(t).decode(), r) for r, t in enumerate(toks)).encode()


def repo_files(repo, weights_bytes, variant=None):
    name = repo.split("/")[-1]
    config = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 64,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "vocab_size": 512,
        "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16",
        "_fixture": "vllm-workstation test fixture of %s: tiny and random, not a model" % repo,
    }
    readme = "# %s (test fixture)\n\nA few kilobytes standing in for %s in vllm-workstation's tests.\n" % (name, repo)
    if variant is not None:
        config["_revision"] = variant
        readme += "\nRevision %s.\n" % variant
    return {
        ".gitattributes": GITATTRIBUTES.encode(),
        "README.md": readme.encode(),
        "config.json": (json.dumps(config, indent=2) + "\n").encode(),
        "generation_config.json": b'{\n  "bos_token_id": 199998,\n  "eos_token_id": [200002, 199999, 200012],\n  "pad_token_id": 199999\n}\n',
        "tokenizer_config.json": b'{\n  "model_max_length": 4096,\n  "tokenizer_class": "PreTrainedTokenizerFast"\n}\n',
        "special_tokens_map.json": b'{\n  "bos_token": "<|startoftext|>",\n  "eos_token": "<|return|>"\n}\n',
        "chat_template.jinja": b"{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}\n",
        # LFS by .gitattributes, like the real tokenizer.json.
        "tokenizer.json": (json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}) + "\n").encode(),
        "model.safetensors.index.json": (
            json.dumps({"metadata": {"total_size": weights_bytes}, "weight_map": {"fixture.weights": "model-00000-of-00001.safetensors"}}, indent=2) + "\n"
        ).encode(),
        # A subfolder, as in the real repo: `hf download` must list the tree recursively to find it.
        "original/config.json": b'{\n  "num_hidden_layers": 2,\n  "_fixture": true\n}\n',
        "original/dtypes.json": b'{\n  "fixture.weights": "U8"\n}\n',
    }


def make(root, repo, weights_bytes, seed, variant=None):
    repo_dir = os.path.join(root, *repo.split("/"))
    if variant is not None:
        repo_dir = os.path.join(repo_dir + ".revisions", variant)
    meta_path = os.path.join(repo_dir, ".hf-repo.json")
    params = {"generator": GENERATOR, "repo": repo, "weightsBytes": weights_bytes, "seed": seed, "variant": variant}
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("params") == params:
            return meta
    except (OSError, ValueError):
        pass

    tmp = repo_dir + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for rel, data in repo_files(repo, weights_bytes, variant).items():
        p = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    write_weights(os.path.join(tmp, "model-00000-of-00001.safetensors"), weights_bytes, seed)

    patterns = lfs_patterns(GITATTRIBUTES)
    files = {}
    for d, _dirs, names in os.walk(tmp):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), tmp).replace(os.sep, "/")
            files[rel] = file_meta(os.path.join(d, n), rel, patterns)
    files = dict(sorted(files.items()))
    # Like a git commit id: a hash over the tree, so the content decides it.
    tree = "".join("%s %s\n" % (rel, m["blobId"]) for rel, m in files.items())
    commit = hashlib.sha1(("commit\0vllm-workstation fixture %s\n%s" % (repo, tree)).encode()).hexdigest()
    # Only the first commit is `main`; a variant is reached by its sha.
    meta = {"params": params, "repoId": repo, "commit": commit, "refs": {"main": commit} if variant is None else {}, "files": files}
    with open(os.path.join(tmp, ".hf-repo.json"), "w") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(repo_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(repo_dir), exist_ok=True)
    os.replace(tmp, repo_dir)
    return meta


def make_tiktoken(root):
    d = os.path.join(root, "_tiktoken")
    os.makedirs(d, exist_ok=True)
    out = {}
    for name, n in (("o200k_base.tiktoken", 1024), ("cl100k_base.tiktoken", 512)):
        data = fake_tiktoken(name, n)
        p = os.path.join(d, name)
        try:
            with open(p, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            with open(p + ".part", "wb") as f:
                f.write(data)
            os.replace(p + ".part", p)
        out[name] = hashlib.sha256(data).hexdigest()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--repo", action="append", help="owner/name; repeatable (default openai/gpt-oss-20b)")
    ap.add_argument("--weights-bytes", type=int, default=8 << 20, help="size of the random weights tensor (default 8 MiB)")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--variant", action="append", default=[], help="another commit of each repo, named V (repeatable)")
    a = ap.parse_args()
    repos = a.repo or ["openai/gpt-oss-20b"]
    out = {"repos": {}, "tiktoken": make_tiktoken(a.root)}
    for r in repos:
        if r.count("/") != 1:
            sys.exit("--repo must be owner/name, got %r" % r)
        meta = make(a.root, r, a.weights_bytes, a.seed)
        out["repos"][r] = {"commit": meta["commit"], "refs": meta["refs"], "files": meta["files"], "dir": os.path.join(a.root, *r.split("/")), "variants": {}}
        for v in a.variant:
            if not v or "/" in v or v.startswith("."):
                sys.exit("--variant must be a plain name, got %r" % v)
            vm = make(a.root, r, a.weights_bytes, a.seed, v)
            out["repos"][r]["variants"][v] = {"commit": vm["commit"], "files": vm["files"], "dir": os.path.join(a.root, *r.split("/")) + ".revisions/" + v}
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
