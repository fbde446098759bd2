// C. kill -9 of the download mid-file, then `up` again: the bytes the rerun fetched against the file in flight.
import * as fs from "fs";
import * as path from "path";
import type { Box } from "../../tests/helpers/box";
import type { TestStack } from "../../tests/helpers/stack";
import { partialBytes } from "../../tests/helpers/workstation";
import type { HfEndpoint, RequestLogEntry } from "../../tests/infra/servers/index";
import { q } from "../../components/host/shell";
import { fileGets } from "./fixtures";
import { errText, log, sleep, up } from "./measure";
import { HF_CACHE, WEIGHTS } from "./options";
import { Results, s1 } from "./table";

/** Kills what holds the in-flight download open on the box, and says what was in flight (kill_download.sh). */
const killScript = fs.readFileSync(path.join(__dirname, "..", "..", "..", "scripts", "bench", "kill_download.sh"), "utf8");

export async function phaseKill(r: Results, ts: TestStack, box: Box, hub: HfEndpoint): Promise<void> {
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
    const killed = await box.sh(`bash -s -- ${q(`${HF_CACHE}/models--openai--gpt-oss-20b/blobs`)}`, { input: killScript });
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
