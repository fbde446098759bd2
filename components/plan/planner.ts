// The VRAM planner: from a card (detected, or a tier preset) and the user's overrides to vLLM's
// memory knobs for openai/gpt-oss-20b. Pure: no I/O, same input -> same plan, so `pulumi preview`
// and the doctor agree and the tests can pin every branch.
//
// Facts this file relies on, and where they were checked (vLLM 0.10.1-0.12 era, the releases the
// stack installs):
//  - Flags: --gpu-memory-utilization (share of the card's TOTAL memory, 0 < x <= 1; vLLM rejects >1),
//    --cpu-offload-gb (GiB of weights kept in host RAM, streamed each forward pass), --enforce-eager
//    (no CUDA graphs), --max-model-len, --max-num-seqs, --max-num-batched-tokens (vLLM requires it
//    >= max-num-seqs), --kv-cache-dtype {auto, fp8, ...}.
//  - At startup vLLM V1 refuses to run when the card's free memory is below utilization x total
//    ("Free memory on device ... is less than desired GPU memory utilization"), so on WSL2, where the
//    Windows desktop holds part of the same card, utilization must be planned from FREE memory.
//  - CUDA graphs are captured after the KV cache is sized, outside the utilization budget
//    (vllm-project/vllm#30515; vLLM 0.21+ estimates them inside the budget by default, for which this
//    model is merely conservative), so their memory must fit in what the budget leaves free.
//  - Attention backend. gpt-oss has attention sinks. vLLM's FlashAttention backend supports sinks only
//    with FlashAttention 3 (vllm/v1/attention/backends/fa_utils.py: flash_attn_supports_sinks() is
//    `get_flash_attn_version() == 3`, and FA3 is picked only for device major 9 = Hopper); on an RTX
//    4090 FLASH_ATTN fails with "Sinks are only supported in FlashAttention 3" (vllm-project/vllm#22331).
//    FlashInfer handles sinks only through its TRT-LLM kernels on sm_100 ("FlashInfer backend currently
//    does not support attention sinks" otherwise, vllm-project/vllm#30919). The gpt-oss recipe
//    (vllm-project/recipes OpenAI/GPT-OSS.md) says Ampere runs "using the TRITON_ATTN attention backend
//    and Marlin MXFP4 MoE", and sends H100/H200 and B200 to its Hopper/Blackwell configs. Hence:
//    sm_80-sm_89 and consumer Blackwell sm_120 -> TRITON_ATTN, sm_90 -> FLASH_ATTN (FA3),
//    sm_100 -> FLASHINFER.
//    Selecting it: vLLM 0.11.x reads only the env VLLM_ATTENTION_BACKEND (v0.11.2's
//    vllm/attention/selector.py; a "_VLLM_V1" suffix, as in 0.10.1's "TRITON_ATTN_VLLM_V1", is still
//    accepted). vllm-project/vllm#26315 added --attention-backend / --attention-config.backend and
//    deprecated the env var ("will be removed in v0.14.0"; downstream changelogs date the flag to 0.13);
//    recent releases ignore the env var silently (vllm-project/vllm#50292). The plan names the backend;
//    the component that writes the service picks env or flag by the vLLM version it installs.
//  - MXFP4: vLLM's Mxfp4Config.get_min_capability() is 80; below Ampere there is no MXFP4 MoE kernel
//    (the Marlin path that runs it on sm_80-sm_89 needs Ampere tensor cores), and bf16 itself needs sm_80.
//  - fp8 KV cache: vLLM's CudaPlatform.supports_fp8() is capability >= 8.9, and Triton's fp8e4nv type
//    (which TRITON_ATTN uses for an fp8 cache) does not exist before sm_89; FA3's fp8 path is Hopper-only.
//  - CPU offload under WSL2: vLLM disables pinned memory when uname says "microsoft", and its V1 engine
//    asserts "V1 CPU offloading requires uva (pin memory) support" (is_uva_available() is
//    is_pin_memory_available()). vllm-project/vllm#41496 (merged 2026-05) lets WSL2 kernels >= 4.19.121
//    pin memory with VLLM_WSL2_ENABLE_PIN_MEMORY=1; older releases (0.11.x included) have no switch.
//    CUDA graphs only capture host-to-device copies from pinned memory, so offloading also means eager
//    mode unless pinning works. And --cpu-offload-gb was measured to take ~1.9x the host RAM it asks
//    for (vllm-project/vllm#56410).
//  - The memory model is calibrated against real vLLM: tests/fixtures/calibration/vllm-0.24.0/*.json, each
//    what vLLM 0.24.0 logged for one plan (scripts/calibrate/calibrate.py, gpt-oss-20b's config.json with dummy
//    weights, the card's budget emulated on a larger GPU). A constant below that came from there names its
//    fixture. vLLM sizes the KV cache as: utilization x total - weights - torch peak of the profile run -
//    non-torch memory - CUDA graph estimate (0.21+ counts graphs inside the budget), then allocates whole
//    blocks, and logs "GPU KV cache size" as concurrency x max-model-len (vllm/v1/core/kv_cache_utils.py).
import type { z } from "zod";
import { defaults, Gpu, gpuOptionProblems } from "../config/schema";
import { ComputeCapability, compareComputeCap, parseComputeCap, smName } from "./gpu";
import { GPT_OSS_20B } from "./gptOss20b";

export { GPT_OSS_20B };

const GIB = 1024 ** 3;

/**
 * The planner's constants, each an estimate with its reason. All in GiB unless named otherwise.
 * They are deliberately a little pessimistic: a plan that leaves 300 MiB unused costs a few thousand
 * tokens of KV cache; one that is 300 MiB short does not start.
 */
