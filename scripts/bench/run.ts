// npm run bench: rerunnable benchmarks of the stack on the throwaway box, through the real engine.
//
//     npm run bench                  # 3 runs, 8 MiB and 1 GB model fixtures
//     npm run bench -- --quick       # 1 run, 8 MiB and 128 MB fixtures: a smoke test of the bench itself
//     npm run bench -- --runs 5      # more samples per median
//     npm run bench -- --large       # also a 10 GB fixture for the drift probe (10 GB on the host, 10 GB in the box)
//     npm run bench -- --keep-fixtures   # keep the generated model fixtures in $VLLM_WS_CACHE/hf-fixtures
//     npm run bench -- --only upgrade    # just E, the upgrade phase, on its own box (about 2 minutes)
//
// What it measures (medians of N samples; every number is wall time around the Automation API call, so
// it includes the CLI's start, the in-process program and the dynamic provider):
//
//   A. the engine's floor: `up` and `preview` of an empty stack (a program returning {}), same run, and
//      again just before each timed no-op up and preview of B and D, which the targets compare with; and,
//      for reference, of a stack of one no-op dynamic resource (what any dynamic provider costs);
//   B. the workstation stack, N times: a fresh converge (split into the model step, its download and
//      checksum parts, and the rest), N no-op `up`s, N plain `preview`s (the drift probe: every preview
//      reads every piece of the box, in the program's one round trip), each of those ups and previews
//      again right after without the early look (what it saves), `destroy`; after each converge,
//      `curl -o` of the same resolve URLs from the same endpoint, on the box, for the download
//      throughput ratio (curl's one connection against the step's model.connections: --connections);
//   C. kill -9 (by pid, on the box) of the process writing the weights' *.incomplete file once 40% of it
//      is on disk (allocated blocks: the ranges are written in place), so that `up` fails; then `up`
//      again: bytes of files the rerun fetched (the Hub double's request log) against the size of the
//      file that was in flight;
//   D. the drift probe against the model's size: the converged box switched to the 8 MiB fixture (and
//      to the 10 GB one with --large), N previews each; the 1 GB row comes from B;
//   E. the upgrade (upgrade.ts, its own box and stack): a health-gated switch between two installed vLLM
//      versions against a plain restart with the same health check, an install against uv pip sync.
//
// After each converge and model switch the bench waits for the disk to write back what was downloaded
// (`sync`, logged), so the timed no-op ups and previews see a quiet disk, as a user's later runs do.
// The Hub double limits each response body to 100 MB/s, as a fast link would. The model fixtures are
// generated at bench time (tests/infra/servers/hf_fixture.py, cached under $VLLM_WS_CACHE/hf-fixtures) and the
// big ones are deleted afterwards unless --keep-fixtures. Prints a markdown table on stdout (progress on
// stderr) and writes it, with every sample, to $VLLM_WS_CACHE/bench/last.json.
//
// Each phase is a module: floor.ts (A), lifecycle.ts (B), kill.ts (C), sizes.ts (D); measure.ts times one
// operation through the engine, fixtures.ts makes the Hub double's fixtures, table.ts prints the results.
//
// Test doubles (see the README): the box's GPU, nvidia-smi and nvcc, the vLLM and FlashInfer wheels,
// the Hub. The engine, the box, its systemd, sshd, uv, the `hf` client and the scripts are real.
import { workstationProgram } from "../../components/program";
import { Box, freePort, startBox } from "../../tests/helpers/box";
import { testStack, TestStack } from "../../tests/helpers/stack";
import { boxStackConfig, installGpuDoubles, wheelhouse } from "../../tests/helpers/workstation";
import { HfEndpoint, PackageIndex, startPackageIndex } from "../../tests/infra/servers/index";
import { Fixtures } from "./fixtures";
import { phaseFloor } from "./floor";
import { phaseKill } from "./kill";
import { lookMs, phaseLifecycle } from "./lifecycle";
import { destroy, errText, floorOf, log, workstationStacks, writeConfig } from "./measure";
import { parseArgs, RATE, SMALL, VENV } from "./options";
import { phaseSizes } from "./sizes";
import { newResults, report, size } from "./table";
import { upgradeBench } from "./upgrade";

async function main(): Promise<number> {
    const o = parseArgs(process.argv.slice(2));
    const started = new Date();
    const r = newResults();
    if (o.only === "upgrade") {
        log(`upgrade phase alone, runs ${o.runs}`);
        r.upgrade = await upgradeBench(o, log, (error) => r.errors.push({ phase: "upgrade", error }));
        log(`wrote ${report(o, r, started)}`);
        return r.errors.length ? 1 : 0;
    }
    log(`runs ${o.runs}, fixtures ${size(SMALL)} and ${size(o.big)}${o.large ? " and 10 GB" : ""}${o.keepFixtures ? ", kept afterwards" : ""}`);

    const fixtures = new Fixtures(r.setup);
    const hubFor = (bytes: number, rate?: number) => fixtures.hubFor(bytes, rate);

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
        await phase("upgrade", async () => void (r.upgrade = await upgradeBench(o, log, (error) => r.errors.push({ phase: "upgrade", error }))));
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
        await Promise.all([box?.stop(), index?.stop(), ...fixtures.stopAll()].map((p) => p?.catch((e) => log(`stop: ${errText(e)}`))));
        if (!o.keepFixtures) fixtures.deleteMade();
    }

    log(`wrote ${report(o, r, started)}`);
    return r.errors.length ? 1 : 0;
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(errText(e));
        process.exit(2);
    },
);
