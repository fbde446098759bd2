// components/pieces/assets/own.sh: the stack takes only what is free or its own, records what it made, and
// removes exactly that. Run on this machine in temp dirs, with the record in a temp dir too.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { q } from "../../components/host/shell";
import { runScript, testRecord } from "../helpers/script";
import { tempDir } from "../helpers/tempDir";

const ok = (t: import("ava").ExecutionContext, script: string): string => {
    const r = runScript(script);
    t.is(r.code, 0, r.stderr);
    return r.stdout.trim();
};

const recorded = (): string[] =>
    fs.existsSync(testRecord())
        ? fs
              .readdirSync(testRecord())
              .map((f) => fs.readFileSync(path.join(testRecord(), f), "utf8").trim())
              .sort()
        : [];

test("own_dir makes a directory and its missing parents and records each, but not a parent that was there", (t) => {
    const dir = tempDir(t, "own");
    ok(t, `own_dir ${q(`${dir}/a/b/c`)}`);
    t.true(fs.statSync(`${dir}/a/b/c`).isDirectory());
    for (const d of ["a", "a/b", "a/b/c"]) t.true(recorded().includes(`made ${dir}/${d}`), d);
    t.false(recorded().some((r) => r.endsWith(` ${dir}`)));
});

test("own_claim_dir refuses a directory holding someone's files, naming it and what is there, and changes nothing", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/work`);
    fs.writeFileSync(`${dir}/work/thesis.txt`, "mine");
    const r = runScript(`own_claim_dir ${q(`${dir}/work`)}\necho not reached`);
    t.is(r.code, 1);
    t.regex(r.stderr, new RegExp(`refusing to take ${dir}/work: it already holds thesis.txt`));
    t.false(r.stdout.includes("not reached"));
    t.is(fs.readFileSync(`${dir}/work/thesis.txt`, "utf8"), "mine");
    t.false(recorded().some((x) => x.includes(`${dir}/work`)));
});

test("an empty directory is adopted: a remove empties it of what the stack put there and leaves it", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/venv`);
    ok(t, `own_claim_dir ${q(`${dir}/venv`)}`);
    t.true(recorded().includes(`adopted ${dir}/venv`));
    fs.mkdirSync(`${dir}/venv/bin`);
    fs.writeFileSync(`${dir}/venv/bin/python`, "");
    ok(t, `own_remove_tree ${q(`${dir}/venv`)}`);
    t.deepEqual(fs.readdirSync(`${dir}/venv`), []);
    t.false(recorded().some((x) => x.includes(`${dir}/venv`)));
});

test("own_remove_tree removes a tree the stack made, and the parents it made once they are empty", (t) => {
    const dir = tempDir(t, "own");
    ok(t, `own_claim_dir ${q(`${dir}/opt/ws/venv`)}`);
    fs.mkdirSync(`${dir}/opt/ws/venv/lib`, { recursive: true });
    fs.writeFileSync(`${dir}/opt/ws/venv/lib/x.py`, "");
    ok(t, `own_remove_tree ${q(`${dir}/opt/ws/venv`)}`);
    t.deepEqual(fs.readdirSync(dir), []);
    t.false(recorded().some((x) => x.includes(dir)));
});

