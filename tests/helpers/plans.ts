// ServingPlans shaped like the planner's output for the two card classes the stack ships examples for,
// and the planner on the nvidia-smi fixtures' cards.
import * as fs from "fs";
import * as path from "path";
import { parseNvidiaSmiCsv } from "../../components/plan/gpu";
import { Plan, PlanGpu, PlanInput, plan } from "../../components/plan/planner";
import type { ServingPlan } from "../../components/pieces/vllmService";

export const revision = "0123456789abcdef0123456789abcdef01234567";
export const snapshot = `/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/snapshots/${revision}`;
export const tiktokenDir = "/var/lib/vllm-workstation/hf-tiktoken";

/** A 12 GB card: weights offloaded, eager, short context. */
export const plan12: ServingPlan = {
    gpuMemoryUtilization: 0.9,
    cpuOffloadGb: 4,
    maxModelLen: 4096,
    maxNumSeqs: 2,
    maxNumBatchedTokens: 1024,
    enforceEager: true,
    attentionBackend: "TRITON_ATTN",
    kvCacheDtype: "auto",
    requiresPinnedMemory: false,
};

const smiFixtures = path.resolve(__dirname, "../../../tests/fixtures/nvidia-smi");

/** The first card of a fixture in tests/fixtures/nvidia-smi (e.g. "rtx4090.csv"), as nvidia-smi reports it. */
export function card(file: string): PlanGpu {
    const r = parseNvidiaSmiCsv(fs.readFileSync(path.join(smiFixtures, file), "utf8"));
    if (!r.ok) throw new Error(r.errors.join("\n"));
    return r.gpus[0];
}

/** The planner's plan for `input`; throws with its errors when it refuses. */
export function planned(input: PlanInput): Plan {
    const r = plan(input);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    return r.plan;
}