export const PLANNER_CONSTANTS = {
    /**
     * CUDA context of the engine process, outside the budget: vLLM checks free memory against its share after
     * creating it. The worker's init snapshot shows 0.51 GiB non-torch memory before loading (stack-12gb.json).
     */
    cudaContextGiB: 0.6,
    /**
     * CUDA graphs kept beside the budget when the planner picks the utilization. vLLM 0.24.0 captured 0.46 GiB
     * and counted its 0.48 GiB estimate inside the budget (card-24gb-rtx4090.json); releases before 0.21
     * capture them outside it, which this reserve covers.
     */
    cudaGraphsGiB: 0.75,
    /**
     * Inside the budget: the torch peak of the profile run, base + per batched token. Eager: 0.24 GiB at 2048
     * tokens (stack-12gb.json), 0.84 GiB at 8192 (rtx4090-eager.json). Compiled for CUDA graphs: 1.10 GiB at
     * 2048 (tier12-offload5-graphs.json), 1.17 GiB at 8192 (card-24gb-rtx4090.json). max-num-seqs 32 or 64
     * changed nothing (tier24-32k-64seqs.json).
     */
    peakEager: { baseGiB: 0.04, perBatchedTokenGiB: 0.6 / 6144 },
    peakGraphs: { baseGiB: 1.077, perBatchedTokenGiB: 0.07 / 6144 },
    /** Non-torch memory the forward pass adds: 0.22-0.25 GiB in every fixture. */
    nonTorchGiB: 0.24,
    /** vLLM's CUDA graph estimate, subtracted inside the budget: 0.47-0.49 GiB (card-24gb-rtx4090.json). */
    cudaGraphsEstimateGiB: 0.49,
    /**
     * Weights left on the GPU per --cpu-offload-gb: vLLM offloads whole parameters until the amount is reached,
     * so it overshoots a little. Measured: 1 -> 12.78 (tier16-offload1.json), 4 -> 9.61 (card-12gb-rtx3060.json),
     * 5 -> 8.64 (stack-12gb.json), 6 -> 7.67 (tier12-offload6.json); between, linear; beyond 6, 0.97 GiB each.
     */
    weightsAfterOffload: [[0, 13.8], [1, 12.78], [4, 9.61], [5, 8.64], [6, 7.67]] as ReadonlyArray<readonly [number, number]>,
    /** An fp8 KV cache adds its scales to the weights: 13.83 GiB (card-16gb-rtx4060ti.json). */
    fp8WeightsExtraGiB: 0.03,
    /**
     * Kept free inside the budget beyond the model when the planner accepts a plan: the model reproduces the
     * fixtures' KV memory within 0.03 GiB; this is several times that.
     */
    kvSafetyGiB: 0.1,
    /** Kept free beyond the plan when the planner picks the utilization (fragmentation, a browser tab). */
    safetyGiB: 0.3,
    /** Upper bound for an automatic utilization: vLLM's own examples stop at 0.95. */
    maxAutoUtilization: 0.95,
    /**
     * What the Windows desktop and its apps hold on the card when a tier is planned without the card
     * at hand (WSL2 shares the card with Windows; 0.3-1.3 GiB is typical).
     */
    displayReserveMiB: 1024,
    /** Host RAM of vLLM itself: API server + engine core processes, torch, CUDA host libraries, tokenizer. */
    hostBaseGiB: 5,
    /**
     * Host RAM per GiB offloaded: the engine's peak RSS grew 1.75-1.86 GiB per GiB offloaded (tier16-offload1,
     * card-12gb-rtx3060, stack-12gb, tier12-offload6 against card-16gb-rtx4060ti), as vllm-project/vllm#56410 found.
     */
    hostPerOffloadedGiB: 1.9,
    /** Below this many KV tokens, CUDA graphs' memory is worth more as KV cache: go eager. */
    tightKvTokens: 65536,
    /**
     * Pinned host-to-GPU copies over PCIe 4.0 x16, the link of the cards this plans for, in GiB/s (the H200's
     * PCIe 5.0 x16 link measured 51.7: device.json; 4.0 is half the signalling rate).
     */
    pcieGiBps: 24,
    /** Automatic context lengths, longest first: an explicit gpu.maxModelLen may go beyond the first. */
    contextLadder: [32768, 16384, 8192, 4096],
    /** The recipe's recommended --max-num-batched-tokens; the tight profile uses less to cut activations. */
    roomyBatchedTokens: 8192,
    tightBatchedTokens: 2048,
    /** Sequences are sized so each gets about this many tokens of KV on average. */
    tokensPerSeq: 4096,
    /** vLLM's KV block size on CUDA; the sliding-window layers keep window + one block per request. */
    blockSize: 16,
} as const;

/** The `gpu` section of the stack config (config/schema.ts's Gpu): every knob null means "let the planner choose". */
export type PlanOptions = Readonly<z.output<typeof Gpu>>;
export type Tier = PlanOptions["tier"];
export const TIERS: readonly Tier[] = Gpu.unwrap().shape.tier.unwrap().options;
export type AttentionBackend = NonNullable<PlanOptions["attentionBackend"]>;
export type KvCacheDtype = NonNullable<PlanOptions["kvCacheDtype"]>;

/** The schema's defaults: everything automatic. */
export const AUTO_OPTIONS: PlanOptions = defaults.gpu;

/**
 * Named tiers stand for the smallest common card of that size (RTX 4070 12282 MiB, RTX 4080 16376 MiB,
 * RTX 4090 24564 MiB) with the Windows desktop's share already taken.
 */
export const TIER_PRESETS: Readonly<Record<Exclude<Tier, "auto">, { readonly memoryTotalMiB: number }>> = {
    "12gb": { memoryTotalMiB: 12282 },
    "16gb": { memoryTotalMiB: 16376 },
    "24gb": { memoryTotalMiB: 24564 },
};

/** The card to plan for, as gpu.ts parses it from nvidia-smi. */
export interface PlanGpu {
    readonly name: string;
    readonly memoryTotalMiB: number;
    /**
     * Free now. A caller that plans while the vLLM service already holds the card must add the service's
     * share back, or the plan shrinks to fit around itself.
     */
    readonly memoryFreeMiB: number;
    readonly computeCap: string;
}

