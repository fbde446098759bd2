// npm run bench: rerunnable benchmarks of the stack on the throwaway box, through the real engine.
//
//     npm run bench                  # 3 runs, 8 MiB and 1 GB model fixtures
//     npm run bench -- --quick       # 1 run, 8 MiB and 128 MB fixtures: a smoke test of the bench itself
//     npm run bench -- --runs 5      # more samples per median
//     npm run bench -- --large       # also a 10 GB fixture for the drift probe (10 GB on the host, 10 GB in the box)
//     npm run bench -- --keep-fixtures   # keep the generated model fixtures in $VLLM_WS_CACHE/hf-fixtures
//
// What it measures (medians of N samples; every number is wall time around the Automation API call, so
// it includes the CLI's start, the in-process program and the dynamic provider):
//
//   A. the engine's floor: `up` and `preview` of an empty stack (a program returning {}), same run, and
//      again just before each timed no-op up and preview of B and D, which the targets compare with; and,
//      for reference, of a stack of one no-op dynamic resource (what any dynamic provider costs);
//   B. the workstation stack, N times: a fresh converge (split into the model step, its download and
//      checksum parts, and the rest), N no-op `up`s, N plain `preview`s (the drift probe: every preview
//      reads every piece of the box, in the program's one round trip), `destroy`; after each converge,
//      `curl -o` of the same resolve URLs from the same endpoint, on the box, for the download
//      throughput ratio (curl's one connection against the step's model.connections: --connections);
//   C. kill -9 (by pid, on the box) of the process writing the weights' *.incomplete file once 40% of it
//      is on disk (allocated blocks: the ranges are written in place), so that `up` fails; then `up`
//      again: bytes of files the rerun fetched (the Hub double's request log) against the size of the
//      file that was in flight;
//   D. the drift probe against the model's size: the converged box switched to the 8 MiB fixture (and
//      to the 10 GB one with --large), N previews each; the 1 GB row comes from B.
//
// After each converge and model switch the bench waits for the disk to write back what was downloaded
// (`sync`, logged), so the timed no-op ups and previews see a quiet disk, as a user's later runs do.
// The Hub double limits each response body to 100 MB/s, as a fast link would. The model fixtures are
// generated at bench time (tests/servers/hf_fixture.py, cached under $VLLM_WS_CACHE/hf-fixtures) and the
// big ones are deleted afterwards unless --keep-fixtures. Prints a markdown table on stdout (progress on
// stderr) and writes it, with every sample, to $VLLM_WS_CACHE/bench/last.json.
//
// Test doubles (see the README): the box's GPU, nvidia-smi and nvcc, the vLLM and FlashInfer wheels,
// the Hub. The engine, the box, its systemd, sshd, uv, the `hf` client and the scripts are real.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { parseConfig } from "../../components/config";
import { observe } from "../../components/observe";
import { connectionFor, lookingAhead, workstationProgram } from "../../components/program";
import { workstationPieces } from "../../components/workstation";
import { Box, cacheDir, freePort, startBox } from "../helpers/box";
import { testStack, TestStack } from "../helpers/stack";
import { boxStackConfig, installGpuDoubles, partialBytes, wheelhouse } from "../helpers/workstation";
import { HfEndpoint, makeHfFixture, PackageIndex, RequestLogEntry, startHfEndpoint, startPackageIndex } from "../servers";
import { upgradeBench, UpgradeRow } from "./upgrade";

// --- options -----------------------------------------------------------------------------------------

const MiB = 1 << 20;
const REPO = "openai/gpt-oss-20b";
const WEIGHTS = "model-00000-of-00001.safetensors";
const VENV = "/opt/vllm-workstation/venv";
const HF_CACHE = "/var/lib/vllm-workstation/hf";
const RATE = 100e6;
const MODEL_URN_SUFFIX = "::workstation-model-files";
/** The size the tests use; its fixture is shared with them and never deleted. */
const SMALL = 8 * MiB;

interface Options {
    runs: number;
    quick: boolean;
    large: boolean;
    keepFixtures: boolean;
    /** Weights of the fixture the lifecycle, throughput and kill phases use. */
    big: number;
    /** model.connections of the workstation stack: 1 leaves every file to huggingface_hub alone. */
    connections: number;
}

const usage = `usage: npm run bench -- [--runs N] [--quick] [--large] [--keep-fixtures] [--connections N]
  --runs N          samples per median (default 3; each run is a fresh converge, N no-op ups, N previews, destroy)
  --quick           1 run, 128 MB fixture instead of 1 GB (a smoke test of the bench)
  --large           also measure the drift probe with a 10 GB model fixture (needs ~25 GB of free disk)
  --keep-fixtures   keep generated model fixtures in $VLLM_WS_CACHE/hf-fixtures for the next run
  --connections N   the stack's model.connections (default: the config's default; 1: huggingface_hub alone)`;

