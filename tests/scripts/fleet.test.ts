// The fleet command's own logic: its arguments, the table, the exit code, what it reads from a run's
// events and from the look at a workstation, and how many stacks run at once.
import test from "ava";
import { execFileSync } from "child_process";
import * as net from "net";
import * as fs from "fs";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { parseConfig } from "../../components/config/schema";
import { guessLook } from "../../components/program";
import {
    cardCell,
    containerVllmFound,
    engineError,
    exitCode,
    fleet,
    FleetRow,
    fleetLook,
    installedCell,
    installedVllmPiece,
    lastKnownCells,
    modelFound,
    oneLine,
    parseFleetArgs,
    pieceName,
    planCell,
    planFromFlags,
    LookTimeout,
    pool,
    projectStacks,
    renderTable,
    runStack,
    StepLog,
    servedRevision,
    vllmFound,
    withDeadline,
} from "../../scripts/fleet";
import { openStack } from "../../scripts/engine";
import { tempDir } from "../helpers/tempDir";

const row = (over: Partial<FleetRow>): FleetRow => ({
    stack: "ws-alice",
    target: "admin@ws-alice.lan:2222",
    reachable: true,
    card: "RTX 4090 24 GiB",
    plan: "24gb: 32k ctx, 32 seqs",
    vllm: "0.24.0",
    model: "6cee5e81ee83",
    pieces: [],
    result: "converged",
    reason: null,
    lastKnown: false,
    ...over,
});

test("the arguments: the operation, stack names in order and once each, the concurrency and the project directory", (t) => {
    t.deepEqual(parseFleetArgs(["preview"]), { op: "preview", stacks: [], concurrency: 4, lookTimeoutSeconds: 120, cwd: null });
    t.deepEqual(parseFleetArgs(["up", "ws-bob", "ws-alice", "ws-bob", "--concurrency", "2", "--look-timeout", "30", "--cwd", "/srv/fleet"]), {
        op: "up",
        stacks: ["ws-bob", "ws-alice"],
        concurrency: 2,
        lookTimeoutSeconds: 30,
        cwd: "/srv/fleet",
    });
});

test("bad arguments are refused, naming the option and the value", (t) => {
    t.throws(() => parseFleetArgs([]), { message: /preview or up is missing/ });
    t.throws(() => parseFleetArgs(["destroy"]), { message: /unknown command "destroy"/ });
    t.throws(() => parseFleetArgs(["preview", "--concurrency", "0"]), { message: /--concurrency "0" is not a whole number from 1 to 64/ });
    t.throws(() => parseFleetArgs(["preview", "--concurrency", "two"]), { message: /--concurrency "two"/ });
    t.throws(() => parseFleetArgs(["preview", "--concurrency"]), { message: /--concurrency needs a value/ });
    t.throws(() => parseFleetArgs(["preview", "--look-timeout", "0"]), { message: /--look-timeout "0" is not a whole number of seconds from 1 to 3600/ });
    t.throws(() => parseFleetArgs(["preview", "--look-timeout", "1.5"]), { message: /--look-timeout "1\.5"/ });
    t.throws(() => parseFleetArgs(["preview", "--stack", "x"]), { message: /unknown option "--stack"/ });
    t.throws(() => parseFleetArgs(["preview", "../etc/passwd"]), { message: /stack name "\.\.\/etc\/passwd" is not a stack name/ });
    t.throws(() => parseFleetArgs(["preview", ".."]), { message: /stack name "\.\."/ });
});

test("the exit code is 1 when any stack failed or was unreachable, else 2 when any drifted, else 0", (t) => {
    t.is(exitCode([row({}), row({})]), 0);
    t.is(exitCode([row({}), row({ result: "drifted" })]), 2);
    t.is(exitCode([row({ result: "drifted" }), row({ result: "unreachable" })]), 1);
    t.is(exitCode([row({ result: "failed" }), row({})]), 1);
    t.is(exitCode([]), 0);
});

