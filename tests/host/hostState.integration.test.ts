// The real engine (the Pulumi CLI built from source, HostState's provider) against the real box.
import test from "ava";
import { execFileSync } from "child_process";
import { HostState } from "../../components/host/hostState";
import { observe } from "../../components/pieces/observe";
import { startBox, Box } from "../helpers/box";
import { sshTarget, testStack, TestStack } from "../helpers/stack";

let box: Box;
let ts: TestStack;

test.before(async () => {
    box = await startBox({ name: "engine" });
    ts = await testStack({
        name: "engine",
        project: "engine-proof",
        program: async () => {
            // As the workstation program does: look at the box first, hand the resource what it saw.
            const piece = { name: "proof", what: "the proof file", probe: "cat /etc/vllm-ws-proof/state 2>/dev/null || echo absent" };
            const seen = await observe(sshTarget(box), [piece]);
            const file = new HostState("proof", {
                connection: sshTarget(box),
                what: piece.what,
                apply: "install -d /etc/vllm-ws-proof && echo converged > /etc/vllm-ws-proof/state",
                probe: piece.probe,
                expected: "converged",
                remove: "rm -rf /etc/vllm-ws-proof",
                observed: seen.get(piece.name),
            });
            return { observed: file.observed };
        },
    });
});

test.after.always(async () => {
    ts?.remove();
    await box?.stop();
});

test.serial("the CLI is a real build that reports its pinned version", (t) => {
    t.is(execFileSync("pulumi", ["version"]).toString().trim(), "v3.250.0");
});

test.serial("pulumi up converges the box over ssh and reports the probe's view", async (t) => {
    const up = await ts.stack.up({ onOutput: ts.onOutput });
    t.is(up.summary.result, "succeeded");
    t.is(up.outputs.observed?.value, "converged", JSON.stringify(up.outputs) + ts.output.join(""));
    t.is((await box.sh("cat /etc/vllm-ws-proof/state")).trim(), "converged");
});

test.serial("a second preview expects no changes", async (t) => {
    const pv = await ts.stack.preview({ expectNoChanges: true, onOutput: ts.onOutput });
    t.deepEqual(Object.keys(pv.changeSummary).filter((k) => k !== "same"), []);
});

test.serial("a plain preview shows drift made on the box behind Pulumi's back", async (t) => {
    await box.sh("echo tampered > /etc/vllm-ws-proof/state");
    const pv = await ts.stack.preview({ onOutput: ts.onOutput });
    t.is(pv.changeSummary.update, 1);
});

test.serial("pulumi up repairs the drift", async (t) => {
    await ts.stack.up({ onOutput: ts.onOutput });
    t.is((await box.sh("cat /etc/vllm-ws-proof/state")).trim(), "converged");
});

test.serial("pulumi destroy removes what up made and nothing else", async (t) => {
    const before = (await box.sh("ls /etc | sort")).split("\n");
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    const after = (await box.sh("ls /etc | sort")).split("\n");
    t.deepEqual(before.filter((e) => !after.includes(e)), ["vllm-ws-proof"]);
    t.is((await box.exec("test -e /etc/vllm-ws-proof")).code, 1);
});
