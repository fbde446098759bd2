import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { Connection } from "../../components/host/connection";
import { create, HostStateInputs, HostStateOutputs, PartialFailure, read, remove, ROLLED_BACK_EXIT, step, throttled, update } from "../../components/host/provider";
import { q } from "../../components/host/shell";
import { tempDir } from "../helpers/tempDir";

const local: Connection = { kind: "local" };

function inputs(over: Partial<HostStateInputs> = {}): HostStateInputs {
    return {
        connection: local,
        what: "the widget",
        apply: "echo apply",
        probe: "echo state=ok",
        expected: "state=ok",
        remove: "echo remove",
        ...over,
    };
}


// The provider's lifecycle against this machine: scripts that write a file under a temp dir.
function fileInputs(dir: string, content: string, secretEnv?: Record<string, string>): HostStateInputs {
    const f = path.join(dir, "state");
    return inputs({
        apply: `printf '%s\\n' ${q(content)} >${q(f)}\nprintf '%s' "\${TOKEN:-none}" >${q(path.join(dir, "token"))}\necho "applying" >&2`,
        probe: `if [ -f ${q(f)} ]; then echo "state=$(cat ${q(f)})"; else echo state=missing; fi`,
        expected: `state=${content}`,
        remove: `rm -f ${q(f)}`,
        ...(secretEnv === undefined ? {} : { secretEnv }),
    });
}

test("create() runs apply with the secret env, probes, and keeps the secret env out of the outputs", async (t) => {
    const dir = tempDir(t, "hsp");
    const r = await create(fileInputs(dir, "v1", { TOKEN: "tok-123" }));
    t.is(r.id, "the widget");
    t.is(r.outs!.observed, "state=v1");
    t.false("secretEnv" in r.outs!);
    t.false(JSON.stringify(r.outs).includes("tok-123"));
    t.is(fs.readFileSync(path.join(dir, "token"), "utf8"), "tok-123");
});

test("create() fails naming expected and observed when apply does not reach the expected state", async (t) => {
    const dir = tempDir(t, "hsp");
    const bad = { ...fileInputs(dir, "v1"), expected: "state=something-else" };
    const err = await t.throwsAsync(create(bad));
    t.true(err!.message.startsWith("the widget on this machine did not reach the expected state after setup."));
    t.true(err!.message.includes("expected: state=something-else\nobserved: state=v1"));
});

test("create() fails with the step's name when apply exits non-zero", async (t) => {
    const err = await t.throwsAsync(create(inputs({ apply: "echo 'disk full' >&2\nexit 4" })));
    t.is(err!.message, "set up the widget failed on this machine (exit 4):\ndisk full");
});

test("read() re-probes and reports what it sees now", async (t) => {
    const dir = tempDir(t, "hsp");
    const { outs } = await create(fileInputs(dir, "v1"));
    fs.writeFileSync(path.join(dir, "state"), "edited\n");
    const refreshed = await read("the widget", outs!);
    t.is(refreshed.id, "the widget");
    t.is(refreshed.props!.observed, "state=edited");
    t.is(refreshed.props!.expected, "state=v1", "the rest of the state is kept");
});

test("update() converges to the new inputs", async (t) => {
    const dir = tempDir(t, "hsp");
    const { outs } = await create(fileInputs(dir, "v1"));
    const r = await update("the widget", outs!, fileInputs(dir, "v2"));
    t.is(r.outs!.observed, "state=v2");
    t.is(fs.readFileSync(path.join(dir, "state"), "utf8"), "v2\n");
});

test("remove() runs the remove script", async (t) => {
    const dir = tempDir(t, "hsp");
    const { outs } = await create(fileInputs(dir, "v1"));
    await remove("the widget", outs!);
    t.false(fs.existsSync(path.join(dir, "state")));
});

test("step() dispatches create, read, update and delete, and names the step it does not know", async (t) => {
    const dir = tempDir(t, "hsp");
    const created = (await step("create", { inputs: fileInputs(dir, "v1") })) as { id: string; outs: HostStateOutputs };
    t.is(created.outs.observed, "state=v1");
    const r = (await step("read", { id: created.id, props: created.outs })) as { props: HostStateOutputs };
    t.is(r.props.observed, "state=v1");
    const u = (await step("update", { id: created.id, olds: created.outs, news: fileInputs(dir, "v2") })) as { outs: HostStateOutputs };
    t.is(u.outs.observed, "state=v2");
    t.deepEqual(await step("delete", { id: created.id, props: u.outs }), {});
    t.false(fs.existsSync(path.join(dir, "state")));
    const err = await t.throwsAsync(step("destroy", {}));
    t.is(err!.message, 'unknown step "destroy": expected create, read, update or delete');
});

