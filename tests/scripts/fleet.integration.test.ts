// npm run fleet over three throwaway boxes in one project, each its own stack over SSH: all three
// converged by one `fleet up`, then one left as it is, one drifted (a file a piece owns edited on the
// box) and one whose sshd is stopped. The command runs as a user runs it (node dist/scripts/fleet.js),
// and the test reads its table, its exit code and the timing of its progress lines.
// Test doubles (no GPU here): the boxes' nvidia-smi and nvcc, the vLLM wheels, the Hub.
import test from "ava";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { workstationProgram } from "../../components/program";
import { projectRoot } from "../../scripts/engine";
import { Box, freePort, startBox } from "../helpers/box";
import { testStack, TestStack } from "../helpers/stack";
import { boxStackConfig, installGpuDoubles, wheelhouse } from "../helpers/workstation";
import { HfEndpoint, PackageIndex, startHfEndpoint, startPackageIndex } from "../infra/servers";

const names = ["fleet-a", "fleet-b", "fleet-c"] as const;
const badConfig = "fleet-d";
type Name = (typeof names)[number];

let boxes: Record<Name, Box>;
let index: PackageIndex;
let hub: HfEndpoint;
let ts: TestStack;

test.before(async () => {
    const [a, b, c, i, h] = await Promise.all([
        startBox({ name: "fleet-a" }),
        startBox({ name: "fleet-b" }),
        startBox({ name: "fleet-c" }),
        startPackageIndex({ wheelhouse }),
        startHfEndpoint(),
    ]);
    boxes = { "fleet-a": a, "fleet-b": b, "fleet-c": c };
    [index, hub] = [i, h];
    await Promise.all(Object.values(boxes).map((box) => installGpuDoubles(box, "rtx4090")));
    // One project directory and one backend for the three stacks, as an admin's checkout has them. The
    // boxes share the host's loopback, so each service gets a port of its own.
    const configs = await Promise.all(names.map(async (n) => boxStackConfig(boxes[n], index, hub, await freePort())));
    ts = await testStack({ name: "fleet", stackName: "fleet-a", program: workstationProgram, config: configs[0] });
    const stackFile = (n: string, config: Record<string, unknown>) =>
        fs.writeFileSync(path.join(ts.dir, `Pulumi.${n}.yaml`), `config:\n${Object.entries(config).map(([key, v]) => `  vllm-workstation:${key}: ${JSON.stringify(v)}`).join("\n")}\n`);
    stackFile("fleet-b", configs[1]);
    stackFile("fleet-c", configs[2]);
    // A fourth stack whose config the program refuses: its failure runs in the same process as the others.
    stackFile(badConfig, { ...configs[0], gpu: { tier: "24gb", maxModelLen: "lots" } });
});

test.after.always(async () => {
    ts?.remove();
    await Promise.all([...Object.values(boxes ?? {}).map((b) => b.stop()), index?.stop(), hub?.stop()]);
});

interface Line {
    /** ms since the command started. */
    readonly at: number;
    readonly text: string;
}

interface FleetRun {
    readonly code: number;
    readonly stdout: string;
    readonly lines: Line[];
    /** The table's rows by stack, each cell by its column's header. */
    readonly rows: Record<string, Record<string, string>>;
}

