import test from "ava";
import * as fs from "fs";
import * as path from "path";
import {
    KvCacheDtype,
    PlanInput,
    activationsGiB,
    kvBlockBytes,
    kvBlocksPerRequest,
    kvTokensFor,
    plan,
    weightsOnGpuGiB,
} from "../../components/plan/planner";
import { card, planned } from "../helpers/plans";

// What real vLLM did for each recorded plan (scripts/calibrate/calibrate.py on a GPU); see docs/calibration.md.
const DIR = path.resolve(__dirname, "../../../tests/fixtures/calibration/vllm-0.24.0");

interface Fixture {
    readonly name: string;
    readonly plan: {
        readonly cardTotalMiB: number;
        readonly gpuMemoryUtilization: number;
        readonly cpuOffloadGb: number;
        readonly maxModelLen: number;
        readonly maxNumSeqs: number;
        readonly maxNumBatchedTokens: number;
        readonly enforceEager: boolean;
        readonly kvCacheDtype: KvCacheDtype;
        readonly attentionBackend: string;
    };
    readonly versions: { readonly vllm: string };
    readonly started: boolean;
    readonly measured: { readonly weightsGiB: number; readonly availableKvGiB: number; readonly kvTokens?: number };
}

const fixtures: Fixture[] = fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith(".json") && f !== "device.json")
    .map((f) => JSON.parse(fs.readFileSync(path.join(DIR, f), "utf8")) as Fixture);
const byName = new Map(fixtures.map((f) => [f.name, f]));

/** The planner's model applied to a fixture's knobs, without its safety margin: what vLLM should log. */
function predict(f: Fixture): { weights: number; kv: number; tokens: number; starts: boolean } {
    const p = f.plan;
    const weights = weightsOnGpuGiB(p.cpuOffloadGb, p.kvCacheDtype);
    const kv = (p.cardTotalMiB / 1024) * p.gpuMemoryUtilization - weights - activationsGiB(p.maxNumBatchedTokens, p.enforceEager);
    const blocks = Math.max(0, Math.floor((kv * 1024 ** 3) / kvBlockBytes(p.kvCacheDtype)));
    return {
        weights,
        kv,
        tokens: kvTokensFor(blocks, p.maxModelLen, p.maxNumBatchedTokens),
        starts: blocks >= kvBlocksPerRequest(p.maxModelLen, p.maxNumBatchedTokens),
    };
}

const within = (predicted: number, measured: number, share: number): boolean => Math.abs(predicted - measured) <= share * Math.abs(measured);

test("has recorded fixtures of vLLM 0.24.0, refusals among them", (t) => {
    t.true(fixtures.length >= 10);
    t.true(fixtures.every((f) => f.versions.vllm === "0.24.0"));
    t.true(fixtures.some((f) => !f.started));
});

for (const f of fixtures) {
    test(`predicts the weights of ${f.name} within 5% of what vLLM loaded`, (t) => {
        const p = predict(f);
        t.true(within(p.weights, f.measured.weightsGiB, 0.05), `predicted ${p.weights}, vLLM ${f.measured.weightsGiB}`);
    });
    test(`predicts whether ${f.name} starts (vLLM: ${f.started ? "started" : "refused"})`, (t) => {
        t.is(predict(f).starts, f.started);
    });
    if (f.started) {
        test(`predicts the KV cache of ${f.name} within 10% of vLLM's token count`, (t) => {
            const p = predict(f);
            t.truthy(f.measured.kvTokens);
            t.true(within(p.tokens, f.measured.kvTokens!, 0.1), `predicted ${p.tokens}, vLLM ${f.measured.kvTokens}`);
            t.true(Math.abs(p.kv - f.measured.availableKvGiB) <= 0.05, `predicted ${p.kv} GiB, vLLM ${f.measured.availableKvGiB}`);
        });
    }
}