// What the provider (tools/provider) runs: `node host/provider.js <op>`, JSON in, JSON out.
const helper = path.join(__dirname, "..", "..", "components", "host", "provider.js");

test("run as the provider runs it, a step reads its request on stdin and prints its result as JSON, progress on stderr", (t) => {
    const dir = tempDir(t, "hsp");
    const r = spawnSync("node", [helper, "create"], { input: JSON.stringify({ inputs: fileInputs(dir, "v1", { TOKEN: "tok-9" }) }), encoding: "utf8" });
    t.is(r.status, 0, r.stderr);
    const reply = JSON.parse(r.stdout);
    t.is(reply.result.id, "the widget");
    t.is(reply.result.outs.observed, "state=v1");
    t.false(r.stdout.includes("tok-9"), "the token stays out of the reply");
    t.true(r.stderr.includes("[the widget] applying"), r.stderr);
});

test("run as the provider runs it, a failed step prints its error and its partial state as JSON and exits 1", (t) => {
    const failing = inputs({ apply: "echo 'disk full' >&2\nexit 4" });
    const r = spawnSync("node", [helper, "create"], { input: JSON.stringify({ inputs: { ...failing, secretEnv: { TOKEN: "tok-in-json-1" } } }), encoding: "utf8" });
    t.is(r.status, 1);
    const stored = failing;
    t.deepEqual(JSON.parse(r.stdout), {
        error: "set up the widget failed on this machine (exit 4):\ndisk full",
        partial: { id: "the widget", outs: { ...stored, observed: "state=ok" } },
    });
    t.false(r.stdout.includes("tok-in-json-1"));
});

test("run as the provider runs it, a step that could not reach the box prints a bare error: nothing to record", (t) => {
    const connection: Connection = { kind: "ssh", host: "127.0.0.1", port: 1, user: "root", privateKeyPath: null, hostKey: null };
    const r = spawnSync("node", [helper, "create"], { input: JSON.stringify({ inputs: inputs({ connection }) }), encoding: "utf8" });
    t.is(r.status, 1);
    const reply = JSON.parse(r.stdout);
    t.deepEqual(Object.keys(reply), ["error"]);
    t.regex(reply.error, /^cannot reach the workstation root@127\.0\.0\.1:1 over SSH/);
});

// What the service step does when the health check fails after it wrote the unit, the user and the
// secrets file: the error carries what was made, so the engine keeps the resource and destroy removes it.
test("create() that fails after apply touched the box fails with the partial state: the inputs, no secret env, and what the probe saw", async (t) => {
    const dir = tempDir(t, "hsp");
    const failing = { ...fileInputs(dir, "v1", { TOKEN: "tok-partial-1" }), apply: `${fileInputs(dir, "v1").apply}\necho 'health check failed' >&2\nexit 1` };
    const err = await t.throwsAsync(create(failing), { instanceOf: PartialFailure });
    t.is(err!.id, "the widget");
    t.is(err!.outs.observed, "state=v1", "the probe ran after the failure");
    t.is(err!.outs.remove, failing.remove);
    t.false("secretEnv" in err!.outs);
    t.regex(err!.message, /^set up the widget failed on this machine \(exit 1\):\n(.*\n)*health check failed$/);
    await remove(err!.id, err!.outs);
    t.false(fs.existsSync(path.join(dir, "state")), "the recorded remove takes away what the failed step made");
});

test("create() whose apply succeeds but does not reach the expected state fails with the partial state too", async (t) => {
    const dir = tempDir(t, "hsp");
    const err = await t.throwsAsync(create({ ...fileInputs(dir, "v1"), expected: "state=other" }), { instanceOf: PartialFailure });
    t.is(err!.outs.observed, "state=v1");
    t.is(err!.outs.expected, "state=other");
});

