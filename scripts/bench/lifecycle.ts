// B. The workstation's lifecycle: a fresh converge, no-op ups, plain previews (the drift probe) and a
// destroy, each run; curl of the same files on the box for the download's ratio.
import { parseConfig } from "../../components/config/schema";
import { observe } from "../../components/pieces/observe";
import { connectionFor } from "../../components/program";
import { workstationPieces } from "../../components/workstation";
import type { Box } from "../../tests/helpers/box";
import type { TestStack } from "../../tests/helpers/stack";
import type { HfEndpoint } from "../../tests/infra/servers/index";
import { fileGets } from "./fixtures";
import { destroy, Floor, log, preview, settle, up } from "./measure";
import { Options, REPO, WEIGHTS } from "./options";
import { list, Results, s1, size } from "./table";

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
export async function lookMs(raw: Record<string, unknown>): Promise<number> {
    const config = parseConfig(raw);
    const pieces = workstationPieces(config, null);
    const t0 = Date.now();
    await observe(connectionFor(config.target), pieces);
    return Date.now() - t0;
}

export async function phaseLifecycle(o: Options, r: Results, ts: TestStack, box: Box, hub: HfEndpoint, look: () => Promise<number>, floor: Floor): Promise<void> {
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
            L.noopUpOwnLook.push((await up(ts, `run ${run}: no-op up without the early look`, { expectNoChanges: true, early: false })).ms);
            if (i === 0) r.timelines.push({ what: `run ${run}: no-op up`, ms: u.ms, steps: u.rec.timeline(u.t0) });
        }
        for (let i = 0; i < o.runs; i++) {
            L.previewFloor.push(await floor.preview());
            const p = await preview(ts, `run ${run}: preview`);
            L.preview.push(p.ms);
            L.previewOwnLook.push((await preview(ts, `run ${run}: preview without the early look`, false)).ms);
            L.previewLook.push(await look());
            if (i === 0) r.timelines.push({ what: `run ${run}: preview`, ms: p.ms, steps: p.rec.timeline(p.t0) });
        }
        log(`run ${run}: no-op up ${list(L.noopUp.slice(-o.runs), s1)} s; preview ${list(L.preview.slice(-o.runs), s1)} s`);
        L.destroy.push((await destroy(ts, `run ${run}: destroy`)).ms);
        log(`run ${run}: destroy ${s1(L.destroy.at(-1)!)} s`);
    }
}