test("the table has one row per stack in the given order, columns aligned, a dash for what is not known", (t) => {
    const table = renderTable("preview", [
        row({}),
        row({ stack: "ws-bob", target: "admin@ws-bob.lan:22", vllm: "0.11.0 (wants 0.24.0)", pieces: ["cuda-files", "python-packages"], result: "drifted" }),
        row({ stack: "ws-carol", target: null, reachable: null, card: null, plan: null, vllm: null, model: null, result: "failed", reason: "invalid stack config (1 problem): model: (not set) expected object" }),
    ]);
    t.is(
        table,
        [
            "WORKSTATION                         REACHABLE  CARD             PLAN                    VLLM                   MODEL         DRIFTED                     RESULT",
            "ws-alice (admin@ws-alice.lan:2222)  yes        RTX 4090 24 GiB  24gb: 32k ctx, 32 seqs  0.24.0                 6cee5e81ee83  -                           converged",
            "ws-bob (admin@ws-bob.lan:22)        yes        RTX 4090 24 GiB  24gb: 32k ctx, 32 seqs  0.11.0 (wants 0.24.0)  6cee5e81ee83  cuda-files,python-packages  drifted",
            "ws-carol                            -          -                -                       -                      -             -                           failed: invalid stack config (1 problem): model: (not set) expected object",
            "",
        ].join("\n"),
    );
});

test("an up's table says CHANGED, and what is known of an unreachable workstation only from its last up is starred and explained", (t) => {
    const table = renderTable("up", [row({ pieces: ["vllm-unit"] }), row({ stack: "ws-bob", reachable: false, vllm: null, result: "unreachable", reason: "cannot reach the workstation", lastKnown: true })]);
    const lines = table.split("\n");
    t.regex(lines[0], /\bCHANGED\b/);
    t.false(lines[0].includes("DRIFTED"));
    t.regex(lines[1], /vllm-unit +converged$/);
    t.regex(lines[2], /^ws-bob \(admin@ws-alice\.lan:2222\) +no +RTX 4090 24 GiB\* +24gb: 32k ctx, 32 seqs\* +- +6cee5e81ee83\* +- +unreachable$/);
    t.is(lines.at(-2), "* as of the stack's last up: the workstation was not reached");
});

test("what the stack's outputs remember of an unreachable workstation: its card, plan and model revision", (t) => {
    t.deepEqual(
        lastKnownCells({
            gpu: { name: "NVIDIA GeForce RTX 4070", memoryTotalMiB: 12282, memoryFreeMiB: 11000, computeCap: "8.9", source: "detected" },
            vllmFlags: { "max-model-len": 8192, "max-num-seqs": 4, "cpu-offload-gb": 5, "enforce-eager": true },
            model: "openai/gpt-oss-20b@6cee5e81ee83917806bbde320786a8fb61efebee",
        }),
        { card: "RTX 4070 12 GiB", plan: "8k ctx, 4 seqs, offload 5 GiB, eager", model: "6cee5e81ee83", lastKnown: true },
    );
    t.deepEqual(lastKnownCells({}), { card: null, plan: null, model: null, lastKnown: false }, "a stack never brought up");
});

test("a long failure is cut in the table; the whole of it is in the stack's progress", (t) => {
    const table = renderTable("preview", [row({ result: "failed", reason: "x".repeat(300) })]);
    t.regex(table, /failed: x{97}\.\.\.\n$/);
});

test("the card cell drops the vendor's prefixes and rounds to GiB", (t) => {
    t.is(cardCell({ name: "NVIDIA GeForce RTX 4090", memoryTotalMiB: 24564 }), "RTX 4090 24 GiB");
    t.is(cardCell({ name: "NVIDIA H200", memoryTotalMiB: 143771 }), "H200 140 GiB");
    t.is(cardCell(null), "no GPU");
});