function parseArgs(argv: string[]): Options {
    let runs: number | undefined;
    let quick = false;
    let large = false;
    let keepFixtures = false;
    // The config's own default, so the bench measures what a stack gets without the option.
    let connections = parseConfig({ model: { revision: "0".repeat(40) } }).model.connections;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--runs") {
            runs = Number(argv[++i]);
            if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs wants a positive integer, got ${argv[i]}\n${usage}`);
        } else if (a.startsWith("--runs=")) {
            runs = Number(a.slice("--runs=".length));
            if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs wants a positive integer, got ${a}\n${usage}`);
        } else if (a === "--quick") quick = true;
        else if (a === "--large") large = true;
        else if (a === "--keep-fixtures") keepFixtures = true;
        else if (a === "--connections") {
            connections = Number(argv[++i]);
            if (!Number.isInteger(connections) || connections < 1 || connections > 16) throw new Error(`--connections wants an integer from 1 to 16, got ${argv[i]}\n${usage}`);
        }
        else if (a === "--help" || a === "-h") {
            console.log(usage);
            process.exit(0);
        } else throw new Error(`unknown argument ${a}\n${usage}`);
    }
    return { runs: runs ?? (quick ? 1 : 3), quick, large, keepFixtures, big: quick ? 128e6 : 1e9, connections };
}