export interface PlanInput {
    /** GPU 0 as detected; null when nvidia-smi found none (then only a named tier can plan). */
    readonly gpu: PlanGpu | null;
    /** Missing fields are null (auto). */
    readonly options?: Partial<PlanOptions>;
    /** The workstation runs WSL2 (the product's target). Default true. */
    readonly wsl?: boolean;
}

/** Where the card's memory goes under the plan, in GiB (2 decimals). */
export interface MemoryBreakdown {
    readonly totalGiB: number;
    /** Held by Windows and other processes before vLLM starts (total - free). */
    readonly othersGiB: number;
    /** gpu-memory-utilization x total: what vLLM sizes weights + activations + KV cache into. */
    readonly budgetGiB: number;
    readonly weightsGiB: number;
    readonly offloadedGiB: number;
    readonly activationsGiB: number;
    readonly kvCacheGiB: number;
    /** Full-attention tokens the KV cache holds (across all running sequences). */
    readonly kvCacheTokens: number;
    readonly cudaGraphsGiB: number;
    readonly cudaContextGiB: number;
    /** Free memory left once vLLM is up (free - context - graphs - budget). */
    readonly headroomGiB: number;
}

export interface Plan {
    readonly model: typeof GPT_OSS_20B.repo;
    readonly tier: Tier;
    readonly gpu: {
        readonly name: string;
        readonly memoryTotalMiB: number;
        readonly memoryFreeMiB: number;
        readonly computeCap: string;
        /** "detected": the card itself; "tier": a preset (free memory and maybe the capability assumed). */
        readonly source: "detected" | "tier";
    };
    readonly gpuMemoryUtilization: number;
    readonly cpuOffloadGb: number;
    readonly maxModelLen: number;
    readonly maxNumSeqs: number;
    readonly maxNumBatchedTokens: number;
    readonly enforceEager: boolean;
    readonly attentionBackend: AttentionBackend;
    readonly kvCacheDtype: KvCacheDtype;
    /**
     * Offloaded weights must sit in pinned host memory (vLLM's V1 engine asserts it). Under WSL2 that needs
     * VLLM_WSL2_ENABLE_PIN_MEMORY=1 and a vLLM release that knows it; see the warning.
     */
    readonly requiresPinnedMemory: boolean;
    readonly memory: MemoryBreakdown;
    /** Host RAM vLLM needs: hostBaseGiB + hostPerOffloadedGiB x offload. */
    readonly hostMemoryGiB: number;
    /** What offloading costs each decode step over PCIe; null without offload. */
    readonly offloadSpeed: OffloadSpeed | null;
    /** Why the automatic choices came out as they did. */
    readonly notes: string[];
    readonly warnings: string[];
}

/**
 * Offloaded weights stay in host memory and the GPU reads them over PCIe (UVA) as it uses them. The MoE layers
 * route each token to 4 of 32 experts, so one request reads about an eighth of the offloaded bytes per step and
 * 8 or more requests read all of them. An estimate from the bytes and the link: on the H200, eager decoding of
 * one request ran 18-30 tokens/s with or without offload, bound by the CPU, so speed there says nothing.
 */
export interface OffloadSpeed {
    /** Bytes vLLM actually offloads (whole parameters): 13.8 GiB less what stays on the GPU. */
    readonly offloadedGiB: number;
    readonly oneRequestGiB: number;
    readonly oneRequestMs: number;
    readonly fullMs: number;
}

export function offloadSpeed(offload: number): OffloadSpeed {
    const offloaded = GPT_OSS_20B.weightsGiB - weightsOnGpuGiB(offload, "auto");
    const one = (offloaded * 4) / 32;
    return {
        offloadedGiB: round2(offloaded),
        oneRequestGiB: round2(one),
        oneRequestMs: Math.round((one / C.pcieGiBps) * 1000),
        fullMs: Math.round((offloaded / C.pcieGiBps) * 1000),
    };
}

export type PlanResult = { readonly ok: true; readonly plan: Plan } | { readonly ok: false; readonly errors: string[] };

/** The card as the planner sees it, after the tier is applied. */
interface Card {
    readonly name: string;
    readonly totalMiB: number;
    readonly freeMiB: number;
    readonly cc: ComputeCapability;
    readonly source: "detected" | "tier";
    readonly assumedCc: boolean;
}

interface Knobs {
    readonly util: number;
    readonly offload: number;
    readonly eager: boolean;
    readonly batched: number;
    readonly seqs: number;
    readonly kvDtype: KvCacheDtype;
}

interface Fit {
    readonly budget: number;
    readonly weights: number;
    readonly activations: number;
    /** What vLLM will find for the KV cache ("Available KV cache memory"). */
    readonly kv: number;
    /** Whole blocks vLLM will allocate in that memory. */
    readonly blocks: number;
    /** The same, less the planner's safety margin: what a plan must fit into to be sure vLLM starts. */
    readonly safeBlocks: number;
    readonly graphs: number;
    readonly headroom: number;
}

const C = PLANNER_CONSTANTS;
const ASSUMED_CC: ComputeCapability = { major: 8, minor: 6 };
const MIN_CC: ComputeCapability = { major: 8, minor: 0 };
const FP8_CC: ComputeCapability = { major: 8, minor: 9 };

const round2 = (x: number): number => Math.round(x * 100) / 100;
const floor2 = (x: number): number => Math.floor(x * 100 + 1e-9) / 100;
const gib = (mib: number): number => mib / 1024;
const fmt = (x: number): string => x.toFixed(2);
const q = (v: unknown): string => JSON.stringify(v);
const pow2floor = (x: number): number => (x < 1 ? 0 : 2 ** Math.floor(Math.log2(x)));

/** Bytes of KV cache per token of context, over the 12 full-attention layers (K and V, 8 heads x 64). */
export function kvBytesPerToken(dtype: KvCacheDtype): number {
    const bytes = dtype === "fp8" ? 1 : 2;
    return GPT_OSS_20B.fullAttentionLayers * 2 * GPT_OSS_20B.numKvHeads * GPT_OSS_20B.headDim * bytes;
}