test("the plan cell names the tier, context, sequences, and offload and eager mode only when used", (t) => {
    t.is(planCell({ tier: "24gb", maxModelLen: 32768, maxNumSeqs: 32, cpuOffloadGb: 0, enforceEager: false }), "24gb: 32k ctx, 32 seqs");
    t.is(planCell({ tier: "auto", maxModelLen: 8192, maxNumSeqs: 4, cpuOffloadGb: 5, enforceEager: true }), "auto: 8k ctx, 4 seqs, offload 5 GiB, eager");
    t.is(planCell({ tier: null, maxModelLen: 5000, maxNumSeqs: 1, cpuOffloadGb: 0, enforceEager: false }), "5000 ctx, 1 seqs");
    t.is(planFromFlags({ "max-model-len": 8192, "max-num-seqs": 4, "cpu-offload-gb": 4, "enforce-eager": true }), "8k ctx, 4 seqs, offload 4 GiB, eager");
    t.is(planFromFlags(undefined), null);
    t.is(planFromFlags({ host: "127.0.0.1" }), null);
});

test("installed against wanted: one value when they agree, what a preview would change, what an up replaced", (t) => {
    t.is(installedCell("0.24.0", "0.24.0", "preview", true), "0.24.0");
    t.is(installedCell("0.11.0", "0.24.0", "preview", true), "0.11.0 (wants 0.24.0)");
    t.is(installedCell("none", "0.24.0", "up", true), "none -> 0.24.0");
    t.is(installedCell("0.11.0", "0.24.0", "up", false), "0.11.0 (wants 0.24.0)", "a failed up replaced nothing for sure");
});

test("what the probes printed: the model's verified revision, the venv's vLLM, the container's image", (t) => {
    const rev = "6cee5e81ee83917806bbde320786a8fb61efebee";
    t.is(modelFound(`model=${rev} files=verified`), rev);
    t.is(modelFound(`model=${rev} files=changed:config.json`), rev);
    t.is(modelFound("model=missing"), "none");
    t.is(modelFound(undefined), "none");
    t.is(vllmFound("vllm=0.10.1+gptoss"), "0.10.1+gptoss");
    t.is(vllmFound("vllm=none"), "none");
    const docker = parseConfig({ runtime: "docker", model: { revision: rev }, dockerImage: "vllm/vllm-openai:v0.11.0" });
    t.is(containerVllmFound("managed=1\nimage=vllm/vllm-openai:v0.11.0\nrunning=true", docker), "0.11.0");
    t.is(containerVllmFound("managed=1\nimage=other", docker), "another image");
    t.is(containerVllmFound("container=absent", docker), "none");
});

test("the installed-vLLM probe reads the release from the venv's dist-info, and says none without one", (t) => {
    const dir = tempDir(t, "fleet");
    const venv = path.join(dir, "venv");
    const run = () => execFileSync("bash", ["-euo", "pipefail", "-c", installedVllmPiece(venv).probe], { encoding: "utf8" }).trim();
    t.is(run(), "vllm=none", "no venv");
    fs.mkdirSync(path.join(venv, "lib", "python3.12", "site-packages", "vllm_flash_attn-2.0.dist-info"), { recursive: true });
    t.is(run(), "vllm=none", "another package whose name starts with vllm");
    fs.mkdirSync(path.join(venv, "lib", "python3.12", "site-packages", "vllm-0.10.1+gptoss.dist-info"));
    t.is(run(), "vllm=0.10.1+gptoss");
});

test("the installed-vLLM probe also reads the revision the service serves from its serves file, and nothing else of it", (t) => {
    const dir = tempDir(t, "fleet");
    const serves = path.join(dir, "service.serves");
    const run = () => execFileSync("bash", ["-euo", "pipefail", "-c", installedVllmPiece(path.join(dir, "venv"), serves).probe], { encoding: "utf8" }).trim();
    t.is(run(), "vllm=none", "no serves file");
    const rev = "a".repeat(40);
    fs.writeFileSync(serves, `# Managed by vllm-workstation\ninstall=/opt/x\nrevision=${rev}\nrevision=not-a-commit\n`);
    t.is(run(), `vllm=none\nserved-revision=${rev}`);
    t.is(servedRevision(run()), rev);
    t.is(servedRevision("vllm=none"), null);
});

