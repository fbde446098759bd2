// ServingPlans shaped like the planner's output for the two card classes the stack ships examples for.
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
