// An upgrade cut off in the middle of the switch, on the throwaway box through the real engine over SSH:
// `pulumi up` and the step's script on the box are killed (SIGKILL) once the switch has left its mark,
// before the health check decides. The next `up` finishes the switch to a set that starts, or rolls back
// from one that does not, and the one after is a no-op. And the set a switch saves goes back to the
// install that serves (the serves file), also when the packages step moved the venv link before it.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels (0.11.1+broken exits at
// `vllm serve`), the Hub.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { lookingAhead } from "../../components/program";
import type { Box } from "../helpers/box";
import type { TestStack } from "../helpers/stack";
import type { PackageIndex } from "../infra/servers/index";
import { startUpgradeRig, UpgradeRig, venv } from "../helpers/upgradeRig";

let rig: UpgradeRig;
let box: Box;
let index: PackageIndex;
let ts: TestStack;

const pending = "/etc/vllm-workstation/switch.pending";

test.before(async () => {
    rig = await startUpgradeRig({ name: "upkill" });
    ({ box, index, ts } = rig);
});

test.after.always(() => rig?.stop());

const program = () => lookingAhead(ts.dir, "test");

/** The processes of this machine below `pid`, deepest first. */
function descendants(pid: number): number[] {
    const children = new Map<number, number[]>();
    for (const d of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const ppid = Number(/^\d+ \(.*\) \S (\d+)/s.exec(fs.readFileSync(`/proc/${d}/stat`, "utf8"))![1]);
            children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
        } catch {
            // gone meanwhile
        }
    }
    const walk = (p: number): number[] => (children.get(p) ?? []).flatMap((c) => [...walk(c), c]);
    return walk(pid);
}

/** The `pulumi up` this test's stack runs now: the CLI process working in the stack's directory. */
function pulumiUp(): number | null {
    for (const d of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const argv = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
            if (path.basename(argv[0]) === "pulumi" && argv.includes("up") && fs.readlinkSync(`/proc/${d}/cwd`) === ts.dir) return Number(d);
        } catch {
            // gone meanwhile, or not ours to read
        }
    }
    return null;
}

/**
 * Runs `up` and kills it in the middle of the service's switch: once the switch has written its mark
 * (and, with `afterRestart`, once systemd has started the service again on the new files), the step's
 * script on the box is stopped where it is, then `pulumi up` with every process below it (the provider,
 * its ssh) and that script are killed, as a lost machine or a killed terminal would leave them.
 */
async function killedMidSwitch(t: { log: (...a: unknown[]) => void }, afterRestart: boolean): Promise<void> {
    const invocation = (await box.sh("systemctl show -p InvocationID --value vllm-workstation")).trim();
    // The step's script is the root `bash -s` (and its subshells) that sudo runs for the provider's ssh.
    const watcher = box.sh(
        `until [ -e ${pending} ]; do sleep 0.02; done
${afterRestart ? `until [ "$(systemctl show -p InvocationID --value vllm-workstation)" != '${invocation}' ]; do sleep 0.02; done` : ""}
pids=$(for p in /proc/[0-9]*; do [ "$(tr '\\0' ' ' <"$p/cmdline" 2>/dev/null)" = "bash -s " ] && echo "\${p#/proc/}"; done)
kill -STOP $pids
echo $pids`,
        { timeoutMs: 5 * 60_000 },
    );
    const run = ts.stack.up({ onOutput: ts.onOutput, program: program() });
    const outcome = run.then(
        () => "finished",
        (e: Error) => e.message,
    );
    const stopped = (await watcher).trim();
    t.log(`stopped the step's script on the box: ${stopped}`);
    const cli = pulumiUp();
    if (cli === null) throw new Error("no pulumi up process found for the stack");
    for (const p of [...descendants(cli), cli]) {
        try {
            process.kill(p, "SIGKILL");
        } catch {
            // exited meanwhile
        }
    }
    await box.sh(`kill -KILL ${stopped}`);
    t.log(`up after the kill: ${(await outcome).slice(0, 300)}`);
}

/** A killed `up` leaves the stack locked: `pulumi cancel` takes the lock away. */
async function cancelIfLocked(t: { true: (v: boolean, m?: string) => void; log: (...a: unknown[]) => void }) {
    const locks = path.join(ts.dir, "state", ".pulumi", "locks");
    const held = () => fs.existsSync(locks) && fs.readdirSync(locks, { recursive: true }).some((f) => String(f).endsWith(".json"));
    if (held()) {
        t.log("the killed up left the stack locked: pulumi cancel");
        await ts.stack.cancel();
    }
    t.true(!held(), "no lock is left");
}

test.serial("a first up serves 0.11.0", async (t) => {
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.0");
});

test.serial("an up killed right after its switch left its mark is finished by the next up, and the one after is a no-op", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.2" }, true);
    await killedMidSwitch(t, false);
    t.is((await box.exec(`test -e ${pending}`)).code, 0, "the mark is left");
    await cancelIfLocked(t);
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.2");
    t.is(await rig.link(), rig.installOf("0.11.2"));
    t.is(await rig.servedFrom(), rig.installOf("0.11.2"));
    t.is((await box.exec(`test -e ${pending}`)).code, 1, "the mark is gone");
    t.is((await box.sh("cat /etc/vllm-workstation/previous/link")).trim(), rig.installOf("0.11.0"), "the set saved before the cut is the one kept");
    const again = await rig.up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
});

test.serial("an up killed while the health check decides on a vLLM that fails is rolled back by the next up; reverting the config converges and the up after is a no-op", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.1+broken" }, true);
    await killedMidSwitch(t, true);
    t.is((await box.exec(`test -e ${pending}`)).code, 0, "the mark is left");
    await cancelIfLocked(t);
    ts.output.length = 0;
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: program() }));
    t.regex(`${err?.message}\n${ts.output.join("")}`, new RegExp(`rolled back: vllm-workstation\\.service serves again on the previous packages \\(${rig.installOf("0.11.2")}\\)`));
    t.is(await rig.servedVersion(), "0.11.2");
    t.is(await rig.link(), rig.installOf("0.11.2"));
    t.is((await box.exec(`test -e ${pending}`)).code, 1, "the mark is gone");

    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.2" }, true);
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.2");
    const again = await rig.up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
});

test.serial("a switch goes back to the install that serves, as the serves file says, also when the packages step moved the venv link before it", async (t) => {
    // An install from before installs were marked complete, with a package added by hand (requests, which
    // the lock does not hold): the packages step takes it for an install that never completed and moves
    // the link to the new one by itself, before the service's step saves what serves.
    const served = rig.installOf("0.11.2");
    t.is((await box.exec(`grep -qi '^requests==' ${served}/requirements.lock`)).code, 1, "the lock does not hold requests");
    await box.sh(
        `rm -f ${served}/.vllm-workstation-complete && UV_CACHE_DIR=${venv}-tools/uv-cache UV_INDEX_URL=${index.url} ${venv}-tools/uv pip install --python ${served}/bin/python requests`,
    );
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.1+broken" }, true);
    ts.output.length = 0;
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: program() }));
    const said = `${err?.message}\n${ts.output.join("")}`;
    t.regex(said, new RegExp(`rolled back: vllm-workstation\\.service serves again on the previous packages \\(${served}\\)`));
    t.is((await box.sh("cat /etc/vllm-workstation/previous/link")).trim(), served, "the saved set names the install that served, not where the link had moved");
    t.is(await rig.servedVersion(), "0.11.2");
    t.is(await rig.link(), served, "the link is back at the install that served");
    t.is(await rig.servedFrom(), served);
});
