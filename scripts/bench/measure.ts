// Timing one operation of a stack through the Automation API, with the engine's events it produced.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { lookingAhead } from "../../components/program";
import type { TestStack } from "../../tests/helpers/stack";
import { MODEL_URN_SUFFIX } from "./options";
import { s1 } from "./table";

export const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function errText(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}

export interface Timed {
    /** Date.now() when the event reached this process (the engine's own timestamps are whole seconds). */
    readonly at: number;
    readonly e: EngineEvent;
}

export class Recorder {
    readonly events: Timed[] = [];
    readonly onEvent = (e: EngineEvent): void => {
        this.events.push({ at: Date.now(), e });
    };

    /** Start and end of each resource step, by URN (the last step of that URN). */
    steps(): Map<string, { op: string; start: number; end: number | null; failed: boolean }> {
        const out = new Map<string, { op: string; start: number; end: number | null; failed: boolean }>();
        for (const { at, e } of this.events) {
            const pre = e.resourcePreEvent;
            if (pre) out.set(pre.metadata.urn, { op: pre.metadata.op, start: at, end: null, failed: false });
            const done = e.resOutputsEvent ?? e.resOpFailedEvent;
            if (done) {
                const s = out.get(done.metadata.urn);
                if (s) {
                    s.end = at;
                    s.failed = !!e.resOpFailedEvent;
                }
            }
        }
        return out;
    }

    /** When the first diagnostic line matching `re` arrived. */
    line(re: RegExp): number | null {
        return this.events.find(({ e }) => e.diagnosticEvent && re.test(e.diagnosticEvent.message))?.at ?? null;
    }

    modelStep(op?: string): { start: number; end: number; op: string } | null {
        for (const [urn, s] of this.steps()) if (urn.endsWith(MODEL_URN_SUFFIX) && s.end !== null && !s.failed && (!op || s.op === op)) return { start: s.start, end: s.end, op: s.op };
        return null;
    }

    /** Every resource step relative to `t0` (ms), in start order: where the time of an operation goes. */
    timeline(t0: number): Array<{ resource: string; op: string; start: number; end: number | null }> {
        const out: Array<{ resource: string; op: string; start: number; end: number | null }> = [];
        const open = new Map<string, { resource: string; op: string; start: number; end: number | null }>();
        for (const { at, e } of this.events) {
            const pre = e.resourcePreEvent;
            if (pre) {
                const s = { resource: pre.metadata.urn.split("::").pop()!, op: pre.metadata.op, start: at - t0, end: null };
                out.push(s);
                open.set(pre.metadata.urn, s);
            }
            const done = e.resOutputsEvent ?? e.resOpFailedEvent;
            if (done) {
                const s = open.get(done.metadata.urn);
                if (s) s.end = at - t0;
            }
        }
        return out;
    }

    /** The slowest steps, for the JSON (where does the time of an operation go). */
    slowest(n = 8): Array<{ resource: string; op: string; ms: number }> {
        return [...this.steps()]
            .filter(([, s]) => s.end !== null)
            .map(([urn, s]) => ({ resource: urn.split("::").pop()!, op: s.op, ms: s.end! - s.start }))
            .sort((a, b) => b.ms - a.ms)
            .slice(0, n);
    }
}

export async function timed<T>(what: string, ts: TestStack, fn: (rec: Recorder) => Promise<T>): Promise<{ ms: number; result: T; rec: Recorder; t0: number }> {
    const rec = new Recorder();
    const t0 = Date.now();
    ts.output.length = 0;
    try {
        const result = await fn(rec);
        return { ms: Date.now() - t0, result, rec, t0 };
    } catch (e) {
        const tail = ts.output.join("").slice(-4000);
        throw new Error(`${what} failed: ${errText(e)}\n--- engine output (tail) ---\n${tail}`);
    }
}

/** The workstation stack runs as `npm run up` and `npm run preview` run it: its look at the box started before the CLI. */
export const workstationStacks = new Set<TestStack>();
/** `early: false`: the program makes its own look, as `pulumi up` with an official CLI runs it (index.ts). */
export const programFor = (ts: TestStack, early = true) => (workstationStacks.has(ts) && early ? { program: lookingAhead(ts.dir, "test") } : {});

export const up = (ts: TestStack, what: string, opts: { expectNoChanges?: boolean; early?: boolean } = {}) =>
    timed(what, ts, (rec) => ts.stack.up({ onOutput: ts.onOutput, onEvent: rec.onEvent, expectNoChanges: opts.expectNoChanges, ...programFor(ts, opts.early) }));

export async function preview(ts: TestStack, what: string, early = true) {
    const r = await timed(what, ts, (rec) => ts.stack.preview({ onOutput: ts.onOutput, onEvent: rec.onEvent, ...programFor(ts, early) }));
    const changes = Object.entries(r.result.changeSummary).filter(([k, v]) => k !== "same" && v);
    if (changes.length) throw new Error(`${what}: a preview of the converged box shows changes ${JSON.stringify(Object.fromEntries(changes))}`);
    return r;
}

export const destroy = (ts: TestStack, what: string) => timed(what, ts, (rec) => ts.stack.destroy({ onOutput: ts.onOutput, onEvent: rec.onEvent }));

/**
 * The floor again, right beside a workstation run: this machine's speed drifts over a bench's minutes
 * (a 2-core VM with neighbours: the floor's medians ranged 0.51 to 0.71 s between runs of one day), so
 * each target compares its runs with the empty stack's runs taken just before each of them.
 */
export interface Floor {
    up(): Promise<number>;
    preview(): Promise<number>;
}
export const floorOf = (ts: TestStack): Floor => ({
    up: async () => (await up(ts, "empty stack: up beside", { expectNoChanges: true })).ms,
    preview: async () => (await preview(ts, "empty stack: preview beside")).ms,
});

/**
 * Waits until the disk has written back what the converge (and curl) just wrote, up to gigabytes, so
 * that the no-op runs and previews measure the stack on a quiet disk, as a user's later runs see it,
 * and not the write-back of a download that just finished.
 */
export function settle(what: string): void {
    const t0 = Date.now();
    execFileSync("sync");
    log(`${what}: sync (write-back of the download) took ${s1(Date.now() - t0)} s`);
}

/** Rewrites the stack file as testStack writes it; the CLI reads it at every operation. */
export function writeConfig(ts: TestStack, config: Record<string, unknown>): void {
    const cfg = Object.entries(config)
        .map(([k, v]) => `  vllm-workstation:${k}: ${JSON.stringify(v)}`)
        .join("\n");
    fs.writeFileSync(path.join(ts.dir, "Pulumi.test.yaml"), `config:\n${cfg}\n`);
}