/** The fleet command as `npm run fleet --` runs it, on the test's project and backend. */
function fleet(t: { log: (...a: unknown[]) => void }, args: string[]): Promise<FleetRun> {
    return new Promise((resolve, reject) => {
        const t0 = Date.now();
        const child = spawn(process.execPath, [path.join(projectRoot, "dist", "scripts", "fleet.js"), ...args, "--cwd", ts.dir], {
            env: { ...process.env, PULUMI_BACKEND_URL: `file://${path.join(ts.dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "test-only-passphrase" },
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let partial = "";
        const lines: Line[] = [];
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => {
            const parts = (partial + d.toString()).split("\n");
            partial = parts.pop() ?? "";
            for (const text of parts) lines.push({ at: Date.now() - t0, text });
        });
        child.on("error", reject);
        child.on("close", (code) => {
            if (partial !== "") lines.push({ at: Date.now() - t0, text: partial });
            const [header, ...body] = stdout.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("*"));
            const columns = header.split(/ {2,}/);
            const rows: Record<string, Record<string, string>> = {};
            for (const l of body) {
                const cells = l.split(/ {2,}/);
                rows[cells[0].split(" ")[0]] = Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? ""]));
            }
            t.log(`fleet ${args.join(" ")} -> exit ${code}\n${stdout}`);
            resolve({ code: code ?? 1, stdout, lines, rows });
        });
    });
}

/** When the first progress line of `stack` matching `re` came, or fails the test. */
function when(run: FleetRun, stack: Name, re: RegExp): number {
    const l = run.lines.find((x) => x.text.startsWith(`[${stack}`) && re.test(x.text.replace(/^\[[^\]]*\] /, "")));
    if (l === undefined) throw new Error(`no line of ${stack} matching ${re}:\n${run.lines.map((x) => x.text).join("\n")}`);
    return l.at;
}

test.serial("fleet up converges every named workstation at once, and its table shows each one's card, plan, vLLM and model", async (t) => {
    t.timeout(20 * 60 * 1000);
    const r = await fleet(t, ["up", ...names]);
    if (r.code !== 0) t.log(r.lines.map((l) => l.text).join("\n").slice(-8000));
    t.is(r.code, 0);
    for (const n of names) {
        const row = r.rows[n];
        t.truthy(row, n);
        t.is(row.WORKSTATION, `${n} (dev@127.0.0.1:${boxes[n].port})`);
        t.is(row.REACHABLE, "yes");
        t.is(row.CARD, "RTX 4090 24 GiB");
        t.is(row.PLAN, "24gb: 32k ctx, 32 seqs");
        t.is(row.VLLM, "none -> 0.24.0", "nothing was installed before, 0.24.0 after");
        t.is(row.MODEL, `none -> ${hub.commitSha.slice(0, 12)}`);
        t.deepEqual(row.CHANGED.split(","), ["cuda-files", "model-files", "python-packages", "python-uv", "vllm-unit"]);
        t.is(row.RESULT, "converged");
    }
    // All three at once: each started before any finished.
    const firstDone = Math.min(...names.map((n) => when(r, n, /^done in /)));
    for (const n of names) t.true(when(r, n, /^up started$/) < firstDone, `${n} started before the first finished`);
    t.true(names.every((n) => r.lines.some((l) => l.text.startsWith(`[${n}] `) && /waiting for http:\/\/127\.0\.0\.1:\d+\/health/.test(l.text))), "each stack's progress, prefixed with its name");
});

test.serial("fleet preview of a converged workstation shows what is installed, no drift, and exits 0", async (t) => {
    const r = await fleet(t, ["preview", "fleet-a"]);
    t.is(r.code, 0);
    t.deepEqual(Object.keys(r.rows), ["fleet-a"]);
    t.like(r.rows["fleet-a"], { REACHABLE: "yes", CARD: "RTX 4090 24 GiB", VLLM: "0.24.0", MODEL: hub.commitSha.slice(0, 12), DRIFTED: "-", RESULT: "converged" });
});

test.serial("fleet preview names the drifted piece and exits 2, one stack at a time with --concurrency 1", async (t) => {
    await boxes["fleet-b"].sh(`echo 'export CUDA_HOME=/elsewhere' >> /etc/profile.d/vllm-workstation-cuda.sh`);
    const r = await fleet(t, ["preview", "fleet-a", "fleet-b", "--concurrency", "1"]);
    t.is(r.code, 2);
    t.like(r.rows["fleet-a"], { DRIFTED: "-", RESULT: "converged" });
    t.like(r.rows["fleet-b"], { REACHABLE: "yes", VLLM: "0.24.0", DRIFTED: "cuda-files", RESULT: "drifted" });
    t.true(when(r, "fleet-b", /^preview started$/) >= when(r, "fleet-a", /^done in /), "the second starts once the first is done");
});

test.serial("a workstation whose sshd is stopped is unreachable within ssh's connect timeout and holds up no other, a refused config fails on its own, and the exit code is 1", async (t) => {
    const c = boxes["fleet-c"];
    await c.sh("systemctl stop ssh.socket ssh.service 2>/dev/null || systemctl stop ssh");
    t.is((await c.ssh("true", { timeoutMs: 30_000 })).code, 255, "sshd no longer answers");
    // No stack named: every stack of the project, the one with a refused config among them.
    const r = await fleet(t, ["preview"]);
    t.is(r.code, 1, "one unreachable makes it 1, whatever drifted");
    t.deepEqual(Object.keys(r.rows), [...names, badConfig]);
    t.like(r.rows[badConfig], { REACHABLE: "-", CARD: "-" });
    t.regex(r.rows[badConfig].RESULT, /^failed: invalid stack config \(1 problem\): gpu\.maxModelLen/);
    t.like(r.rows["fleet-a"], { RESULT: "converged" });
    t.like(r.rows["fleet-b"], { DRIFTED: "cuda-files", RESULT: "drifted" });
    // What the table knows of the unreachable box comes from its stack's last up, marked as such.
    t.like(r.rows["fleet-c"], { REACHABLE: "no", CARD: "RTX 4090 24 GiB*", PLAN: "32k ctx, 32 seqs*", VLLM: "-", MODEL: `${hub.commitSha.slice(0, 12)}*`, DRIFTED: "-", RESULT: "unreachable" });
    t.regex(r.stdout, /^\* as of the stack's last up: the workstation was not reached$/m);
    t.regex(r.lines.map((l) => l.text).join("\n"), /\[fleet-c\] cannot reach the workstation dev@127\.0\.0\.1:\d+ over SSH/);
    t.log(r.lines.filter((l) => /\] (preview started|done in|cannot reach)/.test(l.text)).map((l) => `${(l.at / 1000).toFixed(1)} s ${l.text}`).join("\n"));
    const started = when(r, "fleet-c", /^preview started$/);
    const refused = when(r, "fleet-c", /^cannot reach the workstation/);
    t.true(refused - started < 10_000, `the unreachable box was given up within ssh's ConnectTimeout (10 s): ${refused - started} ms`);
    const doneC = when(r, "fleet-c", /^done in /);
    for (const n of ["fleet-a", "fleet-b"] as const) t.true(doneC < when(r, n, /^done in /), `fleet-c's row was done before ${n}'s`);
});

test.serial("fleet up repairs the drifted workstation, names what it changed, leaves the converged one alone, and a preview after it exits 0", async (t) => {
    t.timeout(10 * 60 * 1000);
    const r = await fleet(t, ["up", "fleet-a", "fleet-b"]);
    t.is(r.code, 0);
    t.like(r.rows["fleet-a"], { VLLM: "0.24.0", CHANGED: "-", RESULT: "converged" });
    t.like(r.rows["fleet-b"], { VLLM: "0.24.0", CHANGED: "cuda-files", RESULT: "converged" });
    t.false((await boxes["fleet-b"].sh("cat /etc/profile.d/vllm-workstation-cuda.sh")).includes("/elsewhere"));
    const again = await fleet(t, ["preview", "fleet-a", "fleet-b"]);
    t.is(again.code, 0);
    t.like(again.rows["fleet-b"], { DRIFTED: "-", RESULT: "converged" });
});
