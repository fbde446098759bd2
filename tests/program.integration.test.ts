// The program refuses before anything on the workstation changes: bad config, and a machine the plan
// cannot run on. Checked on the box, through the real engine.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { guessLook, workstationProgram } from "../components/program";
import { projectRoot } from "../scripts/engine";
import { Box, startBox } from "./helpers/box";
import { sshTarget, testStack } from "./helpers/stack";
import { boxSnapshot, installGpuDoubles, programLookKey } from "./helpers/workstation";

let box: Box;

test.before(async () => {
    box = await startBox({ name: "refuse" });
    await installGpuDoubles(box, "rtx3060");
});

test.after.always(async () => {
    await box?.stop();
});

async function refusedUp(config: Record<string, unknown>): Promise<{ message: string; resources: number }> {
    const ts = await testStack({ name: "refuse", program: workstationProgram, config });
    try {
        await ts.stack.up({ onOutput: ts.onOutput });
        throw new Error("up was expected to fail");
    } catch (e) {
        const state = await ts.stack.exportStack();
        const resources = (state.deployment.resources ?? []).filter((r: { type: string }) => r.type !== "pulumi:pulumi:Stack").length;
        return { message: ts.output.join("") + String((e as Error).message), resources };
    } finally {
        ts.remove();
    }
}

test.serial("an invalid stack config fails before any resource is registered, naming every bad field and value", async (t) => {
    const before = await boxSnapshot(box);
    const { message, resources } = await refusedUp({
        target: sshTarget(box),
        model: { revision: "main" },
        server: { host: "0.0.0.0", port: 70000 },
        gpu: { tier: "8gb", gpuMemoryUtilization: 1.5 },
        python: { venvPath: "/" },
    });
    for (const expected of [
        `model.revision: "main" must be a full 40-character commit hash`,
        `server.port: 70000`,
        `gpu.tier: "8gb"`,
        `gpu.gpuMemoryUtilization: 1.5`,
        `python.venvPath: "/" is a shared root`,
    ]) {
        t.true(message.includes(expected), expected);
    }
    t.is(resources, 0);
    t.is(await boxSnapshot(box), before);
});

test.serial("a 12 GB card under WSL2 with a vLLM that cannot pin memory is refused with what to do, and nothing changes", async (t) => {
    const before = await boxSnapshot(box);
    const { message, resources } = await refusedUp({
        target: sshTarget(box),
        model: { revision: "0123456789abcdef0123456789abcdef01234567" },
        gpu: { tier: "auto" },
    });
    t.regex(message, /the workstation is not ready \(nothing was changed\)/);
    t.regex(message, /\[pinned-memory\]/);
    t.regex(message, /VLLM_WSL2_ENABLE_PIN_MEMORY/);
    t.is(resources, 0);
    t.is(await boxSnapshot(box), before);
});

test.serial("an unreachable workstation fails naming its user, host and port", async (t) => {
    const target = { ...sshTarget(box), port: 1 };
    const { message, resources } = await refusedUp({ target, model: { revision: "0123456789abcdef0123456789abcdef01234567" } });
    t.regex(message, /cannot reach the workstation dev@127\.0\.0\.1:1 over SSH/);
    t.regex(message, /sshd listens on port 1/);
    t.is(resources, 0);
});

// npm run up and preview start the look from the stack file before the engine hands the program its
// config (program.ts, lookingAhead); it is used only if it is the same look, so a guess that never
// matches would silently cost every run its half second. It must match for every stack file shipped.
test.serial("the look guessed from each shipped stack file, and from a stack file as the tests write it, is the program's own look", async (t) => {
    const ts = await testStack({ name: "guess", program: async () => ({ key: programLookKey() }), config: { target: sshTarget(box), model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" } } });
    t.teardown(() => ts.remove());
    const stackFile = path.join(ts.dir, "Pulumi.test.yaml");
    const files = fs.readdirSync(projectRoot).filter((f) => /^Pulumi\..+\.yaml$/.test(f));
    t.true(files.includes("Pulumi.workstation-12gb.yaml") && files.includes("Pulumi.workstation-24gb.yaml"), files.join(" "));
    for (const source of ["(as testStack writes it)", ...files]) {
        if (source !== "(as testStack writes it)") fs.copyFileSync(path.join(projectRoot, source), stackFile);
        const guess = guessLook(ts.dir, "test");
        if (guess === null) {
            // No guess only where the program refuses the config too (the dev stack is completed at run time by npm run demo).
            await t.throwsAsync(ts.stack.up(), { message: /invalid stack config/ }, source);
            continue;
        }
        const up = await ts.stack.up();
        t.is(up.outputs.key.value, guess.key, source);
    }
});