// --- small helpers -----------------------------------------------------------------------------------

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number | null {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const secs = (ms: number | null) => (ms === null ? "n/a" : `${(ms / 1000).toFixed(2)} s`);
const mbps = (v: number | null) => (v === null ? "n/a" : `${v.toFixed(1)} MB/s`);
function size(bytes: number): string {
    if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(bytes % 1e9 === 0 ? 0 : 2)} GB`;
    if (bytes >= 1e6 && bytes % MiB !== 0) return `${(bytes / 1e6).toFixed(0)} MB`;
    return `${(bytes / MiB).toFixed(0)} MiB`;
}
const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(", ");
const s1 = (ms: number) => (ms / 1000).toFixed(1);

function errText(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}

// --- engine events -----------------------------------------------------------------------------------

interface Timed {
    /** Date.now() when the event reached this process (the engine's own timestamps are whole seconds). */
    readonly at: number;
    readonly e: EngineEvent;
}

class Recorder {
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

async function timed<T>(what: string, ts: TestStack, fn: (rec: Recorder) => Promise<T>): Promise<{ ms: number; result: T; rec: Recorder; t0: number }> {
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
const workstationStacks = new Set<TestStack>();
const programFor = (ts: TestStack) => (workstationStacks.has(ts) ? { program: lookingAhead(ts.dir, "test") } : {});

const up = (ts: TestStack, what: string, opts: { expectNoChanges?: boolean } = {}) =>
    timed(what, ts, (rec) => ts.stack.up({ onOutput: ts.onOutput, onEvent: rec.onEvent, ...opts, ...programFor(ts) }));

async function preview(ts: TestStack, what: string) {
    const r = await timed(what, ts, (rec) => ts.stack.preview({ onOutput: ts.onOutput, onEvent: rec.onEvent, ...programFor(ts) }));
    const changes = Object.entries(r.result.changeSummary).filter(([k, v]) => k !== "same" && v);
    if (changes.length) throw new Error(`${what}: a preview of the converged box shows changes ${JSON.stringify(Object.fromEntries(changes))}`);
    return r;
}

const destroy = (ts: TestStack, what: string) => timed(what, ts, (rec) => ts.stack.destroy({ onOutput: ts.onOutput, onEvent: rec.onEvent }));

// --- the stack's config on the box -------------------------------------------------------------------

/** Rewrites the stack file as testStack writes it; the CLI reads it at every operation. */
function writeConfig(ts: TestStack, config: Record<string, unknown>): void {
    const cfg = Object.entries(config)
        .map(([k, v]) => `  vllm-workstation:${k}: ${JSON.stringify(v)}`)
        .join("\n");
    fs.writeFileSync(path.join(ts.dir, "Pulumi.test.yaml"), `config:\n${cfg}\n`);
}

/** GETs of the repository's files (not the API, not tiktoken), each with its file name. */
function fileGets(entries: RequestLogEntry[], hub: HfEndpoint): Array<RequestLogEntry & { file: string }> {
    const prefix = `/${REPO}/resolve/`;
    return entries
        .filter((e) => e.method === "GET" && e.path.startsWith(prefix))
        .map((e) => ({ ...e, file: e.path.slice(prefix.length).split("/").slice(1).join("/") }))
        .filter((e) => e.file in hub.repo.files);
}

// --- results -----------------------------------------------------------------------------------------

interface Results {
    floor: { up: number[]; preview: number[]; firstUp?: number; dynamicUp: number[]; dynamicPreview: number[] };
    lifecycle: {
        converge: number[];
        modelStep: number[];
        hfDownload: number[];
        verify: number[];
        rest: number[];
        noopUp: number[];
        /** The empty stack's `up`, each run just before one of those no-op ups. */
        noopFloor: number[];
        preview: number[];
        /** The empty stack's `preview`, each run just before one of those previews. */
        previewFloor: number[];
        /** The program's look at every piece (observe.ts, one SSH round trip), timed beside those previews. */
        previewLook: number[];
        destroy: number[];
        /** The model step's download (names kept from when it was `hf download`): from its "downloading" line to its "verifying checksums" line. */
        hfMBps: number[];
        /** From the first weights GET's start to the "verifying checksums" line: the transfer without the start. */
        hfTransferMBps: number[];
        /** From the "downloading" line to the first weights GET: Python's and huggingface_hub's start, metadata, HEAD. */
        hfStartMs: number[];
        /** From the "downloading" line to the download's first request: Python's and huggingface_hub's start. */
        hfFirstRequestMs: number[];
        curlMBps: number[];
        downloadBytes: number[];
        curlBytes: number[];
        slowest: unknown[];
    };
    kill?: {
        inFlightFile: string;
        inFlightFileBytes: number;
        sentBeforeKill: number;
        onDiskAtKill: number;
        rerunFileBytes: number;
        rerunWeightsGets: Array<{ range: string | null; status: number | null; bytes: number }>;
        rerunApiBytes: number;
        rerunMs: number;
        leftoverIncomplete: string[];
    };
    previewBySize: Array<{ weightsBytes: number; preview: number[]; floor: number[]; look: number[]; switchUpMs?: number }>;
    setup: Record<string, number>;
    /** Resource steps of some operations, ms from the operation's start. */
    timelines: Array<{ what: string; ms: number; steps: ReturnType<Recorder["timeline"]> }>;
    errors: Array<{ phase: string; error: string }>;
    env: Record<string, string>;
}

// --- phases ------------------------------------------------------------------------------------------

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

async function phaseFloor(o: Options, r: Results, ts: TestStack): Promise<void> {
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

/**
 * The floor again, right beside a workstation run: this machine's speed drifts over a bench's minutes
 * (a 2-core VM with neighbours: the floor's medians ranged 0.51 to 0.71 s between runs of one day), so
 * each target compares its runs with the empty stack's runs taken just before each of them.
 */
interface Floor {
    up(): Promise<number>;
    preview(): Promise<number>;
}
const floorOf = (ts: TestStack): Floor => ({
    up: async () => (await up(ts, "empty stack: up beside", { expectNoChanges: true })).ms,
    preview: async () => (await preview(ts, "empty stack: preview beside")).ms,
});

async function curlOnBox(box: Box, hub: HfEndpoint, files: string[]): Promise<{ bytes: number; ms: number }> {
    const urls = files.map((f, i) => `-o ${i} '${hub.url}/${REPO}/resolve/${hub.commitSha}/${f}'`).join(" ");
    // Timed inside the box, so nsenter's start is not counted; written to the box's disk like hf's blobs.
    const out = await box.sh(
        `set -e; d=$(mktemp -d /var/tmp/bench-curl.XXXXXX); trap 'rm -rf "$d"' EXIT; cd "$d"; ` +
            `s=$(date +%s%N); curl -fsS -w '%{size_download}\\n' ${urls} >sizes; e=$(date +%s%N); echo "$s $e"; cat sizes`,
    );
    const [times, ...sizes] = out.trim().split("\n");
    const [s, e] = times.split(" ").map(Number);
    return { bytes: sizes.reduce((n, x) => n + Number(x), 0), ms: (e - s) / 1e6 };
}

/** How long the program's look at every piece of the box takes for this config (what a preview probes). */
async function lookMs(raw: Record<string, unknown>): Promise<number> {
    const config = parseConfig(raw);
    const pieces = workstationPieces(config, null);
    const t0 = Date.now();
    await observe(connectionFor(config.target), pieces);
    return Date.now() - t0;
}

async function phaseLifecycle(o: Options, r: Results, ts: TestStack, box: Box, hub: HfEndpoint, look: () => Promise<number>, floor: Floor): Promise<void> {
    const L = r.lifecycle;
    for (let run = 1; run <= o.runs; run++) {
        await hub.clearRequestLog();
        const conv = await up(ts, `run ${run}: converge`);
        const model = conv.rec.modelStep();
        const dl = conv.rec.line(/\] downloading /);
        const ver = conv.rec.line(/\] verifying checksums/);
        if (!model || dl === null || ver === null) throw new Error(`run ${run}: the model step or its progress lines are missing from the engine's events`);
        L.converge.push(conv.ms);
        L.modelStep.push(model.end - model.start);
        L.hfDownload.push(ver - dl);
        L.verify.push(model.end - ver);
        L.rest.push(conv.ms - (model.end - model.start));
        L.slowest.push({ run, converge: conv.rec.slowest() });
        r.timelines.push({ what: `run ${run}: converge`, ms: conv.ms, steps: conv.rec.timeline(conv.t0) });

        const gets = fileGets(await hub.requestLog(), hub);
        const bytes = gets.reduce((n, g) => n + g.bytes, 0);
        // The weights come as model.connections ranged GETs: from the first one's start, all their bytes.
        const weights = gets.filter((g) => g.file === WEIGHTS);
        L.downloadBytes.push(bytes);
        L.hfMBps.push(bytes / 1e6 / ((ver - dl) / 1000));
        if (weights.length > 0) {
            const first = Math.min(...weights.map((g) => g.t)) * 1000;
            L.hfTransferMBps.push(weights.reduce((n, g) => n + g.bytes, 0) / 1e6 / ((ver - first) / 1000));
            L.hfStartMs.push(first - dl);
        }
        const firstHf = (await hub.requestLog()).find((e) => !e.path.startsWith("/tiktoken/") && e.t * 1000 >= dl - 100);
        if (firstHf) L.hfFirstRequestMs.push(firstHf.t * 1000 - dl);
        const files = [...new Set(gets.map((g) => g.file))].sort();
        const curl = await curlOnBox(box, hub, files);
        L.curlBytes.push(curl.bytes);
        L.curlMBps.push(curl.bytes / 1e6 / (curl.ms / 1000));
        log(
            `run ${run}: converge ${s1(conv.ms)} s (model step ${s1(model.end - model.start)} s: download ${s1(ver - dl)} s, verify ${s1(model.end - ver)} s); ` +
                `download ${L.hfMBps.at(-1)!.toFixed(1)} MB/s vs curl ${L.curlMBps.at(-1)!.toFixed(1)} MB/s over ${files.length} files, ${size(bytes)}`,
        );

        settle(`run ${run}`);
        for (let i = 0; i < o.runs; i++) {
            L.noopFloor.push(await floor.up());
            const u = await up(ts, `run ${run}: no-op up`, { expectNoChanges: true });
            L.noopUp.push(u.ms);
            if (i === 0) r.timelines.push({ what: `run ${run}: no-op up`, ms: u.ms, steps: u.rec.timeline(u.t0) });
        }
        for (let i = 0; i < o.runs; i++) {
            L.previewFloor.push(await floor.preview());
            const p = await preview(ts, `run ${run}: preview`);
            L.preview.push(p.ms);
            L.previewLook.push(await look());
            if (i === 0) r.timelines.push({ what: `run ${run}: preview`, ms: p.ms, steps: p.rec.timeline(p.t0) });
        }
        log(`run ${run}: no-op up ${list(L.noopUp.slice(-o.runs), s1)} s; preview ${list(L.preview.slice(-o.runs), s1)} s`);
        L.destroy.push((await destroy(ts, `run ${run}: destroy`)).ms);
        log(`run ${run}: destroy ${s1(L.destroy.at(-1)!)} s`);
    }
}

