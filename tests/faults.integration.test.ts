// Fault tolerance on the throwaway box, through the real engine over SSH: `pulumi up` killed during the
// model download and during the wheel install, a reboot after converge, the workstation unreachable, two
// runs at once on one stack, the disk filling up during the download, and a pin the index does not have.
// One box, one stack, serial tests that build on each other: the first starts from a bare box, each kill
// test leaves the stack locked for the test after it, and the refusal test runs last.
//
// How a run is "killed" (the closed laptop lid): the Automation API runs the CLI as a child of this
// process (`pulumi up ... --client=...`), which starts HostState's provider, whose steps start `ssh`.
// The whole tree is frozen (SIGSTOP) and then SIGKILLed, so nothing in it gets to write one more checkpoint or
// release the backend's lock. Without a tty, sshd on the box does not hang up the remote script when the
// client goes away (it runs on, orphaned), so the test also SIGKILLs the script and its hf / uv process on
// the box: what happens when Pulumi runs in the WSL distribution that the lid takes down with it.
//
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test, { ExecutionContext } from "ava";
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { workstationProgram } from "../components/program";
import { openStack, projectRoot } from "../scripts/engine";
import type { Box } from "./helpers/box";
import { Rig, startRig } from "./helpers/rig";
import type { TestStack } from "./helpers/stack";
import type { RequestLogEntry } from "./infra/servers";

let rig: Rig;
let box: Box;
let ts: TestStack;
let port: number;

const passphrase = "test-only-passphrase";
const venv = "/opt/vllm-workstation/venv";
const cacheRoot = "/var/lib/vllm-workstation";
const repoDir = `${cacheRoot}/hf/models--openai--gpt-oss-20b`;
const weights = "model-00000-of-00001.safetensors";
const weightsBytes = 20 * 1024 * 1024;
/** Everywhere the stack writes, for leftovers of a killed run. */
const stackDirs = ["/opt/vllm-workstation", cacheRoot, "/etc/vllm-workstation", "/etc/systemd/system", "/etc/profile.d"];
const modelUrn = /workstation-model-files$/;
/** The model step's download script on the box (pgrep -f pattern; the brackets keep pgrep from matching itself). */
const download = "bin/[p]ython - openai/gpt-oss-20b";
const MiB = 1024 * 1024;

/** Bytes the download script's record of a file's ranges says are written. */
function recordedBytes(record: string): number {
    const parts = (JSON.parse(record) as { parts: Array<[number, number, number]> }).parts;
    return parts.reduce((n, [start, done]) => n + done - start, 0);
}
const packagesUrn = /workstation-python-packages$/;

test.before(async () => {
    rig = await startRig({
        name: "faults",
        // 20 MiB of weights at 1 MiB/s per connection, 4 MiB/s over the default 4: a download that lasts
        // long enough (5 s) to be killed in the middle.
        hub: { rateLimitBytesPerSec: 1024 * 1024, repos: [{ repoId: "openai/gpt-oss-20b", weightsBytes }] },
    });
    ({ box, port } = rig);
    ts = await rig.stack({ env: { PULUMI_CONFIG_PASSPHRASE: passphrase } });
});

test.after.always(() => rig?.stop({ beforeDestroy: (s) => s.stack.cancel() }));

// --- helpers -----------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 120_000, everyMs = 250): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await probe();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
        await sleep(everyMs);
    }
}

/** Everything an error from the Automation API carries: the engine's output and the command's stderr. */
function text(e: unknown): string {
    const err = e as { message?: string; commandResult?: { stdout?: string; stderr?: string } };
    return [err.commandResult?.stdout ?? "", err.commandResult?.stderr ?? "", err.message ?? String(e)].join("\n");
}

async function up(t: ExecutionContext, opts: { expectNoChanges?: boolean } = {}) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput, ...opts });
    } catch (e) {
        t.log(text(e).slice(-6000));
        throw e;
    }
}

/** Runs an up that must fail; resolves to what the person at the keyboard reads. */
async function failingUp(): Promise<string> {
    const from = ts.output.length;
    try {
        await ts.stack.up({ onOutput: ts.onOutput });
    } catch (e) {
        return ts.output.slice(from).join("") + "\n" + text(e);
    }
    throw new Error("pulumi up was expected to fail, and succeeded");
}