/**
 * One KV block across the pool: the 12 sliding and 12 full layers share 12 tensors (vLLM's hybrid allocator),
 * so a block costs 12 layers x 16 tokens x K,V x 8 heads x 64 dims (384 KiB in bf16).
 */
export function kvBlockBytes(dtype: KvCacheDtype): number {
    return kvBytesPerToken(dtype) * C.blockSize;
}

/**
 * Blocks one request of `maxModelLen` tokens holds at most: its full-attention blocks plus the sliding window's
 * (window - 1 + one prefill chunk, and one block for the window's misalignment), as vLLM 0.24.0 counts them.
 */
export function kvBlocksPerRequest(maxModelLen: number, batched: number): number {
    const cdiv = (a: number, b: number): number => Math.ceil(a / b);
    return cdiv(maxModelLen, C.blockSize) + cdiv(Math.min(GPT_OSS_20B.slidingWindow - 1 + batched, maxModelLen), C.blockSize) + 1;
}

/** What vLLM logs as "GPU KV cache size": requests of `maxModelLen` that fit at once, times `maxModelLen`. */
export function kvTokensFor(blocks: number, maxModelLen: number, batched: number): number {
    return Math.max(0, Math.floor((blocks / kvBlocksPerRequest(maxModelLen, batched)) * maxModelLen));
}

/** Weights vLLM keeps on the GPU with `offload` GiB offloaded: the measured points, linear between them. */
export function weightsOnGpuGiB(offload: number, dtype: KvCacheDtype): number {
    const pts = C.weightsAfterOffload;
    const extra = dtype === "fp8" ? C.fp8WeightsExtraGiB : 0;
    for (let i = 1; i < pts.length; i++) {
        const [x0, y0] = pts[i - 1];
        const [x1, y1] = pts[i];
        if (offload <= x1) return y0 + ((y1 - y0) * (offload - x0)) / (x1 - x0) + extra;
    }
    const [xn, yn] = pts[pts.length - 1];
    const [xp, yp] = pts[pts.length - 2];
    return Math.max(0, yn + ((yn - yp) / (xn - xp)) * (offload - xn)) + extra;
}

/** Inside the budget besides weights and KV: the profile run's torch peak, non-torch memory, the graph estimate. */
export function activationsGiB(batched: number, eager: boolean): number {
    const peak = eager ? C.peakEager : C.peakGraphs;
    return peak.baseGiB + peak.perBatchedTokenGiB * batched + C.nonTorchGiB + (eager ? 0 : C.cudaGraphsEstimateGiB);
}

function graphsGiB(eager: boolean): number {
    return eager ? 0 : C.cudaGraphsGiB;
}

function fit(card: Card, k: Knobs): Fit {
    const total = gib(card.totalMiB);
    const free = gib(card.freeMiB);
    const budget = k.util * total;
    const weights = weightsOnGpuGiB(k.offload, k.kvDtype);
    const activations = activationsGiB(k.batched, k.eager);
    const kv = budget - weights - activations;
    const blocksIn = (gibs: number): number => Math.max(0, Math.floor((gibs * GIB) / kvBlockBytes(k.kvDtype)));
    const graphs = graphsGiB(k.eager);
    return {
        budget,
        weights,
        activations,
        kv,
        blocks: blocksIn(kv),
        safeBlocks: blocksIn(kv - C.kvSafetyGiB),
        graphs,
        headroom: free - C.cudaContextGiB - graphs - budget,
    };
}

/** The most vLLM may ask for and still pass its startup free-memory check, with graphs captured after. */
function startupUtilizationCap(card: Card, eager: boolean, margin: number): number {
    return floor2((gib(card.freeMiB) - C.cudaContextGiB - graphsGiB(eager) - margin) / gib(card.totalMiB));
}

function autoUtilization(card: Card, eager: boolean): number {
    return Math.max(0, Math.min(C.maxAutoUtilization, startupUtilizationCap(card, eager, C.safetyGiB)));
}

/** KV memory (GiB) for `requests` requests of `maxModelLen` tokens at once, with the planner's margin. */
function kvNeedGiB(maxModelLen: number, requests: number, batched: number, dtype: KvCacheDtype): number {
    return (requests * kvBlocksPerRequest(maxModelLen, batched) * kvBlockBytes(dtype)) / GIB + C.kvSafetyGiB;
}

/** Whole GiB to offload so that `requests` requests of `maxModelLen` fit beside the rest; 0 when they already do. */
function autoOffload(card: Card, k: Omit<Knobs, "offload">, maxModelLen: number, requests: number): number {
    const budget = k.util * gib(card.totalMiB);
    const onGpu = budget - activationsGiB(k.batched, k.eager) - kvNeedGiB(maxModelLen, requests, k.batched, k.kvDtype);
    // Whole GiB, the unit of the measured points (vLLM offloads whole parameters anyway).
    for (let off = 0; off <= Math.ceil(GPT_OSS_20B.weightsGiB); off++) {
        if (weightsOnGpuGiB(off, k.kvDtype) <= onGpu) return off;
    }
    return Math.ceil(GPT_OSS_20B.weightsGiB);
}

export function autoAttentionBackend(cc: ComputeCapability): AttentionBackend {
    if (cc.major === 9) return "FLASH_ATTN";
    if (cc.major === 10) return "FLASHINFER";
    return "TRITON_ATTN";
}

/** Why `backend` cannot run gpt-oss on `cc`, or null when it can. */
function backendProblem(backend: AttentionBackend, cc: ComputeCapability): string | null {
    if (backend === "FLASH_ATTN" && cc.major !== 9) {
        return `needs FlashAttention 3 for gpt-oss's attention sinks, which vLLM runs only on Hopper (sm_90); this card is ${smName(cc)}: use "TRITON_ATTN"`;
    }
    if (backend === "FLASHINFER" && cc.major !== 10) {
        return `runs gpt-oss's attention sinks only through FlashInfer's TRT-LLM kernels on sm_100; this card is ${smName(cc)}: use "${autoAttentionBackend(cc)}"`;
    }
    return null;
}