test("own_remove_tree leaves a directory the stack did not make, and says so", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/work`);
    fs.writeFileSync(`${dir}/work/thesis.txt`, "mine");
    const r = runScript(`own_remove_tree ${q(`${dir}/work`)}`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /leaving .*\/work: vllm-workstation did not make it/);
    t.is(fs.readFileSync(`${dir}/work/thesis.txt`, "utf8"), "mine");
});

test("own_release_dir keeps a directory the stack made once someone put files in it, and its parents", (t) => {
    const dir = tempDir(t, "own");
    ok(t, `own_dir ${q(`${dir}/hf`)}`);
    fs.writeFileSync(`${dir}/hf/notes.txt`, "someone's");
    const r = runScript(`own_release_dir ${q(`${dir}/hf`)}`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /leaving .*\/hf: it holds files vllm-workstation did not put there/);
    t.true(fs.existsSync(`${dir}/hf/notes.txt`));
});

test("own_file refuses a file with other content, adopts an identical one and leaves it on remove, and removes one it made", (t) => {
    const dir = tempDir(t, "own");
    const sha = "a".repeat(64);
    fs.writeFileSync(`${dir}/theirs.sh`, "export X=1\n");
    const refused = runScript(`own_file ${q(`${dir}/theirs.sh`)} ${sha}`);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /refusing to take .*theirs\.sh: a file with other content is there/);

    fs.writeFileSync(`${dir}/same.sh`, "same\n");
    const sameSha = ok(t, `sha256sum ${q(`${dir}/same.sh`)} | cut -c1-64`);
    ok(t, `own_file ${q(`${dir}/same.sh`)} ${sameSha}\nown_remove_file ${q(`${dir}/same.sh`)}`);
    t.true(fs.existsSync(`${dir}/same.sh`), "an adopted file stays");

    ok(t, `own_file ${q(`${dir}/ours.sh`)} ${sha}\necho x > ${q(`${dir}/ours.sh`)}\nown_remove_file ${q(`${dir}/ours.sh`)}`);
    t.false(fs.existsSync(`${dir}/ours.sh`));
    t.false(recorded().some((x) => x.includes(dir)));
});

test("what an older release marked (a marker file, the managed header, a venv beside its tools dir) counts as made and moves into the record", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/hf`);
    fs.writeFileSync(`${dir}/hf/.vllm-workstation-made-this`, "");
    fs.writeFileSync(`${dir}/hf/CACHEDIR.TAG`, "");
    fs.writeFileSync(`${dir}/unit.service`, "# Managed by vllm-workstation (Pulumi). Local edits show as drift.\n[Unit]\n");
    fs.mkdirSync(`${dir}/venv-tools`);
    fs.writeFileSync(`${dir}/venv-tools/.vllm-workstation-made-this`, "");
    fs.mkdirSync(`${dir}/venv`);
    fs.writeFileSync(`${dir}/venv/pyvenv.cfg`, "");
    ok(t, [`own_dir ${q(`${dir}/hf`)}`, `own_file ${q(`${dir}/unit.service`)} ${"b".repeat(64)}`, `own_claim_dir ${q(`${dir}/venv`)}`].join("\n"));
    t.false(fs.existsSync(`${dir}/hf/.vllm-workstation-made-this`), "the marker is gone from the Hugging Face cache");
    for (const p of ["hf", "unit.service", "venv"]) t.true(recorded().includes(`made ${dir}/${p}`), p);
});

test("a venv an older release made stays the stack's when its tools directory moves into the record first", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/venv-tools`);
    fs.writeFileSync(`${dir}/venv-tools/.vllm-workstation-made-this`, "");
    fs.mkdirSync(`${dir}/venv`);
    fs.writeFileSync(`${dir}/venv/pyvenv.cfg`, "");
    // The uv step claims the tools directory before the packages step claims the venv.
    ok(t, `own_dir ${q(`${dir}/venv-tools`)}`);
    t.false(fs.existsSync(`${dir}/venv-tools/.vllm-workstation-made-this`));
    t.is(ok(t, `own_kind ${q(`${dir}/venv`)}`), "made");
    ok(t, `own_claim_dir ${q(`${dir}/venv`)}`);
    for (const p of ["venv-tools", "venv"]) t.true(recorded().includes(`made ${dir}/${p}`), p);
});

test("a tools directory's marker makes no venv the stack's that is not beside it, nor a directory without a venv", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/venv-tools`);
    fs.writeFileSync(`${dir}/venv-tools/.vllm-workstation-made-this`, "");
    fs.mkdirSync(`${dir}/venv`);
    fs.writeFileSync(`${dir}/venv/notes.txt`, "");
    ok(t, `own_dir ${q(`${dir}/venv-tools`)}`);
    t.is(ok(t, `own_kind ${q(`${dir}/venv`)}`), "");
    t.false(recorded().some((x) => x.endsWith(`${dir}/venv`)));
});