/** Pids on the box with the in-flight download open, and the file (a *.incomplete under blobs/). */
const killScript = `set -e
blobs=${HF_CACHE}/models--openai--gpt-oss-20b/blobs
for p in /proc/[0-9]*; do
  for fd in "$p"/fd/*; do
    case "$(readlink "$fd" 2>/dev/null)" in "$blobs"/*.incomplete) echo "\${p#/proc/}"; break;; esac
  done
done | sort -u | while read -r pid; do
  echo "pid $pid $(tr '\\0' ' ' < /proc/$pid/cmdline | cut -c1-200)"
  kill -9 "$pid"
done
for f in "$blobs"/*.incomplete; do [ -e "$f" ] && echo "file $(basename "$f") $(( $(stat -c %b "$f") * 512 ))"; done; true`;

async function phaseKill(r: Results, ts: TestStack, box: Box, hub: HfEndpoint): Promise<void> {
    const blobs = path.join(box.root, HF_CACHE, "models--openai--gpt-oss-20b", "blobs");
    const total = hub.repo.files[WEIGHTS].size;
    const partial = () => partialBytes(blobs);
    let failed: unknown = null;
    let settled = false;
    const first = ts.stack.up({ onOutput: ts.onOutput }).then(
        () => (settled = true),
        (e) => {
            settled = true;
            failed = e;
        },
    );
    // Kill once 40% of the weights are on disk: well inside the transfer, whatever the chunking.
    const deadline = Date.now() + 15 * 60_000;
    while (partial() < 0.4 * total) {
        if (settled) throw new Error(`the converge ended before the weights were 40% down (${partial()} bytes): ${failed ? errText(failed) : "it succeeded"}`);
        if (Date.now() > deadline) throw new Error("the weights' download did not start within 15 minutes");
        await sleep(25);
    }
    const killed = await box.sh(killScript);
    log(`killed mid-download:\n${killed.trim().replace(/^/gm, "    ")}`);
    const pids = killed.split("\n").filter((l) => l.startsWith("pid "));
    if (pids.length === 0) throw new Error(`nothing had the in-flight file open on the box:\n${killed}`);
    const onDisk = /^file \S+ (\d+)$/m.exec(killed);
    await first;
    if (!failed) throw new Error("the converge succeeded although its download was killed");
    // The endpoint logs a response when it ends; the cut one ends when it notices the closed socket.
    let cut: RequestLogEntry | undefined;
    for (let i = 0; i < 200 && !cut; i++) {
        cut = fileGets(await hub.requestLog(), hub).find((g) => g.file === WEIGHTS && !g.complete);
        if (!cut) await sleep(50);
    }
    if (!cut || !onDisk) throw new Error(`the kill came too late: the weights' GET was not cut off (${JSON.stringify(cut ?? null)}), on the box:\n${killed}`);
    // One cut GET per range in flight (model.connections of them): the others end as soon.
    await sleep(500);
    const cuts = fileGets(await hub.requestLog(), hub).filter((g) => g.file === WEIGHTS && !g.complete);
    const rerunStart = Date.now() / 1000;
    const rerun = await up(ts, "rerun after the kill");
    const after = (await hub.requestLog()).filter((e) => e.t >= rerunStart);
    const files = fileGets(after, hub);
    const leftover = fs.existsSync(blobs) ? fs.readdirSync(blobs).filter((f) => f.endsWith(".incomplete")) : [];
    r.kill = {
        inFlightFile: WEIGHTS,
        inFlightFileBytes: total,
        sentBeforeKill: cuts.reduce((n, g) => n + g.bytes, 0),
        onDiskAtKill: Number(onDisk[1]),
        rerunFileBytes: files.reduce((n, g) => n + g.bytes, 0),
        rerunWeightsGets: files.filter((g) => g.file === WEIGHTS).map((g) => ({ range: g.range, status: g.status, bytes: g.bytes })),
        rerunApiBytes: after.filter((e) => e.method === "GET" && e.path.startsWith("/api/")).reduce((n, e) => n + e.bytes, 0),
        rerunMs: rerun.ms,
        leftoverIncomplete: leftover,
    };
    log(`rerun after kill: ${s1(rerun.ms)} s, fetched ${r.kill.rerunFileBytes} bytes of files (in-flight file ${total} bytes), GETs of the weights ${JSON.stringify(r.kill.rerunWeightsGets)}`);
}