/** The error the engine reports for one resource (its block under Diagnostics:), "" when there is none. */
function resourceError(message: string, name: string): string {
    const at = message.indexOf(`(${name}):\n`);
    if (at < 0) return "";
    const end = message.indexOf("\n\n", at);
    return message.slice(at, end < 0 ? undefined : end);
}

/** What a plain preview would change (`same` left out): {} when the box is converged. */
async function changes(): Promise<Record<string, number>> {
    const pv = await ts.stack.preview({ onOutput: ts.onOutput });
    return Object.fromEntries(Object.entries(pv.changeSummary).filter(([k]) => k !== "same")) as Record<string, number>;
}

interface StateResource {
    urn: string;
    outputs?: Record<string, unknown>;
    initErrors?: string[];
}
interface PendingOperation {
    type: string;
    resource: { urn: string };
}

async function state(): Promise<{ resources: StateResource[]; pending: PendingOperation[] }> {
    const d = (await ts.stack.exportStack()).deployment as { resources?: StateResource[]; pending_operations?: PendingOperation[] };
    return { resources: d.resources ?? [], pending: d.pending_operations ?? [] };
}

/** Each resource's URN with its outputs (what the probes saw), for before/after comparisons. */
async function stateSummary(): Promise<Array<[string, unknown]>> {
    return (await state()).resources.map((r) => [r.urn, r.outputs ?? null]);
}

function lockFiles(): string[] {
    const dir = path.join(ts.dir, "state", ".pulumi", "locks");
    if (!fs.existsSync(dir)) return [];
    return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".json"));
}

/** Partial files (`*.part`, hf's `*.incomplete`) anywhere the stack writes. */
async function partialFiles(): Promise<string[]> {
    const out = await box.sh(`find ${stackDirs.join(" ")} \\( -name '*.part' -o -name '*.incomplete' \\) 2>/dev/null || true`);
    return out.split("\n").filter(Boolean);
}

function proc(pid: number): { ppid: number; comm: string; cmdline: string } | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
        return { ppid, comm, cmdline };
    } catch {
        return null;
    }
}

function allPids(): number[] {
    return fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).map(Number);
}

/**
 * Kills the running `pulumi up` as a closed lid would: the CLI this process started, the provider
 * it started and their ssh clients, all frozen first so none of them reacts to the others' deaths.
 * Resolves to what was killed.
 */
function killEngine(): string[] {
    const clis = allPids().filter((p) => {
        const info = proc(p);
        return info !== null && info.ppid === process.pid && info.comm === "pulumi" && / up /.test(` ${info.cmdline} `);
    });
    if (clis.length !== 1) throw new Error(`expected one running pulumi up below pid ${process.pid}, found ${clis.length}`);
    const tree = [clis[0]];
    const pids = allPids();
    for (let i = 0; i < tree.length; i++) for (const p of pids) if (proc(p)?.ppid === tree[i]) tree.push(p);
    const killed = tree.map((p) => `${p} ${proc(p)?.cmdline.slice(0, 120) ?? "?"}`);
    for (const p of tree) {
        try {
            process.kill(p, "SIGSTOP");
        } catch {
            // gone already
        }
    }
    for (const p of tree) {
        try {
            process.kill(p, "SIGKILL");
        } catch {
            // gone already
        }
    }
    return killed;
}

/** SIGKILLs the stack's scripts on the box (`[sudo -n] bash -s`) and the given process; [x]-patterns keep pkill's own shell out. */
async function killOnBox(pattern: string): Promise<void> {
    await box.exec(`pkill -9 -f '^(sudo -n )?bash -s$'; pkill -9 -f ${"'" + pattern + "'"}; true`);
    await waitFor(`${pattern} to be gone from the box`, async () => (await box.exec(`pgrep -f ${"'" + pattern + "'"}`)).code === 1, 10_000);
}

function indexPid(): number {
    const pid = allPids().find((p) => {
        const c = proc(p)?.cmdline ?? "";
        return c.includes("run_index.py") && c.includes(` -p ${rig.index.port} `);
    });
    if (pid === undefined) throw new Error(`no pypiserver on port ${rig.index.port}`);
    return pid;
}

function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
        execFile(process.execPath, args, { cwd: projectRoot, env, timeout: 120_000 }, (err, stdout, stderr) => {
            const code = err ? (typeof (err as NodeJS.ErrnoException).code === "number" ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
            resolve({ code, out: `${stdout}${stderr}` });
        });
    });
}