test("a venv path with shell characters stays one argument of the probe", (t) => {
    const probe = installedVllmPiece("/opt/a b/$(touch x)").probe;
    t.true(probe.startsWith("set -- '/opt/a b/$(touch x)' '/etc/vllm-workstation/service.serves'\n"));
});

test("the fleet's look is the program's look for the stack's files, with its own probe after the pieces", (t) => {
    const dir = tempDir(t, "fleet");
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: vllm-workstation\nruntime: nodejs\nstackConfigDir: .stacks\n");
    fs.mkdirSync(path.join(dir, ".stacks"));
    fs.writeFileSync(
        path.join(dir, ".stacks", "Pulumi.ws-alice.yaml"),
        "config:\n  vllm-workstation:target:\n    kind: ssh\n    host: ws-alice.lan\n    port: 2222\n    user: admin\n  vllm-workstation:model:\n    revision: 6cee5e81ee83917806bbde320786a8fb61efebee\n",
    );
    const fl = fleetLook(dir, "ws-alice");
    t.is(guessLook(dir, "ws-alice")?.key, fl.look.key, "the program takes what the fleet's look saw");
    t.deepEqual(fl.pieces.slice(0, -1), [...fl.look.pieces]);
    t.is(fl.pieces.at(-1)?.probe, installedVllmPiece("/opt/vllm-workstation/venv").probe);
    t.is(fl.config.target.kind, "ssh");
});

test("a stack this machine has not run yet is looked at from the team's tracked file alone", (t) => {
    const dir = tempDir(t, "fleet");
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: vllm-workstation\nruntime: nodejs\nstackConfigDir: .stacks\n");
    t.false(fs.existsSync(path.join(dir, ".stacks", "Pulumi.workstation-24gb.yaml")));
    const fl = fleetLook(dir, "workstation-24gb");
    t.is(fl.config.gpu.maxModelLen, 65536, "the tracked Pulumi.workstation-24gb.yaml");
    t.is(fl.config.target.kind, "local");
});

test("piece names are the resources' names without the workstation's prefix", (t) => {
    t.is(pieceName("urn:pulumi:ws::vllm-workstation::vllm-workstation:index:Workstation$vllm-workstation:index:PythonEnvironment$hoststate:index:HostState::workstation-python-packages"), "python-packages");
    t.is(pieceName("urn:pulumi:ws::p::x::other"), "other");
});

// As the engine sends them: `custom` is left out of a component's state (Go's omitempty on false).
const pre = (op: string, type: string, name: string, custom = true): EngineEvent =>
    ({ sequence: 0, timestamp: 0, resourcePreEvent: { metadata: { op, urn: `urn:pulumi:s::p::${type}::${name}`, type, provider: "", new: { ...(custom ? { custom } : {}), type, urn: "", id: "", parent: "", provider: "", inputs: {}, outputs: {} } } } }) as unknown as EngineEvent;
const diag = (severity: string, message: string): EngineEvent => ({ sequence: 0, timestamp: 0, diagnosticEvent: { severity, message, color: "never" } }) as unknown as EngineEvent;

test("the drifted pieces are the pieces the run's steps change, not the stack, its providers or the components", (t) => {
    const log = new StepLog();
    for (const e of [
        pre("same", "pulumi:pulumi:Stack", "vllm-workstation-s", false),
        pre("create", "pulumi:providers:hoststate", "default"),
        pre("update", "vllm-workstation:index:CudaEnvironment", "workstation-cuda", false),
        pre("update", "hoststate:index:HostState", "workstation-vllm-unit"),
        pre("same", "hoststate:index:HostState", "workstation-python-uv"),
        pre("replace", "hoststate:index:HostState", "workstation-cuda-files"),
        pre("update", "hoststate:index:HostState", "workstation-vllm-unit"),
    ]) {
        log.onEvent(e);
    }
    t.deepEqual(log.pieces(), ["cuda-files", "vllm-unit"]);
});