test("own_state tells absent, owned, empty, a directory's first names, and a file's sha256", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/empty`);
    fs.mkdirSync(`${dir}/full`);
    for (const n of ["a", "b"]) fs.writeFileSync(`${dir}/full/${n}`, "");
    fs.writeFileSync(`${dir}/file`, "x\n");
    ok(t, `own_dir ${q(`${dir}/mine`)}`);
    fs.writeFileSync(`${dir}/mine/anything`, "");
    const states = ok(t, ["absent", "mine", "empty", "full", "file"].map((p) => `own_state ${q(`${dir}/${p}`)}`).join("\n")).split("\n");
    t.deepEqual(states, ["absent", "owned", "empty", "holds a b", `file ${ok(t, `sha256sum ${q(`${dir}/file`)} | cut -c1-64`)}`]);
});

// A Hugging Face hub cache laid out as huggingface_hub lays it out: blobs by hash, snapshots of links.
function hubCache(dir: string, repo: string, snapshots: Record<string, string[]>): string {
    const repoDir = `${dir}/models--${repo.replace("/", "--")}`;
    for (const [rev, blobs] of Object.entries(snapshots)) {
        fs.mkdirSync(`${repoDir}/snapshots/${rev}`, { recursive: true });
        fs.mkdirSync(`${repoDir}/blobs`, { recursive: true });
        for (const b of blobs) {
            fs.writeFileSync(`${repoDir}/blobs/${b}`, b);
            fs.symlinkSync(`../../blobs/${b}`, `${repoDir}/snapshots/${rev}/file-${b}`);
        }
    }
    return repoDir;
}

test("removing the pinned revision keeps another revision, the blobs it links and its ref", (t) => {
    const dir = tempDir(t, "own");
    const [ours, theirs] = ["1".repeat(40), "2".repeat(40)];
    const repoDir = hubCache(dir, "openai/gpt-oss-20b", { [ours]: ["shared", "only-ours"], [theirs]: ["shared", "only-theirs"] });
    fs.mkdirSync(`${repoDir}/refs`);
    fs.writeFileSync(`${repoDir}/refs/main`, theirs);
    fs.writeFileSync(`${repoDir}/refs/pinned`, ours);
    ok(t, `own_remove_hf_revision ${q(dir)} openai/gpt-oss-20b ${ours}`);
    t.false(fs.existsSync(`${repoDir}/snapshots/${ours}`));
    t.false(fs.existsSync(`${repoDir}/blobs/only-ours`));
    t.false(fs.existsSync(`${repoDir}/refs/pinned`));
    for (const f of ["blobs/shared", "blobs/only-theirs", "refs/main", `snapshots/${theirs}/file-shared`, `snapshots/${theirs}/file-only-theirs`]) t.true(fs.existsSync(`${repoDir}/${f}`), f);
    t.is(fs.readFileSync(`${repoDir}/snapshots/${theirs}/file-shared`, "utf8"), "shared");
});

test("a revision's removal cut off anywhere is finished by the next one: no blob of it is left behind", (t) => {
    const [ours, theirs] = ["1".repeat(40), "2".repeat(40)];
    // Each removal the function makes, in turn, is the last thing a run does (a killed destroy or up).
    for (let cut = 1; ; cut++) {
        const dir = tempDir(t, "own");
        const repoDir = hubCache(dir, "openai/gpt-oss-20b", { [ours]: ["shared", "only-ours", "also-ours"], [theirs]: ["shared", "only-theirs"] });
        fs.mkdirSync(`${repoDir}/refs`);
        fs.writeFileSync(`${repoDir}/refs/pinned`, ours);
        const count = `${dir}/removals`;
        fs.writeFileSync(count, "0");
        const killAt = `rm() { command rm "$@"; case "$*" in *${repoDir}*) n=$(( $(cat ${q(count)}) + 1 )); echo "$n" >${q(count)}; [ "$n" -lt ${cut} ] || kill -9 $$ ;; esac; }\n`;
        const killed = runScript(`${killAt}own_remove_hf_revision ${q(dir)} openai/gpt-oss-20b ${ours}`);
        ok(t, `own_remove_hf_revision ${q(dir)} openai/gpt-oss-20b ${ours}`);
        t.deepEqual(fs.readdirSync(`${repoDir}/blobs`).sort(), ["only-theirs", "shared"], `cut after removal ${cut}`);
        t.deepEqual(fs.readdirSync(`${repoDir}/snapshots`), [theirs], `cut after removal ${cut}`);
        t.false(fs.existsSync(`${repoDir}/refs/pinned`), `cut after removal ${cut}`);
        if (killed.code === 0) break;
        t.true(cut < 20, "the removal ends");
    }
});

test("removing the only revision takes the repository's folder and its locks, and leaves other repositories", (t) => {
    const dir = tempDir(t, "own");
    const rev = "1".repeat(40);
    hubCache(dir, "openai/gpt-oss-20b", { [rev]: ["w"] });
    const other = hubCache(dir, "other/model", { ["3".repeat(40)]: ["o"] });
    fs.mkdirSync(`${dir}/.locks/models--openai--gpt-oss-20b`, { recursive: true });
    fs.mkdirSync(`${dir}/.locks/models--other--model`, { recursive: true });
    fs.writeFileSync(`${dir}/CACHEDIR.TAG`, "");
    fs.mkdirSync(`${dir}/models--openai--gpt-oss-20b/trees`);
    fs.writeFileSync(`${dir}/models--openai--gpt-oss-20b/trees/${rev}.json`, "[]");
    fs.mkdirSync(`${dir}/models--other--model/refs`);
    fs.writeFileSync(`${dir}/models--other--model/refs/main`, "3".repeat(40));
    fs.mkdirSync(`${dir}/models--openai--gpt-oss-20b/refs`);
    fs.writeFileSync(`${dir}/models--openai--gpt-oss-20b/refs/main`, "4".repeat(40));
    ok(t, `own_remove_hf_revision ${q(dir)} openai/gpt-oss-20b ${rev}`);
    fs.rmSync(`${dir}/models--openai--gpt-oss-20b/refs/main`);
    ok(t, `own_remove_hf_revision ${q(dir)} openai/gpt-oss-20b ${rev}`);
    t.false(fs.existsSync(`${dir}/models--openai--gpt-oss-20b`));
    t.false(fs.existsSync(`${dir}/.locks/models--openai--gpt-oss-20b`));
    t.true(fs.existsSync(`${other}/blobs/o`));
    t.true(fs.existsSync(`${dir}/.locks/models--other--model`));
    t.true(fs.existsSync(`${dir}/CACHEDIR.TAG`), "the cache's tag stays while another repository is there");
});

test("own_link points a path the stack claimed at a target in one rename, and refuses a path it did not claim", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/a`);
    fs.mkdirSync(`${dir}/b`);
    ok(t, `own_claim_dir ${q(`${dir}/venv`)}\nown_link ${q(`${dir}/venv`)} ${q(`${dir}/a`)}`);
    t.is(fs.readlinkSync(`${dir}/venv`), `${dir}/a`);
    ok(t, `own_link ${q(`${dir}/venv`)} ${q(`${dir}/b`)}`);
    t.is(fs.readlinkSync(`${dir}/venv`), `${dir}/b`);
    t.deepEqual(fs.readdirSync(dir).sort(), ["a", "b", "venv"], "no temporary link is left");
    fs.symlinkSync(`${dir}/a`, `${dir}/theirs`);
    const r = runScript(`own_link ${q(`${dir}/theirs`)} ${q(`${dir}/b`)}`);
    t.is(r.code, 1);
    t.regex(r.stderr, /refusing to take .*\/theirs/);
    t.is(fs.readlinkSync(`${dir}/theirs`), `${dir}/a`);
});

