// A. The engine's floor: `up` and `preview` of an empty stack, and of a stack of one no-op dynamic resource.
import * as pulumi from "@pulumi/pulumi";
import { testStack, TestStack } from "../../tests/helpers/stack";
import { destroy, log, preview, up } from "./measure";
import type { Options } from "./options";
import { list, Results, s1 } from "./table";

// Does nothing, anywhere: what any stack with a dynamic resource pays (the provider's process) on top of
// the empty floor, without the workstation's own work (SSH, probes, preflight).
const noopProvider: pulumi.dynamic.ResourceProvider = {
    create: async () => ({ id: "noop", outs: {} }),
    read: async (id, props) => ({ id, props }),
    diff: async () => ({ changes: false }),
};
class Noop extends pulumi.dynamic.Resource {
    constructor(name: string) {
        super(noopProvider, name, {});
    }
}

export async function phaseFloor(o: Options, r: Results, ts: TestStack): Promise<void> {
    const dyn = await testStack({ name: "bench-dynamic", program: async () => (new Noop("noop"), {}) });
    try {
        await up(dyn, "one dynamic resource: first up");
        for (let i = 0; i < o.runs; i++) {
            r.floor.dynamicUp.push((await up(dyn, "one dynamic resource: up", { expectNoChanges: true })).ms);
            r.floor.dynamicPreview.push((await preview(dyn, "one dynamic resource: preview")).ms);
        }
        log(`one no-op dynamic resource: up ${list(r.floor.dynamicUp, s1)} s, preview ${list(r.floor.dynamicPreview, s1)} s`);
        await destroy(dyn, "one dynamic resource: destroy");
    } finally {
        dyn.remove();
    }
    {
        // The first up creates the stack's root resource; from then on up and preview are the floor.
        r.floor.firstUp = (await up(ts, "empty stack: first up")).ms;
        for (let i = 0; i < o.runs; i++) {
            const u = await up(ts, "empty stack: up", { expectNoChanges: true });
            const p = await preview(ts, "empty stack: preview");
            r.floor.up.push(u.ms);
            r.floor.preview.push(p.ms);
            if (i === 0) r.timelines.push({ what: "empty stack: up", ms: u.ms, steps: u.rec.timeline(u.t0) }, { what: "empty stack: preview", ms: p.ms, steps: p.rec.timeline(p.t0) });
            log(`floor ${i + 1}/${o.runs}: up ${s1(r.floor.up[i])} s, preview ${s1(r.floor.preview[i])} s`);
        }
    }
}