/**
 * Waits until the disk has written back what the converge (and curl) just wrote, up to gigabytes, so
 * that the no-op runs and previews measure the stack on a quiet disk, as a user's later runs see it,
 * and not the write-back of a download that just finished.
 */
function settle(what: string): void {
    const t0 = Date.now();
    execFileSync("sync");
    log(`${what}: sync (write-back of the download) took ${s1(Date.now() - t0)} s`);
}

async function phaseSizes(o: Options, r: Results, ts: TestStack, sizes: Array<{ bytes: number; hub: () => Promise<HfEndpoint> }>, config: (hub: HfEndpoint) => Record<string, unknown>, floor: Floor): Promise<void> {
    for (const s of sizes) {
        const hub = await s.hub();
        writeConfig(ts, config(hub));
        const sw = await up(ts, `switch to the ${size(s.bytes)} model`);
        settle(`the ${size(s.bytes)} model`);
        const row = { weightsBytes: s.bytes, preview: [] as number[], floor: [] as number[], look: [] as number[], switchUpMs: sw.ms };
        r.previewBySize.push(row);
        for (let i = 0; i < o.runs; i++) {
            row.floor.push(await floor.preview());
            const p = await preview(ts, `preview with the ${size(s.bytes)} model`);
            row.preview.push(p.ms);
            row.look.push(await lookMs(config(hub)));
        }
        log(`${size(s.bytes)} model: switch up ${s1(sw.ms)} s, preview ${list(row.preview, s1)} s`);
    }
}