test("update() that fails after apply touched the box fails with the new inputs as the partial state", async (t) => {
    const dir = tempDir(t, "hsp");
    const { outs } = await create(fileInputs(dir, "v1"));
    const news = { ...fileInputs(dir, "v2"), apply: `${fileInputs(dir, "v2").apply}\nexit 5` };
    const err = await t.throwsAsync(update("the widget", outs, news), { instanceOf: PartialFailure });
    t.is(err!.id, "the widget");
    t.is(err!.outs.apply, news.apply);
    t.is(err!.outs.observed, "state=v2");
});

// The service's switch: a new set that does not become healthy is switched back before the step fails.
test("update() whose apply rolled back (exit ROLLED_BACK_EXIT) fails with the old outputs as the partial state, probed again", async (t) => {
    const dir = tempDir(t, "hsp");
    const { outs } = await create(fileInputs(dir, "v1"));
    const v2 = fileInputs(dir, "v2").apply;
    const news = { ...fileInputs(dir, "v2"), apply: `${v2}\n${fileInputs(dir, "v1").apply}\necho 'rolled back' >&2\nexit ${ROLLED_BACK_EXIT}` };
    const err = await t.throwsAsync(update("the widget", outs, news), { instanceOf: PartialFailure });
    t.is(err!.outs.apply, outs.apply, "the state keeps the old scripts: a preview still shows the change");
    t.is(err!.outs.expected, outs.expected);
    t.is(err!.outs.observed, "state=v1");
    t.regex(err!.message, /rolled back$/);
    const other = { ...fileInputs(dir, "v2"), apply: `${v2}\nexit ${ROLLED_BACK_EXIT}` };
    const created = await t.throwsAsync(create(other), { instanceOf: PartialFailure });
    t.is(created!.outs.apply, other.apply, "a create has no old state: what it made is recorded as always");
});

test("a probe that fails after a failed apply is recorded as not probed, and the failure is still partial", async (t) => {
    const err = await t.throwsAsync(create(inputs({ apply: "exit 2", probe: "echo 'probe broke' >&2; exit 9" })), { instanceOf: PartialFailure });
    t.regex(err!.outs.observed, /^\(not probed after the failure: check the widget failed on this machine \(exit 9\):\nprobe broke\)$/);
});

test("a step's error and progress show no secret of its environment and no URL's credentials", async (t) => {
    const env = { INDEX: "http://ci-user:pa%24%24word-1@127.0.0.1:9/simple", HF_TOKEN: "hf_abcdefghijkl" };
    const apply = [
        `echo "fetching $INDEX/uv/" >&2`,
        `echo "with token $HF_TOKEN" >&2`,
        // The password as a tool prints it once it decoded the URL.
        `python3 -c 'import os, urllib.parse; print("password", urllib.parse.unquote(os.environ["INDEX"].split("@")[0].split(":")[2]))' >&2`,
        `echo "from https://other:tok-elsewhere@mirror.example/x" >&2`,
        `exit 1`,
    ].join("\n");
    const dir = tempDir(t, "hsp");
    const r = spawnSync("node", [helper, "create"], { input: JSON.stringify({ inputs: inputs({ apply, secretEnv: env }) }), encoding: "utf8", cwd: dir });
    // The error and the progress lines (the script's own text, in the partial state, is the program's and holds no secret).
    const shown = `${JSON.parse(r.stdout).error}\n${r.stderr}`;
    t.true(shown.includes("fetching http://***@127.0.0.1:9/simple/uv/"), shown);
    t.true(shown.includes("from https://***@mirror.example/x"), shown);
    for (const secret of ["ci-user:pa", "pa%24%24word-1", "pa$$word-1", "hf_abcdefghijkl", "tok-elsewhere"]) t.false(shown.includes(secret), secret);
});

test("progress bars are shown every few seconds, their last state and every other line always", (t) => {
    let clock = 0;
    const seen: string[] = [];
    const emit = throttled((l) => seen.push(l), 3000, () => clock);
    emit("downloading x");
    emit(" 10%|#         | 1/10");
    clock = 1000;
    emit(" 20%|##        | 2/10");
    clock = 3500;
    emit(" 40%|####      | 4/10");
    emit("verifying");
    emit("100%|##########| 10/10");
    t.deepEqual(seen, ["downloading x", " 10%|#         | 1/10", " 40%|####      | 4/10", "verifying", "100%|##########| 10/10"]);
});
