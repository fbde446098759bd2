// D. The drift probe against the model's size: the converged box switched to another fixture, previews of each.
import type { TestStack } from "../../tests/helpers/stack";
import type { HfEndpoint } from "../../tests/infra/servers/index";
import { lookMs } from "./lifecycle";
import { Floor, log, preview, settle, up, writeConfig } from "./measure";
import type { Options } from "./options";
import { list, Results, s1, size } from "./table";

export async function phaseSizes(o: Options, r: Results, ts: TestStack, sizes: Array<{ bytes: number; hub: () => Promise<HfEndpoint> }>, config: (hub: HfEndpoint) => Record<string, unknown>, floor: Floor): Promise<void> {
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