export function supportsFp8KvCache(cc: ComputeCapability): boolean {
    return compareComputeCap(cc, FP8_CC) >= 0;
}

/** The rejection message for a card below sm_80, shared with preflight so both say the same thing. */
export function computeCapabilityProblem(name: string, computeCap: string): string | null {
    const cc = parseComputeCap(computeCap);
    if (cc === null) return `gpu: ${q(name)} reports compute capability ${q(computeCap)}, which is not MAJOR.MINOR`;
    if (compareComputeCap(cc, MIN_CC) >= 0) return null;
    return (
        `gpu: ${q(name)} has compute capability ${computeCap} (${smName(cc)}); gpt-oss-20b needs sm_80 or newer: ` +
        `vLLM's MXFP4 MoE path (Marlin) starts at Ampere and bf16 needs sm_80. Use an RTX 30xx or newer card`
    );
}

function resolveCard(gpu: PlanGpu | null, tier: Tier, errors: string[]): Card | null {
    if (tier === "auto") {
        if (gpu === null) {
            const named = Object.keys(TIER_PRESETS).map(q);
            const sizes = `${named.slice(0, -1).join(", ")} or ${named[named.length - 1]}`;
            errors.push(
                `gpu.tier: "auto" needs a detected GPU, but nvidia-smi reported none: fix the driver, or plan for a card size with gpu.tier ${sizes}`,
            );
            return null;
        }
        const cc = parseComputeCap(gpu.computeCap);
        if (cc === null) return null; // computeCapabilityProblem reports it
        return { name: gpu.name, totalMiB: gpu.memoryTotalMiB, freeMiB: gpu.memoryFreeMiB, cc, source: "detected", assumedCc: false };
    }
    const preset = TIER_PRESETS[tier];
    const freeMiB = preset.memoryTotalMiB - C.displayReserveMiB;
    if (gpu === null) {
        return {
            name: `a ${tier.replace("gb", " GB")} card`,
            totalMiB: preset.memoryTotalMiB,
            freeMiB,
            cc: ASSUMED_CC,
            source: "tier",
            assumedCc: true,
        };
    }
    const cc = parseComputeCap(gpu.computeCap);
    if (cc === null) return null;
    // 2% slack: the same card model reports a few MiB less on some drivers and boards.
    if (gpu.memoryTotalMiB < preset.memoryTotalMiB * 0.98) {
        errors.push(
            `gpu.tier: ${q(tier)} plans for ${preset.memoryTotalMiB} MiB, but ${q(gpu.name)} has ${gpu.memoryTotalMiB} MiB: use "auto" or a smaller tier`,
        );
        return null;
    }
    return { name: gpu.name, totalMiB: preset.memoryTotalMiB, freeMiB, cc, source: "tier", assumedCc: false };
}

interface Profile {
    readonly name: "roomy" | "tight" | "tight-fp8" | "offload";
    readonly eager: boolean;
    readonly batched: number;
    /** Sequences assumed while sizing (activations); the final count is derived from the KV cache. */
    readonly seqsCap: number;
    /** Longest automatic context. */
    readonly ctxCap: number;
    /** KV tokens the profile must reach to be chosen when the context is automatic. */
    readonly bar: { readonly maxModelLen: number; readonly requests: number };
    readonly kvDtype: KvCacheDtype;
    readonly offload: boolean;
}

/** Room for two 8192-token requests: what automatic offloading aims for, and the bar for the tight profiles. */
const TWO_SHORT_REQUESTS = { maxModelLen: 8192, requests: 2 };

/** Tried in order; the first that fits wins. Each step costs speed to buy memory. */
const PROFILES: readonly Profile[] = [
    // CUDA graphs, big prefill chunks: 24 GB cards and up. Below tightKvTokens the graphs' memory is
    // worth more as KV cache.
    { name: "roomy", eager: false, batched: C.roomyBatchedTokens, seqsCap: 256, ctxCap: 32768, bar: { maxModelLen: 32768, requests: C.tightKvTokens / 32768 }, kvDtype: "auto", offload: false },
    // Graph memory and activations handed to the KV cache: 16 GB cards.
    { name: "tight", eager: true, batched: C.tightBatchedTokens, seqsCap: 16, ctxCap: 32768, bar: TWO_SHORT_REQUESTS, kvDtype: "auto", offload: false },
    // Half-size KV cache instead of offloading weights, where the card has fp8.
    { name: "tight-fp8", eager: true, batched: C.tightBatchedTokens, seqsCap: 16, ctxCap: 32768, bar: TWO_SHORT_REQUESTS, kvDtype: "fp8", offload: false },
    // Weights in host RAM, read over PCIe every step: 12 GB cards. Short context, few sequences.
    { name: "offload", eager: true, batched: C.tightBatchedTokens, seqsCap: 4, ctxCap: 8192, bar: TWO_SHORT_REQUESTS, kvDtype: "auto", offload: true },
];

interface Trial {
    readonly profile: Profile;
    readonly knobs: Knobs;
    readonly fit: Fit;
    readonly accepted: boolean;
}