test("own_remove_link removes a link the stack made, and puts back an empty directory it adopted there", (t) => {
    const dir = tempDir(t, "own");
    fs.mkdirSync(`${dir}/target`);
    ok(t, `own_claim_dir ${q(`${dir}/made`)}\nown_link ${q(`${dir}/made`)} ${q(`${dir}/target`)}\nown_remove_link ${q(`${dir}/made`)}`);
    t.is(fs.lstatSync(`${dir}/made`, { throwIfNoEntry: false }), undefined);
    fs.mkdirSync(`${dir}/adopted`);
    ok(t, `own_claim_dir ${q(`${dir}/adopted`)}\nrmdir ${q(`${dir}/adopted`)}\nown_link ${q(`${dir}/adopted`)} ${q(`${dir}/target`)}\nown_remove_link ${q(`${dir}/adopted`)}`);
    t.true(fs.lstatSync(`${dir}/adopted`).isDirectory());
    t.deepEqual(fs.readdirSync(`${dir}/adopted`), []);
    t.false(recorded().some((l) => l.includes(dir)), "nothing of it is left in the record");
});

test("own_prune_dirs removes the directories the stack made but the ones kept, and leaves someone else's", (t) => {
    const dir = tempDir(t, "own");
    const installs = `${dir}/installs`;
    ok(t, ["one", "two", "three"].map((n) => `own_dir ${q(`${installs}/${n}`)}`).join("\n"));
    for (const n of ["one", "two", "three"]) fs.writeFileSync(`${installs}/${n}/pyvenv.cfg`, "");
    fs.mkdirSync(`${installs}/theirs`);
    const r = runScript(`own_prune_dirs ${q(installs)} ${q(`${installs}/one`)} ${q(`${installs}/three`)} ''`);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(fs.readdirSync(installs).sort(), ["one", "theirs", "three"]);
    t.true(r.stderr.includes(`leaving ${installs}/theirs: vllm-workstation did not make it`));
});

