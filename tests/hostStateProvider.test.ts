import test, { ExecutionContext } from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Connection } from "../components/host";
import { create, diff, HostStateInputs, HostStateOutputs, read, remove, throttled, update } from "../components/hostStateProvider";
import { q } from "../components/shell";

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

function outputs(over: Partial<HostStateOutputs> = {}): HostStateOutputs {
    const { secretEnv: _secretEnv, ...stored } = inputs();
    return { ...stored, observed: "state=ok", ...over };
}

/** A fresh directory under the system temp dir, removed when the test ends (pass or fail). */
function tempDir(t: ExecutionContext): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-hsp-test-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
}

test("diff() reports drift from what the program saw this run, even when the last refresh saw it converged", (t) => {
    t.deepEqual(diff(outputs({ observed: "state=ok" }), inputs({ observed: "state=broken" })), { changes: true });
});

test("diff() reports no change when what the program saw is expected, even when the last refresh saw drift", (t) => {
    t.deepEqual(diff(outputs({ observed: "state=broken" }), inputs({ observed: " state=ok\n" })), { changes: false });
});

test("diff() reports no change when the observed state is the expected one and no script changed", (t) => {
    t.deepEqual(diff(outputs(), inputs()), { changes: false });
});

test("diff() ignores surrounding whitespace when comparing observed and expected", (t) => {
    t.false(diff(outputs({ observed: "state=ok\n" }), inputs({ expected: "state=ok" })).changes);
    t.false(diff(outputs({ observed: "state=ok", expected: "\nstate=ok\n" }), inputs({ expected: "\nstate=ok\n" })).changes);
});

test("diff() reports drift as a change when the observed state differs from the expected one", (t) => {
    t.true(diff(outputs({ observed: "state=edited" }), inputs()).changes);
    t.true(diff(outputs({ observed: "" }), inputs()).changes);
});

test("diff() reports a change when the apply script differs", (t) => {
    t.true(diff(outputs(), inputs({ apply: "echo apply v2" })).changes);
});

test("diff() reports a change when the probe, expected or remove script differs", (t) => {
    t.true(diff(outputs(), inputs({ probe: "echo state=ok # v2" })).changes);
    t.true(diff(outputs({ observed: "state=v2" }), inputs({ expected: "state=v2" })).changes);
    t.true(diff(outputs(), inputs({ remove: "echo remove v2" })).changes);
});

test("diff() reports a change when the connection points elsewhere", (t) => {
    const elsewhere: Connection = { kind: "ssh", host: "h", port: 22, user: "root", privateKeyPath: null, hostKey: null };
    t.true(diff(outputs(), inputs({ connection: elsewhere })).changes);
});

test("diff() does not count a changed secretEnv alone as a change", (t) => {
    t.false(diff(outputs(), inputs({ secretEnv: { HF_TOKEN: "hf_rotated_token" } })).changes);
    t.false(diff(outputs(), inputs({ secretEnv: {} })).changes);
});

test("diff() does not count a new description (what) as a change", (t) => {
    t.false(diff(outputs(), inputs({ what: "the renamed widget" })).changes);
});

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
    const dir = tempDir(t);
    const r = await create(fileInputs(dir, "v1", { TOKEN: "tok-123" }));
    t.is(r.id, "the widget");
    t.is(r.outs!.observed, "state=v1");
    t.false("secretEnv" in r.outs!);
    t.false(JSON.stringify(r.outs).includes("tok-123"));
    t.is(fs.readFileSync(path.join(dir, "token"), "utf8"), "tok-123");
});

test("create() fails naming expected and observed when apply does not reach the expected state", async (t) => {
    const dir = tempDir(t);
    const bad = { ...fileInputs(dir, "v1"), expected: "state=something-else" };
    const err = await t.throwsAsync(create(bad));
    t.true(err!.message.startsWith("the widget on this machine did not reach the expected state after setup."));
    t.true(err!.message.includes("expected: state=something-else\nobserved: state=v1"));
});

test("create() fails with the step's name when apply exits non-zero", async (t) => {
    const err = await t.throwsAsync(create(inputs({ apply: "echo 'disk full' >&2\nexit 4" })));
    t.is(err!.message, "set up the widget failed on this machine (exit 4):\ndisk full");
});

test("read() re-probes and reports drift that diff() then sees", async (t) => {
    const dir = tempDir(t);
    const { outs } = await create(fileInputs(dir, "v1"));
    fs.writeFileSync(path.join(dir, "state"), "edited\n");
    const refreshed = await read("the widget", outs!);
    t.is(refreshed.id, "the widget");
    t.is(refreshed.props!.observed, "state=edited");
    t.true(diff(refreshed.props!, fileInputs(dir, "v1")).changes);
});

test("update() converges to the new inputs", async (t) => {
    const dir = tempDir(t);
    const { outs } = await create(fileInputs(dir, "v1"));
    const r = await update("the widget", outs!, fileInputs(dir, "v2"));
    t.is(r.outs!.observed, "state=v2");
    t.is(fs.readFileSync(path.join(dir, "state"), "utf8"), "v2\n");
});

test("remove() runs the remove script", async (t) => {
    const dir = tempDir(t);
    const { outs } = await create(fileInputs(dir, "v1"));
    await remove("the widget", outs!);
    t.false(fs.existsSync(path.join(dir, "state")));
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