test("a failure's reason is the first error of its own, its problems on one line without the fixes", (t) => {
    const log = new StepLog();
    log.onEvent(diag("warning", "[wsl] not WSL"));
    log.onEvent(diag("error", "update failed"));
    log.onEvent(diag("error", "the workstation is not ready (nothing was changed):\n  - [gpu] no GPU: nvidia-smi not found\n    fix: install the NVIDIA driver\n  - [nvcc] nvcc not found\n    fix: install CUDA\n"));
    t.is(log.reason(), "the workstation is not ready (nothing was changed): [gpu] no GPU: nvidia-smi not found; [nvcc] nvcc not found");
    t.is(new StepLog().reason(), null);
    t.is(oneLine("a\n\nb"), "a; b");
});

test("a failed CLI run's reason is its error line, not the exit code the Automation API's error starts with", (t) => {
    const e = Object.assign(new Error("code: -2\n stdout: \n stderr: error: no folder at path 'x'\n"), { commandResult: { stderr: "warning: w\nerror: no folder at path 'x'\n" } });
    t.is(engineError(e), "no folder at path 'x'");
    t.is(engineError(new Error("\nsomething broke\nmore")), "something broke");
});

test("the pool runs at most the limit at once and keeps the items' order", async (t) => {
    let running = 0;
    let most = 0;
    const out = await pool([5, 1, 4, 2, 3], 2, async (n) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, n * 5));
        running--;
        return n * 10;
    });
    t.deepEqual(out, [50, 10, 40, 20, 30]);
    t.is(most, 2);
    t.deepEqual(await pool([], 3, async (n: number) => n), []);
});

// These two run the Pulumi CLI (the toolchain's, on PATH) against a backend in a temp directory.
function project(t: Parameters<typeof tempDir>[0]): { dir: string; stateDir: string } {
    const dir = tempDir(t, "fleet");
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: vllm-workstation\nruntime: nodejs\nstackConfigDir: .stacks\n");
    return { dir, stateDir: path.join(dir, "state") };
}

test("the project's stacks are the team's stack files, this machine's, and the backend's, once each", async (t) => {
    const { dir, stateDir } = project(t);
    fs.writeFileSync(path.join(dir, "Pulumi.ws-team.yaml"), "config: {}\n");
    fs.mkdirSync(path.join(dir, ".stacks"));
    fs.writeFileSync(path.join(dir, ".stacks", "Pulumi.ws-mine.yaml"), "config: {}\n");
    await openStack({ stack: "ws-backend", program: async () => ({}), workDir: dir, stateDir });
    fs.rmSync(path.join(dir, ".stacks", "Pulumi.ws-backend.yaml"), { force: true });
    await openStack({ stack: "ws-team", program: async () => ({}), workDir: dir, stateDir });
    t.deepEqual(await projectStacks(dir, stateDir), ["ws-backend", "ws-mine", "ws-team"]);
});

test("a stack name the project does not have is refused before anything runs, so no new stack is made", async (t) => {
    const { dir, stateDir } = project(t);
    fs.writeFileSync(path.join(dir, "Pulumi.ws-alice.yaml"), "config: {}\n");
    const err: string[] = [];
    const out: string[] = [];
    await t.throwsAsync(fleet(parseFleetArgs(["preview", "ws-alcie", "--cwd", dir]), { stdout: (s) => out.push(s), stderr: (s) => err.push(s) }, { stateDir }), {
        message: 'no stack "ws-alcie" in this project; its stacks: ws-alice',
    });
    t.deepEqual(await projectStacks(dir, stateDir), ["ws-alice"], "the backend has no stack of that name");
    t.deepEqual([out, err], [[], []]);
});

test("the look's deadline passes a look that answers in time, and gives up on one that does not and stops it", async (t) => {
    t.is(await withDeadline(async () => "seen", 1, "x"), "seen");
    const started = Date.now();
    let stopped: AbortSignal | undefined;
    const hanging = (signal: AbortSignal) => {
        stopped = signal;
        return new Promise<never>(() => undefined);
    };
    await t.throwsAsync(withDeadline(hanging, 1, "dev@ws:22"), { instanceOf: LookTimeout, message: /^no answer from the workstation dev@ws:22 within 1 s/ });
    t.true(Date.now() - started < 3000);
    t.true(stopped?.aborted, "the look was told to stop");
    await t.throwsAsync(withDeadline(async () => Promise.reject(new Error("refused")), 5, "x"), { message: "refused" });
});

