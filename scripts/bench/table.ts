// The results of a bench run, and the markdown table made of them.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cacheDir } from "../../tests/helpers/box";
import { MiB, Options } from "./options";
import type { Recorder } from "./measure";
import type { UpgradeRow } from "./upgrade";

export function median(xs: number[]): number | null {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const secs = (ms: number | null) => (ms === null ? "n/a" : `${(ms / 1000).toFixed(2)} s`);
export const mbps = (v: number | null) => (v === null ? "n/a" : `${v.toFixed(1)} MB/s`);
export function size(bytes: number): string {
    if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(bytes % 1e9 === 0 ? 0 : 2)} GB`;
    if (bytes >= 1e6 && bytes % MiB !== 0) return `${(bytes / 1e6).toFixed(0)} MB`;
    return `${(bytes / MiB).toFixed(0)} MiB`;
}
export const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(", ");
export const s1 = (ms: number) => (ms / 1000).toFixed(1);

export interface Results {
    floor: { up: number[]; preview: number[]; firstUp?: number; dynamicUp: number[]; dynamicPreview: number[] };
    lifecycle: {
        converge: number[];
        modelStep: number[];
        hfDownload: number[];
        verify: number[];
        rest: number[];
        noopUp: number[];
        /** The same no-op up right after each, the program making its own look (no early look). */
        noopUpOwnLook: number[];
        /** The empty stack's `up`, each run just before one of those no-op ups. */
        noopFloor: number[];
        preview: number[];
        /** The same preview right after each, the program making its own look (no early look). */
        previewOwnLook: number[];
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
    /** The upgrade phase's rows (upgrade.ts): a switch against a restart, an install against uv pip sync. */
    upgrade: UpgradeRow[];
    env: Record<string, string>;
}

/** Results with nothing measured yet. */
export function newResults(): Results {
    return {
        floor: { up: [], preview: [], dynamicUp: [], dynamicPreview: [] },
        lifecycle: { converge: [], modelStep: [], hfDownload: [], verify: [], rest: [], noopUp: [], noopUpOwnLook: [], noopFloor: [], preview: [], previewOwnLook: [], previewFloor: [], previewLook: [], destroy: [], hfMBps: [], hfTransferMBps: [], hfStartMs: [], hfFirstRequestMs: [], curlMBps: [], downloadBytes: [], curlBytes: [], slowest: [] },
        previewBySize: [],
        setup: {},
        timelines: [],
        errors: [],
        upgrade: [],
        env: { node: process.version, cpus: String(os.cpus().length), memGiB: (os.totalmem() / 2 ** 30).toFixed(0), loadavgAtStart: os.loadavg().map((x) => x.toFixed(2)).join(" ") },
    };
}

export interface Row {
    what: string;
    value: string;
    samples: string;
    target: string;
    result: "PASS" | "FAIL" | "";
}

export function table(o: Options, r: Results): { markdown: string; rows: Row[]; targets: Array<{ target: string; pass: boolean | null }> } {
    const rows: Row[] = [];
    const targets: Array<{ target: string; pass: boolean | null }> = [];
    const add = (what: string, value: string, samples: string, target = "", pass: boolean | null | undefined = undefined) => {
        rows.push({ what, value, samples, target, result: pass === undefined || pass === null ? "" : pass ? "PASS" : "FAIL" });
        if (target) targets.push({ target: `${what}: ${target}`, pass: pass ?? null });
    };
    const ms = (xs: number[]) => list(xs, s1);
    if (o.only === "upgrade") {
        for (const u of r.upgrade) add(u.what, u.value, u.samples, u.target, u.pass);
        return { markdown: markdownOf(rows), rows, targets };
    }
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
    const own = median(L.noopUpOwnLook);
    add("- the same without the early look (the program's own look), right after each", secs(own) + (own !== null && noopFloor ? ` (${(own / noopFloor).toFixed(2)}x floor)` : ""), ms(L.noopUpOwnLook));
    const bySize = [
        ...r.previewBySize.filter((p) => p.weightsBytes < o.big),
        { weightsBytes: o.big, preview: L.preview, floor: L.previewFloor, look: L.previewLook, ownLook: L.previewOwnLook },
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
        if ("ownLook" in p) {
            const own = median(p.ownLook);
            add("- the same without the early look (the program's own look), right after each", secs(own) + (own !== null && f ? ` (${(own / f).toFixed(2)}x floor)` : ""), ms(p.ownLook));
        }
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
    for (const u of r.upgrade) add(u.what, u.value, u.samples, u.target, u.pass);
    return { markdown: markdownOf(rows), rows, targets };
}

function markdownOf(rows: Row[]): string {
    const esc = (s: string) => s.replace(/\|/g, "\\|");
    return [
        "| measurement | median | samples (s, MB/s or x) | target | result |",
        "|---|---|---|---|---|",
        ...rows.map((x) => `| ${esc(x.what)} | ${esc(x.value)} | ${esc(x.samples)} | ${esc(x.target)} | ${x.result} |`),
    ].join("\n");
}

/** Prints the table (stdout) and writes it with every sample to $VLLM_WS_CACHE/bench/last.json, whose path it returns. */
export function report(o: Options, r: Results, started: Date): string {
    r.env.loadavgAtEnd = os.loadavg().map((x) => x.toFixed(2)).join(" ");
    const t = table(o, r);
    const header =
        `vllm-workstation bench, ${started.toISOString()}: ${o.runs} run(s)${o.quick ? " (--quick)" : ""}, ` +
        `${r.env.cpus} CPUs, load ${r.env.loadavgAtStart} at start, ${r.env.loadavgAtEnd} at end; pulumi ${r.env.pulumi ?? "?"}, node ${r.env.node}, ` +
        `huggingface_hub ${r.env.huggingface_hub ?? "?"} on the box`;
    console.log(`\n${header}\n\n${t.markdown}\n`);
    if (o.quick && o.only === null) console.log("--quick: a 128 MB model, so the download's fixed start (Python, huggingface_hub) weighs on the download ratio; only a default run's ratio counts.\n");
    if (r.errors.length) console.log(`errors:\n${r.errors.map((e) => `- ${e.phase}: ${e.error.split("\n")[0]}`).join("\n")}\n`);
    // A run of one phase leaves the whole bench's last results in place.
    const out = path.join(cacheDir(), "bench", o.only === null ? "last.json" : `last-${o.only}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(
        out,
        JSON.stringify({ started: started.toISOString(), finished: new Date().toISOString(), options: o, header, markdown: t.markdown, rows: t.rows, targets: t.targets, results: r }, null, 2) + "\n",
    );
    return out;
}
