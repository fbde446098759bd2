import test from "ava";
import { spawnSync } from "child_process";
import { observe, observeAfter, parseProbeBatch, Piece, renderProbeBatch } from "../../components/pieces/observe";

const pieces: Piece[] = [
    { name: "first", what: "the first piece", probe: "echo one=1\necho two=2" },
    // Without a trailing newline, with a quote and a heredoc, and an `exit 0` that must not end the batch.
    { name: "second", what: "the second piece", probe: "cat <<'X'\nit's here\nX\nprintf 'last'\nexit 0" },
    { name: "third", what: "the third piece", probe: "echo three=3" },
];

/** Runs a script as the host runs one: bash under set -euo pipefail. */
function bash(script: string): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync("bash", ["-s"], { input: `set -euo pipefail\n${script}\n`, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the batch runs every probe and gives each exactly what it printed, by the piece's name", (t) => {
    const r = bash(renderProbeBatch(pieces));
    t.is(r.code, 0, r.stderr);
    const seen = parseProbeBatch(pieces, r.stdout);
    t.deepEqual([...seen.entries()], [
        ["first", "one=1\ntwo=2"],
        ["second", "it's here\nlast"],
        ["third", "three=3"],
    ]);
});

test("a probe that fails is an error naming its piece and what it printed, and the probes after it still ran", (t) => {
    const failing: Piece[] = [pieces[0], { name: "broken", what: "the broken piece", probe: "echo half\nfalse\necho never" }, pieces[2]];
    const r = bash(renderProbeBatch(failing));
    t.is(r.code, 0, "one probe's failure does not stop the batch");
    t.true(r.stdout.includes("three=3"));
    const e = t.throws(() => parseProbeBatch(failing, r.stdout, "dev@box:22"));
    t.is(e?.message, "check the broken piece failed on dev@box:22 (exit 1):\nhalf");
});

test("output cut off before a probe's end marker is an error naming the piece", (t) => {
    const out = bash(renderProbeBatch(pieces)).stdout;
    const cut = out.slice(0, out.indexOf("three=3"));
    const e = t.throws(() => parseProbeBatch(pieces, cut, "this machine"));
    t.regex(e?.message ?? "", /^the probes' output from this machine is cut off at the third piece \(probe 2 of 3\)/);
});

test("a probe printing a line that looks like a marker of another probe cannot shift the others", (t) => {
    const tricky: Piece[] = [{ name: "a", what: "a", probe: "echo '@@vllm-workstation probe 1@@'" }, { name: "b", what: "b", probe: "echo b=1" }];
    const seen = parseProbeBatch(tricky, bash(renderProbeBatch(tricky)).stdout);
    t.is(seen.get("a"), "@@vllm-workstation probe 1@@");
    t.is(seen.get("b"), "b=1");
});

test("two pieces under one name are refused: what the look saw is kept by name", (t) => {
    const twins: Piece[] = [pieces[0], { ...pieces[2], name: "first" }];
    const e = t.throws(() => renderProbeBatch(twins));
    t.is(e?.message, 'two pieces named "first": what the look saw is kept by name');
});

test("two pieces with the same probe each get what it printed", (t) => {
    const same: Piece[] = [pieces[2], { ...pieces[2], name: "again", what: "the same probe again" }];
    const seen = parseProbeBatch(same, bash(renderProbeBatch(same)).stdout);
    t.deepEqual([...seen.entries()], [["third", "three=3"], ["again", "three=3"]]);
});

// The local target, as root (what the tests run as; elsewhere it would go through sudo -n).
test("observe() runs the batch on the workstation in one go (here: this machine)", async (t) => {
    const seen = await observe({ kind: "local" }, pieces);
    t.is(seen.get("third"), "three=3");
});

test("observe() with no pieces runs nothing", async (t) => {
    t.deepEqual([...(await observe({ kind: "ssh", host: "192.0.2.1", port: 22, user: "nobody", privateKeyPath: null, hostKey: null }, [])).entries()], []);
});

test("observeAfter() runs another script first in the same round trip and keeps its output apart", async (t) => {
    const r = await observeAfter({ kind: "local" }, "look", "echo probe=1\necho end=1", pieces);
    t.is(r.first, "probe=1\nend=1");
    t.is(r.observed.get("first"), "one=1\ntwo=2");
    t.is(r.observed.size, 3);
});