test("pruning model revisions removes only the revisions the stack noted, keeps the ones named with their manifests", (t) => {
    const dir = tempDir(t, "own");
    const [a, b, c, users] = ["a".repeat(40), "b".repeat(40), "c".repeat(40), "d".repeat(40)];
    const repoDir = hubCache(dir, "openai/gpt-oss-20b", { [a]: ["shared", "only-a"], [b]: ["shared", "only-b"], [c]: ["shared", "only-c"], [users]: ["mine"] });
    for (const rev of [a, c]) fs.writeFileSync(`${repoDir}/.vllm-workstation-manifest-${rev}.json`, `{"revision": "${rev}"}`);
    ok(t, [a, b, c].map((rev) => `own_note_hf_revision ${q(dir)} openai/gpt-oss-20b ${rev}`).join("\n"));
    t.deepEqual(ok(t, `own_hf_revisions ${q(dir)} openai/gpt-oss-20b | sort`).split("\n"), [a, b, c]);
    ok(t, `own_prune_hf_revisions ${q(dir)} openai/gpt-oss-20b ${c} ${b}`);
    t.deepEqual(fs.readdirSync(`${repoDir}/snapshots`).sort(), [b, c, users], "a revision the stack never served stays");
    t.false(fs.existsSync(`${repoDir}/blobs/only-a`));
    t.true(fs.existsSync(`${repoDir}/blobs/shared`));
    t.is(fs.readFileSync(`${repoDir}/.vllm-workstation-manifest-${c}.json`, "utf8"), `{"revision": "${c}"}`);
    t.false(fs.existsSync(`${repoDir}/.vllm-workstation-manifest-${a}.json`), "a pruned revision's manifest goes with it");
    t.deepEqual(ok(t, `own_hf_revisions ${q(dir)} openai/gpt-oss-20b | sort`).split("\n"), [b, c]);
    ok(t, `own_prune_hf_revisions ${q(dir)} openai/gpt-oss-20b`);
    t.deepEqual(fs.readdirSync(`${repoDir}/snapshots`), [users], "with none kept, every noted revision goes");
    t.is(ok(t, `own_hf_revisions ${q(dir)} openai/gpt-oss-20b`), "");
});

