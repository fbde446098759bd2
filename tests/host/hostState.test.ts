// HostState through the real engine, on this machine (a local connection, files under a temp dir): its
// provider (tools/provider, built by the toolchain) and the move from the Node dynamic resource
// it was registered as before.
import test, { ExecutionContext } from "ava";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { DYNAMIC_TYPE, HOSTSTATE_TYPE, HostState } from "../../components/host/hostState";
import type { HostStateInputs } from "../../components/host/provider";
import { q } from "../../components/host/shell";
import { testStack, TestStack } from "../helpers/stack";
import { tempDir } from "../helpers/tempDir";

async function stackFor(t: ExecutionContext, name: string, program: () => void): Promise<TestStack> {
    const ts = await testStack({ name, program: async () => (program(), {}) });
    t.teardown(() => ts.remove());
    return ts;
}

/** A piece that is a file holding `content`; its remove script leaves a mark of who ran it. */
function piece(dir: string, content: string, removedBy: string): HostStateInputs {
    const f = q(path.join(dir, "state"));
    return {
        connection: { kind: "local" },
        what: "the file piece",
        apply: `printf '%s\\n' ${q(content)} >${f}`,
        probe: `if [ -f ${f} ]; then echo "state=$(cat ${f})"; else echo state=missing; fi`,
        expected: `state=${content}`,
        remove: `rm -f ${f}; echo ${q(removedBy)} >>${q(path.join(dir, "removed"))}`,
    };
}

const probeNow = (dir: string) => (fs.existsSync(path.join(dir, "state")) ? `state=${fs.readFileSync(path.join(dir, "state"), "utf8").trim()}` : "state=missing");

test("a HostState is converged by its own provider, shows drift that the program saw in a preview, and is removed by destroy", async (t) => {
    const dir = tempDir(t, "hoststate");
    const ts = await stackFor(t, "hoststate-life", () => new HostState("piece", { ...piece(dir, "v1", "destroy"), observed: probeNow(dir) }));
    const up = await ts.stack.up({ onOutput: ts.onOutput });
    t.is(up.summary.resourceChanges?.create, 2, "the stack and the piece");
    t.is(fs.readFileSync(path.join(dir, "state"), "utf8"), "v1\n");
    const state = await ts.stack.exportStack();
    const res = (state.deployment.resources as Array<{ type: string; urn: string }>).find((r) => r.urn.endsWith("::piece"));
    t.is(res?.type, HOSTSTATE_TYPE);
    t.is((await ts.stack.preview()).changeSummary.update, undefined, "no change on a converged piece");
    fs.writeFileSync(path.join(dir, "state"), "edited\n");
    const drift = await ts.stack.preview({ onOutput: ts.onOutput });
    t.is(drift.changeSummary.update, 1, "the edit shows as drift");
    t.regex(drift.stdout, /HostState piece update \[diff: ~observed\]/, "the preview names the drift as what was observed");
    await ts.stack.up();
    t.is(fs.readFileSync(path.join(dir, "state"), "utf8"), "v1\n", "up converges it again");
    await ts.stack.destroy();
    t.false(fs.existsSync(path.join(dir, "state")));
    t.is(fs.readFileSync(path.join(dir, "removed"), "utf8"), "destroy\n");
});

test("a piece converged as the Node dynamic resource HostState was before moves to its provider with no replacement", async (t) => {
    const dir = tempDir(t, "hoststate");
    let mode: "old" | "new" = "old";
    const ts = await stackFor(t, "hoststate-move", () => {
        const inputs = { ...piece(dir, "v1", mode), observed: probeNow(dir) };
        if (mode === "new") return new HostState("piece", inputs);
        // What HostState registered before, with a provider that converges and removes the same way.
        const exec = (script: string) => require("child_process").execFileSync("bash", ["-c", script], { encoding: "utf8" }).trim();
        const old: pulumi.dynamic.ResourceProvider = {
            create: async (ins) => (exec(ins.apply), { id: ins.what, outs: { ...ins, observed: exec(ins.probe) } }),
            diff: async () => ({ changes: false }),
            delete: async (_id, props) => void exec(props.remove),
        };
        return new (class extends pulumi.dynamic.Resource {})(old, "piece", inputs);
    });
    await ts.stack.up();
    const before = await ts.stack.exportStack();
    t.is((before.deployment.resources as Array<{ type: string; urn: string }>).find((r) => r.urn.endsWith("::piece"))?.type, DYNAMIC_TYPE);
    mode = "new";
    const preview = await ts.stack.preview();
    t.is(preview.changeSummary.create, undefined, JSON.stringify(preview.changeSummary));
    t.is(preview.changeSummary.delete, undefined, JSON.stringify(preview.changeSummary));
    t.is(preview.changeSummary.replace, undefined, JSON.stringify(preview.changeSummary));
    await ts.stack.up();
    t.false(fs.existsSync(path.join(dir, "removed")), "nothing was removed");
    t.is(fs.readFileSync(path.join(dir, "state"), "utf8"), "v1\n");
    const after = await ts.stack.exportStack();
    t.is((after.deployment.resources as Array<{ type: string; urn: string }>).find((r) => r.urn.endsWith("::piece"))?.type, HOSTSTATE_TYPE);
    await ts.stack.destroy();
    t.is(fs.readFileSync(path.join(dir, "removed"), "utf8"), "new\n", "the new provider removes it");
});