function trial(card: Card, o: PlanOptions, p: Profile): Trial {
    const eager = o.enforceEager ?? p.eager;
    const kvDtype = o.kvCacheDtype ?? p.kvDtype;
    const seqs = o.maxNumSeqs ?? p.seqsCap;
    // vLLM requires batched >= seqs; an explicit large maxNumSeqs lifts the automatic value.
    const batched = o.maxNumBatchedTokens ?? Math.max(p.batched, seqs);
    const util = o.gpuMemoryUtilization ?? autoUtilization(card, eager);
    const offload =
        o.cpuOffloadGb ??
        (p.offload
            ? o.maxModelLen === null
                ? autoOffload(card, { util, eager, batched, seqs, kvDtype }, p.bar.maxModelLen, p.bar.requests)
                : autoOffload(card, { util, eager, batched, seqs, kvDtype }, o.maxModelLen, 1)
            : 0);
    const knobs: Knobs = { util, offload, eager, batched, seqs, kvDtype };
    const f = fit(card, knobs);
    // An explicit context must fit; the roomy profile must also clear its own bar, or graphs crowd out KV.
    // The profile's bar is what makes it worth its cost (vLLM's own count of blocks); an explicit context must
    // fit one request with the safety margin, since vLLM refuses a plan that cannot serve one.
    const fits = (blocks: number, len: number, requests: number): boolean => blocks >= requests * kvBlocksPerRequest(len, batched);
    const clearsBar = fits(f.blocks, p.bar.maxModelLen, p.bar.requests);
    const accepted =
        offload <= GPT_OSS_20B.weightsGiB &&
        (o.maxModelLen === null
            ? clearsBar && fits(f.safeBlocks, p.bar.maxModelLen, 1)
            : fits(f.safeBlocks, o.maxModelLen, 1) && (p.name !== "roomy" || clearsBar));
    return { profile: p, knobs, fit: f, accepted };
}

function profileAllowed(p: Profile, o: PlanOptions, card: Card, backend: AttentionBackend): boolean {
    // fp8 only where the card has it and nothing else would do; never when the user chose a dtype.
    if (p.name === "tight-fp8") return o.kvCacheDtype === null && supportsFp8KvCache(card.cc) && backendProblem(backend, card.cc) === null;
    return true;
}

function autoContext(f: Fit, batched: number, ctxCap: number): number {
    const ladder = C.contextLadder.filter((l) => l <= ctxCap);
    // Room for two full-length requests, so one long chat does not block the next; never less than one.
    return (
        ladder.find((l) => f.blocks >= 2 * kvBlocksPerRequest(l, batched) && f.safeBlocks >= kvBlocksPerRequest(l, batched)) ??
        ladder.find((l) => f.safeBlocks >= kvBlocksPerRequest(l, batched)) ??
        Math.min(...ladder)
    );
}

/** When nothing fits: name every explicit option that stands in the way, with what would fit. */
function diagnose(card: Card, o: PlanOptions, t: Trial): string[] {
    const errors: string[] = [];
    const { knobs: k, fit: f } = t;
    const total = gib(card.totalMiB);
    const needTokens = o.maxModelLen ?? Math.min(...C.contextLadder);
    const kvNeed = kvNeedGiB(needTokens, 1, k.batched, k.kvDtype);
    const room = f.kv; // GiB left for the KV cache
    const share = `vLLM's share of ${q(card.name)} is ${fmt(f.budget)} GiB (gpu.gpuMemoryUtilization ${k.util} of ${fmt(total)} GiB)`;
    const keep = f.budget - f.activations - kvNeed; // weights that may stay on the GPU
    let offloadNeeded = 0;
    while (offloadNeeded <= GPT_OSS_20B.weightsGiB && weightsOnGpuGiB(offloadNeeded, k.kvDtype) > keep) offloadNeeded++;
    if (o.cpuOffloadGb !== null && room < kvNeed && offloadNeeded > o.cpuOffloadGb) {
        const ctx = o.maxModelLen !== null ? `${fmt(kvNeed)} GiB of KV cache for gpu.maxModelLen ${o.maxModelLen}` : `the shortest context (${needTokens} tokens)`;
        errors.push(
            `gpu.cpuOffloadGb: ${o.cpuOffloadGb} keeps ${fmt(f.weights)} GiB of weights on the GPU, but ${share}, ` +
                `which must also hold ${fmt(f.activations)} GiB of activations and ${ctx}: ` +
                (offloadNeeded <= GPT_OSS_20B.weightsGiB ? `offload at least ${offloadNeeded} GiB, or leave it unset` : `no offload is enough`),
        );
    }
    if (o.maxModelLen !== null && room < kvNeed) {
        let fits = Math.floor(o.maxModelLen / 1024) * 1024;
        while (fits >= 1024 && f.safeBlocks < kvBlocksPerRequest(fits, k.batched)) fits -= 1024;
        errors.push(
            `gpu.maxModelLen: ${o.maxModelLen} needs ${fmt(kvNeed)} GiB of KV cache, but ${q(card.name)} has ${fmt(Math.max(0, room))} GiB left ` +
                `after ${fmt(f.weights)} GiB of weights (gpu.cpuOffloadGb ${k.offload}) and ${fmt(f.activations)} GiB of activations: ` +
                (fits >= 256 ? `use ${fits} or less` : `no context fits`) +
                (o.cpuOffloadGb !== null ? `, or offload more weights` : ``),
        );
    }
    if (o.gpuMemoryUtilization !== null && room < kvNeed) {
        const best = autoUtilization(card, k.eager);
        if (o.gpuMemoryUtilization < best) {
            errors.push(
                `gpu.gpuMemoryUtilization: ${o.gpuMemoryUtilization} gives vLLM ${fmt(f.budget)} GiB, less than ${fmt(f.weights)} GiB of weights + ` +
                    `${fmt(f.activations)} GiB of activations + ${fmt(kvNeed)} GiB of KV cache: raise it to ${best} or leave it unset`,
            );
        }
    }
    if (o.maxNumBatchedTokens !== null && room < kvNeed && o.maxNumBatchedTokens > C.tightBatchedTokens) {
        errors.push(
            `gpu.maxNumBatchedTokens: ${o.maxNumBatchedTokens} needs ${fmt(f.activations)} GiB of activations, more than ${q(card.name)} can spare: ` +
                `use ${C.tightBatchedTokens} or leave it unset`,
        );
    }
    if (errors.length === 0) {
        errors.push(
            `gpu: ${q(card.name)} (${card.totalMiB} MiB, ${card.freeMiB} MiB free) is too small for gpt-oss-20b: ` +
                `even with ${fmt(k.offload)} GiB of weights offloaded, ${share} and cannot hold a ${needTokens}-token context`,
        );
    }
    return errors;
}