test("pruning model revisions leaves a revision the stack adopted where it is, less the stack's manifest, and forgets it", (t) => {
    const dir = tempDir(t, "own");
    const [ours, users] = ["a".repeat(40), "b".repeat(40)];
    const repoDir = hubCache(dir, "openai/gpt-oss-20b", { [ours]: ["shared", "only-ours"], [users]: ["shared", "only-theirs"] });
    const entry = (rev: string) => q(`hf-revision ${dir} openai/gpt-oss-20b ${rev}`);
    ok(t, `own_claim_hf_revision ${q(dir)} openai/gpt-oss-20b ${users}`);
    t.is(ok(t, `own_kind ${entry(users)}`), "adopted", "a snapshot there before, that the stack never verified");
    fs.writeFileSync(`${repoDir}/.vllm-workstation-manifest-${users}.json`, `{"revision": "${users}"}`);
    ok(t, `own_note_hf_revision ${q(dir)} openai/gpt-oss-20b ${users}`);
    t.is(ok(t, `own_kind ${entry(users)}`), "adopted", "noted again when it serves, it stays adopted");
    ok(t, `own_note_hf_revision ${q(dir)} openai/gpt-oss-20b ${ours}`);
    const r = runScript(`own_prune_hf_revisions ${q(dir)} openai/gpt-oss-20b`);
    t.is(r.code, 0, r.stderr);
    t.true(r.stderr.includes(`leaving ${repoDir}/snapshots/${users}: vllm-workstation did not download it`), r.stderr);
    t.deepEqual(fs.readdirSync(`${repoDir}/snapshots`), [users]);
    t.deepEqual(fs.readdirSync(`${repoDir}/blobs`).sort(), ["only-theirs", "shared"]);
    t.false(fs.existsSync(`${repoDir}/.vllm-workstation-manifest-${users}.json`));
    t.is(ok(t, `own_hf_revisions ${q(dir)} openai/gpt-oss-20b`), "", "both are out of the record");
});

test("own_kind answers from the record's entries, never from one own_note has not renamed into place, and a revision noted again keeps its entry", (t) => {
    const dir = tempDir(t, "own");
    const p = `${dir}/half`;
    const key = ok(t, `own_key ${q(p)}`);
    fs.mkdirSync(testRecord(), { recursive: true });
    const tmp = path.join(testRecord(), `${key}.Ab12Cd`);
    fs.writeFileSync(tmp, `made ${p}\n`);
    t.teardown(() => fs.rmSync(tmp, { force: true }));
    t.is(ok(t, `own_kind ${q(p)}`), "", "a temporary entry is not yet an entry");
    fs.renameSync(tmp, path.join(testRecord(), key));
    t.is(ok(t, `own_kind ${q(p)}`), "made");
    t.is(ok(t, `own_kind ${q(`${p}/x`)}`), "", "only the path itself");
    ok(t, `own_forget ${q(p)}`);
    t.is(ok(t, `own_kind ${q(p)}`), "");

    const rev = "e".repeat(40);
    ok(t, `own_note_hf_revision ${q(dir)} openai/gpt-oss-20b ${rev}`);
    const entry = path.join(testRecord(), ok(t, `own_key ${q(`hf-revision ${dir} openai/gpt-oss-20b ${rev}`)}`));
    const inode = fs.statSync(entry).ino;
    ok(t, `own_note_hf_revision ${q(dir)} openai/gpt-oss-20b ${rev}`);
    t.is(fs.statSync(entry).ino, inode, "noted again, the entry is left as it was (own_note renames a new file into place)");
    ok(t, `own_prune_hf_revisions ${q(dir)} openai/gpt-oss-20b`);
    t.false(fs.existsSync(entry));
});