/**
 * A host that accepts TCP connections and never says a word: what a workstation whose network or sshd
 * hangs looks like to ssh. Resolves to its port; closed when the test ends.
 */
async function silentHost(t: Parameters<typeof tempDir>[0]): Promise<{ port: number; open: () => number }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.resume(); // read (and drop) what comes, so the peer's end is seen
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    t.teardown(() => {
        for (const s of sockets) s.destroy();
        server.close();
    });
    return { port: (server.address() as net.AddressInfo).port, open: () => sockets.size };
}

async function silentStack(t: Parameters<typeof tempDir>[0]) {
    const { dir, stateDir } = project(t);
    const { port, open } = await silentHost(t);
    fs.writeFileSync(
        path.join(dir, "Pulumi.yaml"),
        "name: vllm-workstation\nruntime: nodejs\n",
    );
    // A host key of the right shape: ssh never gets as far as comparing it.
    const target = { kind: "ssh", host: "127.0.0.1", port, user: "dev", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5Jq4w3Q8hGz0cTz1d8zL5o1w7Xy9o3Zq8r0YkU0Fz7" };
    fs.writeFileSync(path.join(dir, "Pulumi.ws-silent.yaml"), `config:\n  vllm-workstation:target: ${JSON.stringify(target)}\n  vllm-workstation:model: {"revision": "6cee5e81ee83917806bbde320786a8fb61efebee"}\n`);
    const lines: Array<{ at: number; text: string }> = [];
    const t0 = Date.now();
    // Connections still open a second after the stack's result came, long before ssh's own 10 s timeout.
    const after: { open: number | null } = { open: null };
    const progress = (_: string, text: string) => {
        lines.push({ at: Date.now() - t0, text });
        if (text.startsWith("done in ")) setTimeout(() => (after.open = open()), 1000);
    };
    return { dir, stateDir, port, lines, after, progress };
}

test("a workstation that takes the connection and never answers is given up at ssh's connect timeout, without an engine run", async (t) => {
    const s = await silentStack(t);
    const row = await runStack("ws-silent", "preview", { workDir: s.dir, stateDir: s.stateDir, lookTimeoutSeconds: 120, progress: s.progress });
    t.like(row, { target: `dev@127.0.0.1:${s.port}`, reachable: false, result: "unreachable", card: null, lastKnown: false });
    t.regex(row.reason ?? "", /^cannot reach the workstation dev@127\.0\.0\.1:\d+ over SSH/);
    const done = s.lines.find((l) => l.text.startsWith("done in "));
    t.truthy(done);
    t.true(done!.at < 15_000, `done after ${done!.at} ms: ssh's ConnectTimeout is 10 s`);
    t.false(s.lines.some((l) => /Previewing update/.test(l.text)), "no engine ran");
});

test("a workstation whose look does not finish within --look-timeout is given up then", async (t) => {
    const s = await silentStack(t);
    const row = await runStack("ws-silent", "preview", { workDir: s.dir, stateDir: s.stateDir, lookTimeoutSeconds: 2, progress: s.progress });
    t.like(row, { reachable: false, result: "unreachable" });
    t.regex(row.reason ?? "", new RegExp(`^no answer from the workstation dev@127\\.0\\.0\\.1:${s.port} within 2 s`));
    const done = s.lines.find((l) => l.text.startsWith("done in "));
    t.true(done !== undefined && done.at < 5_000, `done after ${done?.at} ms`);
    t.is(s.after.open, 0, "its ssh was stopped: no connection to the host is left open");
});

test("no control character from a workstation reaches the table: a card name with an escape sequence is shown inert", (t) => {
    const table = renderTable("preview", [row({ card: "RTX \u001b]0;pwned\u0007 4090", vllm: "0.24.0\u009b2J" })]);
    t.false(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(table), JSON.stringify(table));
    t.true(table.includes("RTX ?]0;pwned? 4090"));
});