/**
 * Plans vLLM's memory knobs for gpt-oss-20b. Every problem is reported at once, each prefixed by its option path.
 *
 * The steps: check the options against the schema and the card; try the profiles, each trading speed for
 * memory (CUDA graphs, then eager, then an fp8 KV cache, then weights offloaded to host RAM), until the
 * weights, activations and a KV cache fit; choose the context and the sequences from that KV cache; explain.
 */
export function plan(input: PlanInput): PlanResult {
    const o: PlanOptions = { ...AUTO_OPTIONS, ...input.options };
    const wsl = input.wsl ?? true;
    // The schema's bounds and the rules between these options (config/schema.ts).
    const optionErrors = gpuOptionProblems(o);
    const errors = [...optionErrors];
    const card = cardToPlanFor(input.gpu, o.tier, errors);
    if (card === null) return { ok: false, errors };
    const backend = o.attentionBackend ?? autoAttentionBackend(card.cc);
    errors.push(...cardProblems(card, o));
    if (optionErrors.length > 0) return { ok: false, errors };
    errors.push(...utilizationProblems(card, o));

    const chosen = fitProfile(card, o, backend);
    if (!chosen.accepted) return { ok: false, errors: [...errors, ...diagnose(card, o, chosen)] };
    const sized = chooseContext(card, o, chosen);
    errors.push(...offloadProblems(o, sized.knobs, wsl));
    if (errors.length > 0) return { ok: false, errors };
    return { ok: true, plan: planFrom(card, o, backend, sized, wsl) };
}

/** The card the plan is for: the detected one, or a tier's preset; null when there is none to plan for (errors say why). */
function cardToPlanFor(gpu: PlanGpu | null, tier: Tier, errors: string[]): Card | null {
    if (gpu !== null) {
        const ccProblem = computeCapabilityProblem(gpu.name, gpu.computeCap);
        if (ccProblem !== null) {
            errors.push(ccProblem);
            return null;
        }
    }
    return TIERS.includes(tier) ? resolveCard(gpu, tier, errors) : null;
}

/** Explicit options this card cannot run: an attention backend, an fp8 KV cache. */
function cardProblems(card: Card, o: PlanOptions): string[] {
    const errors: string[] = [];
    if (o.attentionBackend !== null) {
        const problem = backendProblem(o.attentionBackend, card.cc);
        if (problem !== null) errors.push(`gpu.attentionBackend: ${q(o.attentionBackend)} ${problem}`);
    }
    if (o.kvCacheDtype === "fp8" && !supportsFp8KvCache(card.cc)) {
        errors.push(
            `gpu.kvCacheDtype: "fp8" needs fp8 support (sm_89 or newer: Ada, Hopper, Blackwell); ${q(card.name)} is ${smName(card.cc)}: use "auto"`,
        );
    }
    return errors;
}

/** An explicit utilization above what vLLM's startup check allows: vLLM would refuse to start. */
function utilizationProblems(card: Card, o: PlanOptions): string[] {
    if (o.gpuMemoryUtilization === null) return [];
    const eager = o.enforceEager ?? false;
    const cap = startupUtilizationCap(card, eager, 0);
    if (o.gpuMemoryUtilization <= cap) return [];
    const total = gib(card.totalMiB);
    return [
        `gpu.gpuMemoryUtilization: ${o.gpuMemoryUtilization} asks for ${fmt(o.gpuMemoryUtilization * total)} GiB of ${q(card.name)}, ` +
            `but only ${fmt(gib(card.freeMiB) - C.cudaContextGiB - graphsGiB(eager))} GiB is free once vLLM's CUDA context` +
            (eager ? `` : ` and CUDA graphs`) +
            ` are up (others hold ${fmt(total - gib(card.freeMiB))} GiB): vLLM refuses to start below its share; use ${cap} or less`,
    ];
}

/** The first profile this card allows whose weights, activations and KV cache fit; else the last one tried, not accepted. */
function fitProfile(card: Card, o: PlanOptions, backend: AttentionBackend): Trial {
    const trials = PROFILES.filter((p) => profileAllowed(p, o, card, backend)).map((p) => trial(card, o, p));
    return trials.find((t) => t.accepted) ?? trials[trials.length - 1];
}

/** The knobs once the context and the sequence count are settled, and the memory they leave. */
interface Sized {
    readonly knobs: Knobs;
    readonly maxModelLen: number;
    readonly fit: Fit;
    readonly kvTokens: number;
}

/** Settles the context and then the sequence count from the chosen profile's KV cache, and sizes the final breakdown with them. */
function chooseContext(card: Card, o: PlanOptions, chosen: Trial): Sized {
    const p = chosen.profile;
    const maxModelLen = o.maxModelLen ?? autoContext(chosen.fit, chosen.knobs.batched, p.ctxCap);
    const seqs =
        o.maxNumSeqs ??
        Math.max(1, Math.min(p.seqsCap, pow2floor(kvTokensFor(chosen.fit.blocks, maxModelLen, chosen.knobs.batched) / C.tokensPerSeq)));
    const knobs: Knobs = { ...chosen.knobs, seqs };
    const f = fit(card, knobs);
    return { knobs, maxModelLen, fit: f, kvTokens: kvTokensFor(f.blocks, maxModelLen, knobs.batched) };
}

/** CUDA graphs asked for beside offloaded weights where memory cannot be pinned. */
function offloadProblems(o: PlanOptions, knobs: Knobs, wsl: boolean): string[] {
    if (!(wsl && knobs.offload > 0 && o.enforceEager === false)) return [];
    return [
        `gpu.enforceEager: false with ${knobs.offload} GiB of weights offloaded under WSL2: CUDA graphs capture host-to-GPU copies only from pinned memory, ` +
            `which WSL2 withholds by default; leave it unset or set it to true`,
    ];
}