// --- the table ---------------------------------------------------------------------------------------

let upgradeRows: UpgradeRow[] = [];

interface Row {
    what: string;
    value: string;
    samples: string;
    target: string;
    result: "PASS" | "FAIL" | "";
}

function table(o: Options, r: Results): { markdown: string; rows: Row[]; targets: Array<{ target: string; pass: boolean | null }> } {
    const rows: Row[] = [];
    const targets: Array<{ target: string; pass: boolean | null }> = [];
    const add = (what: string, value: string, samples: string, target = "", pass: boolean | null | undefined = undefined) => {
        rows.push({ what, value, samples, target, result: pass === undefined || pass === null ? "" : pass ? "PASS" : "FAIL" });
        if (target) targets.push({ target: `${what}: ${target}`, pass: pass ?? null });
    };
    const ms = (xs: number[]) => list(xs, s1);
    const F = r.floor;
    const floorUp = median(F.up);
    const floorPv = median(F.preview);
    add("empty stack `up` (engine floor)", secs(floorUp), ms(F.up));
    add("empty stack `preview` (engine floor)", secs(floorPv), ms(F.preview));
    add("one no-op dynamic resource `up` (floor of any dynamic provider)", secs(median(F.dynamicUp)), ms(F.dynamicUp));
    add("one no-op dynamic resource `preview`", secs(median(F.dynamicPreview)), ms(F.dynamicPreview));
    const L = r.lifecycle;
    const big = size(o.big);
    add(`workstation: first converge (${big} model), total`, secs(median(L.converge)), ms(L.converge));
    add("- model step (its create)", secs(median(L.modelStep)), ms(L.modelStep));
    add("  - download", secs(median(L.hfDownload)), ms(L.hfDownload));
    add("  - checksums and manifest", secs(median(L.verify)), ms(L.verify));
    add("- everything else (venv, CUDA env, service, health check)", secs(median(L.rest)), ms(L.rest));
    const noop = median(L.noopUp);
    const noopFloor = median(L.noopFloor) ?? floorUp;
    add("workstation: no-op `up`", secs(noop) + (noop !== null && noopFloor ? ` (${(noop / noopFloor).toFixed(2)}x floor)` : ""), ms(L.noopUp), "<= 2x empty `up`", noop === null || !noopFloor ? null : noop <= 2 * noopFloor);
    add("- empty stack `up` just before each (the floor it is compared with)", secs(median(L.noopFloor)), ms(L.noopFloor));
    const bySize = [
        ...r.previewBySize.filter((p) => p.weightsBytes < o.big),
        { weightsBytes: o.big, preview: L.preview, floor: L.previewFloor, look: L.previewLook },
        ...r.previewBySize.filter((p) => p.weightsBytes > o.big),
    ];
    for (const p of bySize) {
        const m = median(p.preview);
        const f = median(p.floor) ?? floorPv;
        add(
            `workstation: plain \`preview\` (drift probe), ${size(p.weightsBytes)} model`,
            secs(m) + (m !== null && f ? ` (${(m / f).toFixed(2)}x floor)` : ""),
            ms(p.preview),
            "<= 2x empty `preview`",
            m === null || !f ? null : m <= 2 * f,
        );
        add("- empty stack `preview` just before each (the floor it is compared with)", secs(median(p.floor)), ms(p.floor));
        add("- the look at every piece alone (the probes, one SSH round trip)", secs(median(p.look)), ms(p.look));
    }
    add("workstation: `destroy`", secs(median(L.destroy)), ms(L.destroy));
    const hf = median(L.hfMBps);
    const curl = median(L.curlMBps);
    const dlBytes = median(L.downloadBytes);
    add(`download, the model step (${dlBytes === null ? "n/a" : size(dlBytes)}, endpoint capped at 100 MB/s per connection, model.connections ${o.connections})`, mbps(hf), list(L.hfMBps, (x) => x.toFixed(1)));
    add("- of which the transfer alone (first weights GET to the download's end)", mbps(median(L.hfTransferMBps)), list(L.hfTransferMBps, (x) => x.toFixed(1)));
    add("- from the step's \"downloading\" line to the first weights GET", secs(median(L.hfStartMs)), ms(L.hfStartMs));
    add("  - of which until the first request (Python's and huggingface_hub's start)", secs(median(L.hfFirstRequestMs)), ms(L.hfFirstRequestMs));
    add("download, `curl -o` of the same URLs on the box", mbps(curl), list(L.curlMBps, (x) => x.toFixed(1)));
    const ratios = L.hfMBps.map((h, i) => h / L.curlMBps[i]).filter((x) => Number.isFinite(x));
    const ratio = median(ratios);
    add("download, model step / curl", ratio === null ? "n/a" : `${ratio.toFixed(2)}x`, list(ratios, (x) => x.toFixed(2)), ">= 0.9x", ratio === null ? null : ratio >= 0.9);
    const K = r.kill;
    if (K) {
        add(`kill -9 of the download mid-file: the in-flight file`, `${K.inFlightFile}, ${size(K.inFlightFileBytes)}`, `${(K.sentBeforeKill / 1e6).toFixed(0)} MB sent, ${(K.onDiskAtKill / 1e6).toFixed(0)} MB on disk at the kill`);
        const weightsGets = K.rerunWeightsGets.map((g) => `${g.status} ${g.range ?? "whole"} ${(g.bytes / 1e6).toFixed(0)} MB`).join("; ");
        add(
            "- bytes of files the rerun fetched",
            `${(K.rerunFileBytes / 1e6).toFixed(1)} MB (${(K.rerunFileBytes / K.inFlightFileBytes).toFixed(2)}x the in-flight file)`,
            `weights: ${weightsGets || "none"}; rerun ${s1(K.rerunMs)} s`,
            "<= 1.00x the in-flight file",
            K.rerunFileBytes <= K.inFlightFileBytes,
        );
    } else {
        add("kill -9 mid-download, rerun", "n/a (phase failed)", "", "<= 1.00x the in-flight file", null);
    }
    for (const u of upgradeRows) add(u.what, u.value, u.samples, u.target, u.pass);
    const esc = (s: string) => s.replace(/\|/g, "\\|");
    const markdown = [
        "| measurement | median | samples (s, MB/s or x) | target | result |",
        "|---|---|---|---|---|",
        ...rows.map((x) => `| ${esc(x.what)} | ${esc(x.value)} | ${esc(x.samples)} | ${esc(x.target)} | ${x.result} |`),
    ].join("\n");
    return { markdown, rows, targets };
}