// --- a pin the index does not have ---------------------------------------------------------------------

let missingPinMessage = "";

test.serial("a vLLM pin the package index does not have fails at the package step naming the package, and installs nothing", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "9.9.9" }, true);
    try {
        missingPinMessage = await failingUp();
    } finally {
        await ts.stack.setConfig("python.vllmVersion", { value: "0.24.0" }, true);
    }
    const error = resourceError(missingPinMessage, "workstation-python-packages");
    t.log(error);
    // The engine reports a step that failed with its partial state as an init error ("1 error occurred: * ...").
    t.regex(error, new RegExp(`error: (1 error occurred:\\s+\\* )?set up the venv ${venv} failed on dev@127\\.0\\.0\\.1:${box.port}`));
    t.regex(error, /no version of vllm==9\.9\.9/);
    // What the steps before it made: uv, and the empty venv the package step creates first.
    t.is((await box.exec(`test -x ${venv}-tools/uv`)).code, 0);
    t.is((await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python`)).trim(), "", "no package was installed");
    t.is((await box.exec(`ls ${venv}/requirements.lock* ${venv}/requirements.in`)).code, 2, "no lock, half lock or request was written");
    // Nothing after it: no model, no service, no service user.
    t.is((await box.exec(`test -e ${cacheRoot}`)).code, 1);
    t.is((await box.exec(`ls /etc/systemd/system/vllm-workstation.service /etc/vllm-workstation/vllm.yaml /etc/vllm-workstation/vllm.env`)).code, 2);
    t.is((await box.exec("id vllm")).code, 1);
    const resources = (await state()).resources;
    const urns = resources.map((r) => r.urn);
    t.false(urns.some((u) => modelUrn.test(u) || /workstation-vllm-unit$/.test(u)), urns.join("\n"));
    // The failed step itself stays in the state with its error (it made the empty venv): destroy removes it.
    const packages = resources.find((r) => packagesUrn.test(r.urn));
    t.regex((packages?.initErrors ?? []).join("\n"), /no version of vllm==9\.9\.9/);
    t.deepEqual(lockFiles(), [], "a failed run releases the backend's lock");
});

// uv's resolver error never says which index it asked, so "no version of vllm==9.9.9" alone does not
// tell a typo in the pin from an index that lacks the release: the stack adds where it looked.
test.serial("the missing-pin error names the package index that was asked", (t) => {
    const error = resourceError(missingPinMessage, "workstation-python-packages");
    t.true(error.includes("vllm==9.9.9") && error.includes(rig.index.url), `the error does not name ${rig.index.url}:\n${error}`);
});

// --- killed during the model download ----------------------------------------------------------------

let killedAt = 0;

test.serial("pulumi up killed during the model download leaves the stack locked with a pending create, and the next up says to run pulumi cancel", async (t) => {
    await rig.hub.clearRequestLog();
    const run = ts.stack.up({ onOutput: ts.onOutput }).then(
        () => null,
        (e: unknown) => e,
    );
    // The weights file is in flight: the record of its ranges says more than 4 MiB of its 20 are written.
    const partial = await waitFor("a partial weights file", async () => {
        const record = (await box.sh(`cat ${repoDir}/blobs/*.vllm-ws.incomplete.json 2>/dev/null || true`)).trim();
        return record !== "" && recordedBytes(record) > 4 * MiB && record;
    });
    const killed = killEngine();
    killedAt = Date.now();
    await killOnBox(download);
    t.log(`killed with the weights in flight, ${partial}:\n${killed.join("\n")}`);
    t.true(killed.length >= 2, "the CLI and its provider were killed");
    t.truthy(await run, "the killed up failed");

    // The killed GET of the weights shows in the Hub's log as cut short; nothing else was.
    const log = await waitFor("the cut-off weights request in the Hub's log", async () => {
        const entries = await rig.hub.requestLog();
        return entries.some((e) => e.method === "GET" && e.path.endsWith(`/${weights}`)) && entries;
    }, 15_000);
    // Cut short: the weights' ranges (model.connections of them) and nothing else.
    const cut = log.filter((e) => e.method === "GET" && !e.complete);
    t.deepEqual([...new Set(cut.map((e) => path.basename(e.path)))], [weights]);
    t.true(cut.every((e) => e.range !== null && e.bytes < weightsBytes), JSON.stringify(cut));

    // What the backend holds: a lock nobody will release, and the model's create as pending.
    t.is(lockFiles().length, 1, "the killed run's lock is left behind");
    const { pending } = await state();
    t.deepEqual(pending.map((p) => [p.type, modelUrn.test(p.resource.urn)]), [["creating", true]]);

    const refused = await failingUp();
    t.regex(refused, /the stack is currently locked by 1 lock\(s\)/);
    t.regex(refused, /pulumi cancel/);
});

// The lock message says `pulumi cancel`, which would go to whatever backend the CLI is logged in to;
// the project drives the engine through scripts/stack.ts with its own file backend, so it brings its
// own cancel (npm run cancel).
test.serial("the lock a killed up leaves is cleared with the project's own command (stack.js cancel)", async (t) => {
    const r = await runNode([path.join(projectRoot, "dist", "scripts", "stack.js"), "cancel", "--stack", "test"], {
        ...process.env,
        PULUMI_BACKEND_URL: `file://${path.join(ts.dir, "state")}`,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
    });
    t.log(r.out.slice(-1500));
    t.is(r.code, 0);
    t.deepEqual(lockFiles(), []);
});

test.serial("after pulumi cancel the rerun converges, fetches only the rest of the file that was in flight, and leaves no partial file", async (t) => {
    t.true(killedAt > 0, "the kill test ran");
    await ts.stack.cancel();
    t.deepEqual(lockFiles(), []);
    const rerunFrom = Date.now() / 1000;
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);

    t.deepEqual(await partialFiles(), [], "no *.part or *.incomplete file is left");
    t.is((await box.sh(`find ${repoDir}/blobs -name '*incomplete*' | wc -l`)).trim(), "0", "the killed run's partial blob is gone");

    // The rerun asked the Hub for the rest of the weights (the ranges the killed run had not recorded as
    // written) and for nothing else of the repo: the files finished before the kill, and the tiktoken
    // files, were kept.
    const rerun = (await rig.hub.requestLog()).filter((e: RequestLogEntry) => e.t >= rerunFrom && e.method === "GET");
    const files = rerun.filter((e) => e.path.includes("/resolve/") || e.path.startsWith("/tiktoken/"));
    t.log(rerun.map((e) => `${e.method} ${e.path} ${e.range ?? ""} ${e.bytes}`).join("\n"));
    t.deepEqual([...new Set(files.map((e) => path.basename(e.path)))], [weights]);
    t.true(files.every((e) => e.range !== null), "the weights were resumed with Range requests");
    t.true(files.reduce((n, e) => n + e.bytes, 0) <= rig.hub.repo.files[weights].size - 4 * MiB, "the 4 MiB and more recorded before the kill were not fetched again");

    // The model verified: its probe says so, and a plain preview has nothing to do.
    const model = (await state()).resources.find((res) => modelUrn.test(res.urn));
    t.regex(String(model?.outputs?.observed), new RegExp(`model=${rig.hub.commitSha} files=verified`));
    t.deepEqual(await changes(), {});

    // Pulumi keeps an interrupted create as pending until a refresh is told to clear it (the engine
    // cannot know whether the provider finished it); HostState's create is idempotent, so clearing is safe.
    const { pending } = await state();
    t.log(`pending operations after the converging rerun: ${JSON.stringify(pending.map((p) => [p.type, p.resource.urn]))}`);
    await ts.stack.refresh({ onOutput: ts.onOutput, clearPendingCreates: true });
    t.deepEqual((await state()).pending, []);
});

// --- killed during the wheel install -------------------------------------------------------------------

test.serial("pulumi up killed during the wheel install converges on the next run with exactly the locked packages", async (t) => {
    // The venv's packages and uv's cache go, so the package step has to download every wheel again; the index is
    // frozen (SIGSTOP) while it does, so the kill lands in the middle of `uv pip sync` and not after it
    // (unfrozen, it syncs 17 wheels in well under a second).
    const lock = await box.sh(`cat ${venv}/requirements.lock`);
    await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python | cut -d= -f1 | xargs ${venv}-tools/uv pip uninstall --python ${venv}/bin/python && rm -rf ${venv}-tools/uv-cache`);
    const pypi = indexPid();
    process.kill(pypi, "SIGSTOP");
    try {
        const run = ts.stack.up({ onOutput: ts.onOutput }).then(
            () => null,
            (e: unknown) => e,
        );
        const sync = await waitFor("uv pip sync on the box", async () => (await box.exec("pgrep -af 'uv pip [s]ync'")).stdout.trim(), 60_000, 100);
        await sleep(1000);
        const killed = killEngine();
        await killOnBox("uv pip [s]ync");
        t.log(`killed during ${sync}:\n${killed.join("\n")}`);
        t.truthy(await run, "the killed up failed");
    } finally {
        process.kill(pypi, "SIGCONT");
    }
    t.is(lockFiles().length, 1);
    const { pending } = await state();
    t.deepEqual(pending.map((p) => [p.type, packagesUrn.test(p.resource.urn)]), [["updating", true]]);
    t.regex(await failingUp(), /the stack is currently locked/);

    await ts.stack.cancel();
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    const pins = (s: string) => s.split("\n").filter((l) => /^[A-Za-z0-9._-]+==/.test(l)).map((l) => l.split(/[ ;\\]/)[0].toLowerCase().replace(/[-_.]+(?=.*==)/g, "-")).sort();
    const freeze = await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python`);
    t.deepEqual(pins(freeze), pins(lock), "the venv holds exactly the locked set");
    t.is(await box.sh(`cat ${venv}/requirements.lock`), lock, "the lock was kept, not resolved again");
    t.deepEqual(await partialFiles(), []);
    t.deepEqual((await state()).pending, [], "the converging rerun cleared the interrupted update");
    t.deepEqual(await changes(), {});
});

// --- two runs at once ----------------------------------------------------------------------------------

test.serial("a second pulumi up on the same stack while one runs is refused by the backend's lock and changes nothing", async (t) => {
    // A second, independent Automation API workspace on the same project directory and backend: what a
    // second terminal (or a second admin) running `npm run up` is.
    const other = await openStack({
        stack: "test",
        program: workstationProgram,
        workDir: ts.dir,
        stateDir: path.join(ts.dir, "state"),
        env: { PULUMI_CONFIG_PASSPHRASE: passphrase },
    });
    const historyBefore = (await ts.stack.history()).length;
    // The first run has real work, the weights to fetch again (5 s at the endpoint's rate): a no-op up
    // could end, and free the lock, before the second run's CLI has started.
    await box.sh(`f=$(readlink -f ${repoDir}/snapshots/*/${weights}); rm -f "$f" ${repoDir}/snapshots/*/${weights}`);
    const first = ts.stack.up({ onOutput: ts.onOutput });
    first.catch(() => undefined); // awaited below; guards a timeout in between
    await waitFor("the first run's lock", async () => lockFiles().length === 1, 60_000, 50);
    await waitFor("the first run's download on the box", async () => (await box.exec(`pgrep -f '${download}'`)).code === 0, 60_000, 50);
    const second = await other.up({ onOutput: ts.onOutput }).then(
        () => "succeeded",
        (e: unknown) => text(e),
    );
    const r = await first;
    t.is(r.summary.result, "succeeded");
    t.regex(second, /the stack is currently locked by 1 lock\(s\)/);
    t.regex(second, /created by .* \(pid \d+\)/, "the refusal says who holds the lock");
    t.is((await ts.stack.history()).length, historyBefore + 1, "only the first run is in the stack's history");
    t.deepEqual(lockFiles(), [], "both runs are gone from the lock directory");
    t.deepEqual(await changes(), {});
});

// --- the workstation unreachable ---------------------------------------------------------------------

test.serial("with sshd stopped, up fails naming dev@127.0.0.1 and the port, leaves the state as it was, and converges once sshd is back", async (t) => {
    const before = await stateSummary();
    await box.sh("systemctl stop ssh");
    let message: string;
    try {
        message = await failingUp();
    } finally {
        await box.sh("systemctl start ssh");
    }
    t.regex(message, new RegExp(`cannot reach the workstation dev@127\\.0\\.0\\.1:${box.port} over SSH`));
    t.regex(message, new RegExp(`sshd listens on port ${box.port}`));
    const after = await stateSummary();
    t.is(after.length, before.length);
    t.deepEqual(after, before, "every resource and its outputs are unchanged");
    t.deepEqual(lockFiles(), []);

    await waitFor("sshd to accept dev again", async () => (await box.ssh("true")).code === 0, 30_000);
    const r = await up(t);
    t.deepEqual(Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same"), [], "nothing needed repair");
    t.deepEqual(await changes(), {});
});

// --- reboot --------------------------------------------------------------------------------------------

test.serial("after a reboot the service comes back by itself, answers /health, and a plain preview is clean", async (t) => {
    const systemdBefore = box.pid();
    await box.reboot();
    t.not(box.pid(), systemdBefore, "the box booted again");
    const active = await waitFor("vllm-workstation to be active", async () => (await box.exec("systemctl is-active vllm-workstation")).stdout.trim() === "active", 90_000, 500);
    t.true(active);
    t.is((await box.exec("systemctl is-enabled vllm-workstation")).stdout.trim(), "enabled");
    const health = await waitFor(
        "GET /health",
        async () => {
            try {
                const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5000) });
                return res.ok && res.status;
            } catch {
                return false;
            }
        },
        90_000,
        500,
    );
    t.is(health, 200);
    t.deepEqual(await changes(), {});
});

// --- the disk fills up during the download -----------------------------------------------------------

test.serial("the disk filling up during the model download fails with No space left on device, and the rerun on a larger disk converges", async (t) => {
    // The model cache gets a filesystem of its own (tmpfs over /var/lib/vllm-workstation, which hides the
    // converged model, so the model is downloaded again). The preflight wants about 14 GB free there (the
    // real model: DISK_NEEDS.model), so the filesystem is large while the preflight looks, and shrinks to
    // 12 MB once the download runs: the disk filled by something else meanwhile. Its 20 MiB weights do not fit.
    const model = (await state()).resources.find((res) => modelUrn.test(res.urn));
    await box.sh(`mount -t tmpfs -o size=64g tmpfs ${cacheRoot}`);
    try {
        const run = failingUp();
        run.catch(() => undefined); // awaited below; guards a timeout in between
        await waitFor("the model download on the box", async () => (await box.exec(`pgrep -f '${download}'`)).code === 0, 120_000, 100);
        await box.sh(`mount -o remount,size=12m ${cacheRoot}`);
        const message = await run;
        const error = resourceError(message, "workstation-model-files");
        t.log(error);
        t.regex(error, new RegExp(`error: (1 error occurred:\\s+\\* )?set up the model openai/gpt-oss-20b@${rig.hub.commitSha.slice(0, 12)} failed on dev@127\\.0\\.0\\.1:${box.port}`));
        t.regex(error, /No space left on device/);
        t.true((await state()).resources.some((res) => res.urn === model?.urn), "the model stays in the state");

        // More room (the files written so far stay), and the next run converges without leftovers.
        await box.sh(`mount -o remount,size=64g ${cacheRoot}`);
        const r = await up(t);
        t.is(r.summary.result, "succeeded");
        t.deepEqual(await partialFiles(), [], "the partial weights of the failed run are gone");
        t.deepEqual(await changes(), {});
    } finally {
        await box.exec(`umount ${cacheRoot}`);
    }
    // The converged model under the tmpfs is back in view, still as its manifest says.
    t.deepEqual(await changes(), {});
});

// Once program.ts reported a refusal with pulumi.log.error and returned {}: a program that returns
// normally tells the engine it declared everything, so on a converged workstation the refusal deleted
// every resource ("10 deleted" under the error). A refusal now fails the program itself.
test.serial("a cache filesystem too small for the model is refused by the preflight, and the converged workstation is left as it was", async (t) => {
    // URNs only: what must not happen is a resource leaving the state.
    const before = (await state()).resources.map((r) => r.urn);
    await box.sh(`mount -t tmpfs -o size=12m tmpfs ${cacheRoot}`);
    let message: string;
    try {
        message = await failingUp();
    } finally {
        await box.exec(`umount ${cacheRoot}`);
    }
    t.regex(message, /the workstation is not ready \(nothing was changed\)/);
    t.regex(message, new RegExp(`\\[disk-model\\] 0\\.0 GB free for model \\(${cacheRoot}/hf\\); 14\\.0 GB needed`));
    t.notRegex(message, /\d+ deleted/, "the refusal deleted resources");
    t.deepEqual((await state()).resources.map((r) => r.urn), before, "every resource is still in the state");
    t.regex(await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python 2>&1 || true`), /^vllm==0\.24\.0$/m, "the venv is still there");
    t.is((await box.exec("systemctl is-active vllm-workstation")).stdout.trim(), "active", "the service still runs");
});