/** Why the automatic choices came out as they did. */
function notesFor(card: Card, o: PlanOptions, backend: AttentionBackend, knobs: Knobs): string[] {
    const notes: string[] = [];
    if (card.source === "tier") {
        notes.push(
            `planned for the ${o.tier} tier: ${card.totalMiB} MiB with ${C.displayReserveMiB} MiB assumed held by the Windows desktop` +
                (card.assumedCc ? `; no card detected, compute capability assumed ${smName(card.cc)} (Ampere)` : ``),
        );
    }
    if (o.gpuMemoryUtilization === null) {
        notes.push(
            `gpu-memory-utilization ${knobs.util}: what free memory allows after vLLM's CUDA context` +
                (knobs.eager ? `` : `, CUDA graphs`) +
                ` and ${C.safetyGiB} GiB of slack (vLLM refuses to start when free memory is below its share)`,
        );
    }
    if (o.cpuOffloadGb === null && knobs.offload > 0) {
        notes.push(`cpu-offload-gb ${knobs.offload}: ${GPT_OSS_20B.weightsGiB} GiB of weights do not fit beside a KV cache on this card`);
    }
    if (o.enforceEager === null && knobs.eager) {
        notes.push(
            knobs.offload > 0
                ? `enforce-eager: offloaded weights are copied from host memory each step, which CUDA graphs cannot capture without pinned memory`
                : `enforce-eager: VRAM is tight, so the ~${C.cudaGraphsGiB} GiB of CUDA graphs goes to the KV cache instead`,
        );
    }
    if (o.kvCacheDtype === null && knobs.kvDtype === "fp8") {
        notes.push(`kv-cache-dtype fp8: the bf16 cache does not fit the context without offloading weights; fp8 halves it (${smName(card.cc)} has fp8)`);
    }
    if (o.attentionBackend === null) {
        notes.push(
            backend === "TRITON_ATTN"
                ? `attention backend TRITON_ATTN: FlashAttention supports gpt-oss's attention sinks only as FA3 on Hopper`
                : backend === "FLASH_ATTN"
                  ? `attention backend FLASH_ATTN: FlashAttention 3 handles gpt-oss's attention sinks on Hopper`
                  : `attention backend FLASHINFER: TRT-LLM attention kernels handle the sinks on sm_100`,
        );
    }
    return notes;
}

/** What the plan costs: offloading's speed and WSL2's pinned memory, and a context only one request can fill. */
function warningsFor(o: PlanOptions, sized: Sized, speed: OffloadSpeed | null, wsl: boolean): string[] {
    const warnings: string[] = [];
    if (speed !== null) {
        warnings.push(
            `cpu offload keeps ${fmt(speed.offloadedGiB)} GiB of weights in host RAM, read over PCIe where the GPU needs them: a decode step reads ` +
                `the offloaded experts it routes to, about ${fmt(speed.oneRequestGiB)} GiB for one request (4 of 32 experts) and up to ` +
                `${fmt(speed.offloadedGiB)} GiB once 8 requests run together; at ~${C.pcieGiBps} GiB/s (PCIe 4.0 x16; half that on an x8 card) that adds ` +
                `about ${speed.oneRequestMs} ms per token for one request (at most ~${Math.floor(1000 / speed.oneRequestMs)} tokens/s) and up to ${speed.fullMs} ms per step under load`,
        );
        if (wsl) {
            warnings.push(
                `cpu offload under WSL2 needs pinned memory: vLLM disables it when it detects WSL and its V1 engine then refuses ` +
                    `--cpu-offload-gb ("V1 CPU offloading requires uva (pin memory) support"); releases with vllm-project/vllm#41496 ` +
                    `accept VLLM_WSL2_ENABLE_PIN_MEMORY=1 (WSL2 kernel 4.19.121+), vLLM 0.11.x has no such switch`,
            );
        }
    }
    if (o.maxModelLen !== null && sized.kvTokens < 2 * sized.maxModelLen) {
        warnings.push(`the KV cache holds ${sized.kvTokens} tokens: one ${sized.maxModelLen}-token request at a time runs at full length`);
    }
    return warnings;
}

function planFrom(card: Card, o: PlanOptions, backend: AttentionBackend, sized: Sized, wsl: boolean): Plan {
    const { knobs, fit: f } = sized;
    const requiresPinnedMemory = knobs.offload > 0;
    const speed = requiresPinnedMemory ? offloadSpeed(knobs.offload) : null;
    const total = gib(card.totalMiB);
    return {
        model: GPT_OSS_20B.repo,
        tier: o.tier,
        gpu: {
            name: card.name,
            memoryTotalMiB: card.totalMiB,
            memoryFreeMiB: card.freeMiB,
            computeCap: `${card.cc.major}.${card.cc.minor}`,
            source: card.source,
        },
        gpuMemoryUtilization: knobs.util,
        cpuOffloadGb: knobs.offload,
        maxModelLen: sized.maxModelLen,
        maxNumSeqs: knobs.seqs,
        maxNumBatchedTokens: knobs.batched,
        enforceEager: knobs.eager,
        attentionBackend: backend,
        kvCacheDtype: knobs.kvDtype,
        requiresPinnedMemory,
        memory: {
            totalGiB: round2(total),
            othersGiB: round2(total - gib(card.freeMiB)),
            budgetGiB: round2(f.budget),
            weightsGiB: round2(f.weights),
            offloadedGiB: round2(knobs.offload),
            activationsGiB: round2(f.activations),
            kvCacheGiB: round2(f.kv),
            kvCacheTokens: sized.kvTokens,
            cudaGraphsGiB: round2(f.graphs),
            cudaContextGiB: C.cudaContextGiB,
            headroomGiB: round2(f.headroom),
        },
        hostMemoryGiB: round2(C.hostBaseGiB + C.hostPerOffloadedGiB * knobs.offload),
        offloadSpeed: speed,
        notes: notesFor(card, o, backend, knobs),
        warnings: warningsFor(o, sized, speed, wsl),
    };
}