// --- main --------------------------------------------------------------------------------------------

async function main(): Promise<number> {
    const o = parseArgs(process.argv.slice(2));
    const started = new Date();
    const r: Results = {
        floor: { up: [], preview: [], dynamicUp: [], dynamicPreview: [] },
        lifecycle: { converge: [], modelStep: [], hfDownload: [], verify: [], rest: [], noopUp: [], noopFloor: [], preview: [], previewFloor: [], previewLook: [], destroy: [], hfMBps: [], hfTransferMBps: [], hfStartMs: [], hfFirstRequestMs: [], curlMBps: [], downloadBytes: [], curlBytes: [], slowest: [] },
        previewBySize: [],
        setup: {},
        timelines: [],
        errors: [],
        env: { node: process.version, cpus: String(os.cpus().length), memGiB: (os.totalmem() / 2 ** 30).toFixed(0), loadavgAtStart: os.loadavg().map((x) => x.toFixed(2)).join(" ") },
    };
    log(`runs ${o.runs}, fixtures ${size(SMALL)} and ${size(o.big)}${o.large ? " and 10 GB" : ""}${o.keepFixtures ? ", kept afterwards" : ""}`);

    const made: string[] = []; // fixture roots to delete afterwards
    const hubs: HfEndpoint[] = [];
    const fixture = async (bytes: number) => {
        const t0 = Date.now();
        const f = await makeHfFixture([{ repoId: REPO, weightsBytes: bytes }]);
        r.setup[`fixture ${size(bytes)} ms`] = Date.now() - t0;
        if (bytes > 64 * MiB && !made.includes(f.root)) made.push(f.root);
        return f;
    };
    const hubFor = async (bytes: number, rate = RATE) => {
        await fixture(bytes);
        const hub = await startHfEndpoint({ repos: [{ repoId: REPO, weightsBytes: bytes }], rateLimitBytesPerSec: rate });
        hubs.push(hub);
        return hub;
    };

    let box: Box | undefined;
    let index: PackageIndex | undefined;
    let ts: TestStack | undefined;
    let floorTs: TestStack | undefined;
    const phase = async (name: string, fn: () => Promise<void>) => {
        const t0 = Date.now();
        log(`--- ${name}`);
        try {
            await fn();
        } catch (e) {
            log(`${name} FAILED: ${errText(e)}`);
            r.errors.push({ phase: name, error: errText(e) });
        }
        r.setup[`phase ${name} ms`] = Date.now() - t0;
    };
    try {
        let t0 = Date.now();
        [box, index] = await Promise.all([startBox({ name: "bench" }), startPackageIndex({ wheelhouse })]);
        await installGpuDoubles(box, "rtx4090");
        r.setup["box and package index ms"] = Date.now() - t0;
        t0 = Date.now();
        const bigHub = await hubFor(o.big);
        r.setup["big fixture and hub ms"] = Date.now() - t0;
        const port = await freePort();
        const b = box;
        const idx = index;
        const config = (hub: HfEndpoint) => {
            const c = boxStackConfig(b, idx, hub, port);
            return { ...c, model: { ...c.model, connections: o.connections } };
        };
        ts = await testStack({ name: "bench-ws", program: workstationProgram, config: config(bigHub) });
        const wsTs = ts;
        workstationStacks.add(ts);
        r.env.pulumi = wsTs.stack.workspace.pulumiVersion;

        const emptyTs = (floorTs = await testStack({ name: "bench-empty", program: async () => ({}) }));
        const floor = floorOf(emptyTs);
        await phase("floor", () => phaseFloor(o, r, emptyTs));
        await phase("lifecycle", () => phaseLifecycle(o, r, wsTs, b, bigHub, () => lookMs(config(bigHub)), floor));
        await phase("kill", async () => {
            // Its own endpoint on the same fixture: 100 MB/s, or slower where the weights would take less
            // than 10 s, so the kill lands mid-file (only the bytes are measured here, not the time).
            const killHub = o.big / RATE >= 10 ? bigHub : await hubFor(o.big, o.big / 10);
            writeConfig(wsTs, config(killHub));
            await killHub.clearRequestLog();
            await phaseKill(r, wsTs, b, killHub);
            r.env.huggingface_hub = (await b.sh(`${VENV}/bin/python -c 'import huggingface_hub as h; print(h.__version__)'`)).trim();
            r.env.curl = (await b.sh("curl --version | head -n1")).trim();
        });
        await phase("sizes", async () => {
            const sizes = [{ bytes: SMALL, hub: () => hubFor(SMALL) }];
            if (o.large) sizes.push({ bytes: 10e9, hub: () => hubFor(10e9) });
            await phaseSizes(o, r, wsTs, sizes, config, floor);
        });
        await phase("upgrade", async () => void (upgradeRows = await upgradeBench(o, log)));
        await phase("cleanup", async () => {
            await destroy(wsTs, "final destroy");
        });
    } catch (e) {
        r.errors.push({ phase: "setup", error: errText(e) });
        log(`setup FAILED: ${errText(e)}`);
        if (ts) await ts.stack.destroy({ onOutput: ts.onOutput }).catch(() => undefined);
    } finally {
        ts?.remove();
        floorTs?.remove();
        await Promise.all([box?.stop(), index?.stop(), ...hubs.map((h) => h.stop())].map((p) => p?.catch((e) => log(`stop: ${errText(e)}`))));
        if (!o.keepFixtures) for (const root of made) fs.rmSync(root, { recursive: true, force: true });
    }

    r.env.loadavgAtEnd = os.loadavg().map((x) => x.toFixed(2)).join(" ");
    const t = table(o, r);
    const header =
        `vllm-workstation bench, ${started.toISOString()}: ${o.runs} run(s)${o.quick ? " (--quick)" : ""}, ` +
        `${r.env.cpus} CPUs, load ${r.env.loadavgAtStart} at start, ${r.env.loadavgAtEnd} at end; pulumi ${r.env.pulumi ?? "?"}, node ${r.env.node}, ` +
        `huggingface_hub ${r.env.huggingface_hub ?? "?"} on the box`;
    console.log(`\n${header}\n\n${t.markdown}\n`);
    if (o.quick) console.log("--quick: a 128 MB model, so the download's fixed start (Python, huggingface_hub) weighs on the download ratio; only a default run's ratio counts.\n");
    if (r.errors.length) console.log(`errors:\n${r.errors.map((e) => `- ${e.phase}: ${e.error.split("\n")[0]}`).join("\n")}\n`);
    const out = path.join(cacheDir(), "bench", "last.json");
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(
        out,
        JSON.stringify({ started: started.toISOString(), finished: new Date().toISOString(), options: o, header, markdown: t.markdown, rows: t.rows, targets: t.targets, results: r }, null, 2) + "\n",
    );
    log(`wrote ${out}`);
    return r.errors.length ? 1 : 0;
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(errText(e));
        process.exit(2);
    },
);