// Each stack's plan and each card of the card table (docs/design.md) is a recorded plan that started.
const emitted: Array<[string, PlanInput, string]> = [
    ["the 12gb stack", { gpu: null, options: { tier: "12gb" } }, "stack-12gb"],
    ["the 24gb stack", { gpu: null, options: { tier: "24gb", maxModelLen: 65536 } }, "stack-24gb"],
    ["the 12 GB card (RTX 3060)", { gpu: card("rtx3060.csv") }, "card-12gb-rtx3060"],
    ["the 16 GB card (RTX 4060 Ti)", { gpu: card("rtx4060ti.csv") }, "card-16gb-rtx4060ti"],
    ["the 24 GB card (RTX 4090)", { gpu: card("rtx4090.csv") }, "card-24gb-rtx4090"],
    ["the 32 GB card (RTX 5090)", { gpu: card("rtx5090.csv") }, "card-32gb-rtx5090"],
    ["the 16gb tier", { gpu: null, options: { tier: "16gb" } }, "tier16-offload1"],
];

for (const [what, input, name] of emitted) {
    test(`plans ${what} exactly as the recorded plan ${name}, which vLLM started`, (t) => {
        const p = planned(input);
        const f = byName.get(name);
        t.truthy(f, name);
        t.true(f!.started);
        t.like(
            {
                memoryTotalMiB: p.gpu.memoryTotalMiB,
                gpuMemoryUtilization: p.gpuMemoryUtilization,
                cpuOffloadGb: p.cpuOffloadGb,
                maxModelLen: p.maxModelLen,
                maxNumSeqs: p.maxNumSeqs,
                maxNumBatchedTokens: p.maxNumBatchedTokens,
                enforceEager: p.enforceEager,
                kvCacheDtype: p.kvCacheDtype,
                attentionBackend: p.attentionBackend,
            },
            {
                memoryTotalMiB: f!.plan.cardTotalMiB,
                gpuMemoryUtilization: f!.plan.gpuMemoryUtilization,
                cpuOffloadGb: f!.plan.cpuOffloadGb,
                maxModelLen: f!.plan.maxModelLen,
                maxNumSeqs: f!.plan.maxNumSeqs,
                maxNumBatchedTokens: f!.plan.maxNumBatchedTokens,
                enforceEager: f!.plan.enforceEager,
                kvCacheDtype: f!.plan.kvCacheDtype,
                attentionBackend: f!.plan.attentionBackend,
            },
        );
        t.true(within(p.memory.kvCacheTokens, f!.measured.kvTokens!, 0.1), `planner ${p.memory.kvCacheTokens}, vLLM ${f!.measured.kvTokens}`);
    });
}

// Plans vLLM refused must not come out of the planner, even when asked for explicitly.
const refused: Array<[string, PlanInput]> = [
    ["tier12-offload4", { gpu: null, options: { tier: "12gb", cpuOffloadGb: 4 } }],
    [
        "rtx4060ti-bf16-16k",
        { gpu: card("rtx4060ti.csv"), options: { maxModelLen: 16384, maxNumSeqs: 8, kvCacheDtype: "auto", cpuOffloadGb: 0, gpuMemoryUtilization: 0.91 } },
    ],
    ["tier12-offload5-graphs", { gpu: null, wsl: false, options: { tier: "12gb", cpuOffloadGb: 5, enforceEager: false } }],
];

for (const [name, input] of refused) {
    test(`refuses the plan of ${name}, which vLLM refused`, (t) => {
        t.false(byName.get(name)!.started);
        const r = plan(input);
        t.false(r.ok, r.ok ? JSON.stringify(r.plan) : "");
    });
}

test("asks for host RAM from the measured growth per offloaded GiB", (t) => {
    // The engine's peak RSS per GiB offloaded, against a plan without offload.
    const base = JSON.parse(fs.readFileSync(path.join(DIR, "card-16gb-rtx4060ti.json"), "utf8")).hostPeakRssGiB as number;
    for (const name of ["tier16-offload1", "card-12gb-rtx3060", "stack-12gb", "tier12-offload6"]) {
        const f = JSON.parse(fs.readFileSync(path.join(DIR, `${name}.json`), "utf8"));
        const perGiB = (f.hostPeakRssGiB - base) / f.plan.cpuOffloadGb;
        t.true(perGiB > 1.5 && perGiB <= 1.9, `${name}: ${perGiB}`);
    }
    const p = planned({ gpu: null, options: { tier: "12gb" } });
    t.is(p.hostMemoryGiB, 5 + 1.9 * 5);
});
