import test from "ava";
import { Plan, PlanGpu, PlanInput, PlanOptions, kvBytesPerToken, plan, weightsOnGpuGiB } from "../../components/plan/planner";
import { card, planned } from "../helpers/plans";

function errorsOf(input: PlanInput): string[] {
    const r = plan(input);
    if (r.ok) throw new Error(`planned: ${JSON.stringify(r.plan)}`);
    return r.errors;
}

const RTX3060 = card("rtx3060.csv");
const RTX4060TI = card("rtx4060ti.csv");
const RTX4090 = card("rtx4090.csv");
const H100 = card("h100-real.csv");

test("sizes the KV cache at 24 KiB per token: 12 full-attention layers x K,V x 8 heads x 64 dims x 2 bytes", (t) => {
    t.is(kvBytesPerToken("auto"), 12 * 2 * 8 * 64 * 2);
    t.is(kvBytesPerToken("auto"), 24 * 1024);
    t.is(kvBytesPerToken("fp8"), 12 * 1024);
});

interface Expect {
    readonly offload: "none" | "some";
    readonly eager: boolean;
    readonly ctx: [number, number];
    readonly seqs: [number, number];
    readonly backend: Plan["attentionBackend"];
    readonly kv?: Plan["kvCacheDtype"];
}

const table: Array<[string, string, Expect]> = [
    ["RTX 3060 12 GB", "rtx3060.csv", { offload: "some", eager: true, ctx: [8192, 8192], seqs: [1, 4], backend: "TRITON_ATTN" }],
    ["RTX 4070 12 GB", "rtx4070.csv", { offload: "some", eager: true, ctx: [8192, 8192], seqs: [1, 4], backend: "TRITON_ATTN" }],
    ["RTX 4060 Ti 16 GB", "rtx4060ti.csv", { offload: "none", eager: true, ctx: [8192, 8192], seqs: [2, 16], backend: "TRITON_ATTN", kv: "fp8" }],
    ["RTX 4080 16 GB", "rtx4080.csv", { offload: "some", eager: true, ctx: [8192, 8192], seqs: [1, 4], backend: "TRITON_ATTN" }],
    ["RTX 3090 24 GB", "rtx3090.csv", { offload: "none", eager: false, ctx: [32768, 32768], seqs: [16, 256], backend: "TRITON_ATTN" }],
    ["RTX 4090 24 GB", "rtx4090.csv", { offload: "none", eager: false, ctx: [32768, 32768], seqs: [16, 256], backend: "TRITON_ATTN" }],
    ["RTX 5090 32 GB", "rtx5090.csv", { offload: "none", eager: false, ctx: [32768, 32768], seqs: [64, 256], backend: "TRITON_ATTN" }],
    ["H100 80 GB (real capture)", "h100-real.csv", { offload: "none", eager: false, ctx: [32768, 32768], seqs: [256, 256], backend: "FLASH_ATTN" }],
    ["H200 141 GB (real capture)", "h200-real.csv", { offload: "none", eager: false, ctx: [32768, 32768], seqs: [256, 256], backend: "FLASH_ATTN" }],
];

for (const [name, file, e] of table) {
    test(`plans the ${name}: offload ${e.offload}, eager ${e.eager}, ${e.ctx.join("-")} context, ${e.backend}`, (t) => {
        const p = planned({ gpu: card(file) });
        t.is(p.cpuOffloadGb > 0, e.offload === "some");
        t.is(p.requiresPinnedMemory, e.offload === "some");
        t.is(p.enforceEager, e.eager);
        t.true(p.maxModelLen >= e.ctx[0] && p.maxModelLen <= e.ctx[1], `maxModelLen ${p.maxModelLen}`);
        t.true(p.maxNumSeqs >= e.seqs[0] && p.maxNumSeqs <= e.seqs[1], `maxNumSeqs ${p.maxNumSeqs}`);
        t.is(p.attentionBackend, e.backend);
        t.is(p.kvCacheDtype, e.kv ?? "auto");
        // The plan must be startable: vLLM refuses a share above free memory, and more than 0.95 is never chosen.
        t.true(p.gpuMemoryUtilization > 0 && p.gpuMemoryUtilization <= 0.95);
        t.true(p.memory.headroomGiB >= 0.25, `headroom ${p.memory.headroomGiB}`);
        t.true(p.maxNumBatchedTokens >= p.maxNumSeqs);
        // Whatever the card, the KV cache must hold at least one full-length request.
        t.true(p.memory.kvCacheTokens >= p.maxModelLen);
        t.is(p.memory.weightsGiB, Math.round(weightsOnGpuGiB(p.cpuOffloadGb, p.kvCacheDtype) * 100) / 100);
    });
}

test("rejects a T4 because sm_75 lacks the MXFP4 path", (t) => {
    const errors = errorsOf({ gpu: card("t4.csv") });
    t.is(errors.length, 1);
    t.regex(errors[0], /^gpu: "Tesla T4" has compute capability 7\.5 \(sm_75\); gpt-oss-20b needs sm_80 or newer/);
    t.regex(errors[0], /MXFP4/);
});

test("rejects an RTX 2080 Ti because Turing (sm_75) predates the MXFP4 Marlin kernels", (t) => {
    t.regex(errorsOf({ gpu: card("rtx2080ti.csv") })[0], /"NVIDIA GeForce RTX 2080 Ti" has compute capability 7\.5 \(sm_75\)/);
});

test("rejects a compute capability that is not MAJOR.MINOR", (t) => {
    t.regex(errorsOf({ gpu: { ...RTX4090, computeCap: "8" } })[0], /^gpu: .* reports compute capability "8", which is not MAJOR\.MINOR/);
});

test("leaves the H100 at 0.95 utilization even though more is free", (t) => {
    const p = planned({ gpu: H100 });
    t.is(p.gpuMemoryUtilization, 0.95);
    t.is(p.attentionBackend, "FLASH_ATTN");
});

test("is a pure function: the same input gives the same plan", (t) => {
    t.deepEqual(plan({ gpu: RTX3060 }), plan({ gpu: RTX3060 }));
});

test("asks for host RAM for vLLM itself plus 1.9 times what it offloads", (t) => {
    t.is(planned({ gpu: RTX4090 }).hostMemoryGiB, 5);
    const p = planned({ gpu: RTX3060 });
    t.true(p.cpuOffloadGb > 0);
    t.is(p.hostMemoryGiB, Math.round((5 + 1.9 * p.cpuOffloadGb) * 100) / 100);
});

test("warns that offloading under WSL2 needs pinned memory", (t) => {
    const p = planned({ gpu: RTX3060 });
    t.true(p.warnings.some((w) => w.includes("VLLM_WSL2_ENABLE_PIN_MEMORY=1")));
});

test("does not warn about WSL2 pinned memory on native Linux", (t) => {
    const p = planned({ gpu: RTX3060, wsl: false });
    t.true(p.requiresPinnedMemory);
    t.false(p.warnings.some((w) => w.includes("VLLM_WSL2_ENABLE_PIN_MEMORY")));
});

// Tiers

test("plans a named tier without a card, assuming Ampere", (t) => {
    const p = planned({ gpu: null, options: { tier: "16gb" } });
    t.is(p.gpu.source, "tier");
    t.is(p.gpu.memoryTotalMiB, 16376);
    t.is(p.gpu.computeCap, "8.6");
    // Ampere has no fp8 KV cache, and bf16 holds two 8192-token requests only with a GiB offloaded.
    t.is(p.cpuOffloadGb, 1);
    t.true(p.notes.some((n) => n.includes("compute capability assumed sm_86")));
});

const tiers: Array<[PlanOptions["tier"], boolean, boolean]> = [
    ["12gb", true, true],
    ["16gb", true, true],
    ["24gb", false, false],
];
for (const [tier, offloads, eager] of tiers) {
    test(`plans the ${tier} tier as a card of that size: offload ${offloads}, eager ${eager}`, (t) => {
        const p = planned({ gpu: null, options: { tier } });
        t.is(p.cpuOffloadGb > 0, offloads);
        t.is(p.enforceEager, eager);
    });
}

test("plans a smaller tier on a bigger card, keeping the card's compute capability", (t) => {
    const p = planned({ gpu: H100, options: { tier: "24gb" } });
    t.is(p.gpu.memoryTotalMiB, 24564);
    t.is(p.gpu.name, "NVIDIA H100 80GB HBM3");
    t.is(p.attentionBackend, "FLASH_ATTN");
});

test("rejects a tier larger than the detected card", (t) => {
    t.deepEqual(errorsOf({ gpu: RTX3060, options: { tier: "24gb" } }), [
        'gpu.tier: "24gb" plans for 24564 MiB, but "NVIDIA GeForce RTX 3060" has 12288 MiB: use "auto" or a smaller tier',
    ]);
});

test("rejects the auto tier when no GPU was detected", (t) => {
    t.regex(errorsOf({ gpu: null })[0], /^gpu\.tier: "auto" needs a detected GPU/);
});

test("rejects an unknown tier", (t) => {
    t.regex(errorsOf({ gpu: RTX4090, options: { tier: "32gb" as PlanOptions["tier"] } })[0], /^gpu\.tier: "32gb" is not one of/);
});

// Explicit overrides win when they fit

test("keeps explicit overrides that fit", (t) => {
    const p = planned({
        gpu: RTX4090,
        options: { maxModelLen: 65536, maxNumSeqs: 8, maxNumBatchedTokens: 4096, enforceEager: true, gpuMemoryUtilization: 0.85 },
    });
    t.like(p, { maxModelLen: 65536, maxNumSeqs: 8, maxNumBatchedTokens: 4096, enforceEager: true, gpuMemoryUtilization: 0.85, cpuOffloadGb: 0 });
    t.false(p.notes.some((n) => n.startsWith("gpu-memory-utilization")));
});

test("serves the full 131072-token context on a 24 GB card", (t) => {
    const p = planned({ gpu: RTX4090, options: { maxModelLen: 131072 } });
    t.is(p.maxModelLen, 131072);
    t.is(p.cpuOffloadGb, 0);
});

test("offloads more weights for a long requested context on a 12 GB card", (t) => {
    const short = planned({ gpu: RTX3060 });
    const long = planned({ gpu: RTX3060, options: { maxModelLen: 131072 } });
    t.is(long.maxModelLen, 131072);
    t.true(long.cpuOffloadGb > short.cpuOffloadGb);
});

test("switches to an fp8 KV cache on Ada when bf16 would not hold two 8192-token requests without offloading", (t) => {
    const p = planned({ gpu: RTX4060TI });
    t.is(p.kvCacheDtype, "fp8");
    t.is(p.cpuOffloadGb, 0);
    t.true(p.notes.some((n) => n.startsWith("kv-cache-dtype fp8")));
});

test("offloads instead of using fp8 on Ampere, which has no fp8", (t) => {
    const p = planned({ gpu: null, options: { tier: "16gb", maxModelLen: 65536 } });
    t.is(p.kvCacheDtype, "auto");
    t.true(p.cpuOffloadGb > 0);
});

test("accepts an explicit fp8 KV cache on Ada", (t) => {
    t.is(planned({ gpu: RTX4090, options: { kvCacheDtype: "fp8" } }).kvCacheDtype, "fp8");
});

test("accepts FLASH_ATTN on Hopper", (t) => {
    t.is(planned({ gpu: H100, options: { attentionBackend: "FLASH_ATTN" } }).attentionBackend, "FLASH_ATTN");
});

test("allows CUDA graphs with offload on native Linux, where memory is pinned", (t) => {
    t.false(planned({ gpu: RTX3060, wsl: false, options: { enforceEager: false } }).enforceEager);
});

// Override errors: one test per branch, each naming the option and quoting the value

const rangeErrors: Array<[string, Partial<PlanOptions>, RegExp]> = [
    ["a utilization above 1", { gpuMemoryUtilization: 1.2 }, /^gpu\.gpuMemoryUtilization: 1\.2 is outside \(0, 1\]/],
    ["a utilization of 0", { gpuMemoryUtilization: 0 }, /^gpu\.gpuMemoryUtilization: 0 is outside \(0, 1\]/],
    ["a negative offload", { cpuOffloadGb: -1 }, /^gpu\.cpuOffloadGb: -1 must be a number of GiB, 0 or more/],
    ["an offload larger than the weights", { cpuOffloadGb: 20 }, /^gpu\.cpuOffloadGb: 20 is more than the 13\.8 GiB of weights/],
    ["a context beyond 131072", { maxModelLen: 262144 }, /^gpu\.maxModelLen: 262144 must be a whole number from 256 to 131072/],
    ["a fractional context", { maxModelLen: 4096.5 }, /^gpu\.maxModelLen: 4096\.5 must be a whole number/],
    ["zero sequences", { maxNumSeqs: 0 }, /^gpu\.maxNumSeqs: 0 must be a whole number from 1 to 1024/],
    ["a batch below 16 tokens", { maxNumBatchedTokens: 8 }, /^gpu\.maxNumBatchedTokens: 8 must be a whole number, 16 or more/],
    ["fewer batched tokens than sequences", { maxNumBatchedTokens: 64, maxNumSeqs: 128 }, /^gpu\.maxNumBatchedTokens: 64 is less than gpu\.maxNumSeqs 128/],
    ["an unknown attention backend", { attentionBackend: "XFORMERS" as PlanOptions["attentionBackend"] }, /^gpu\.attentionBackend: "XFORMERS" is not one of/],
    ["an unknown KV cache dtype", { kvCacheDtype: "int8" as PlanOptions["kvCacheDtype"] }, /^gpu\.kvCacheDtype: "int8" is not one of/],
];
for (const [what, options, expected] of rangeErrors) {
    test(`rejects ${what}`, (t) => {
        const errors = errorsOf({ gpu: RTX4090, options });
        t.is(errors.length, 1, errors.join("\n"));
        t.regex(errors[0], expected);
    });
}

test("rejects FLASH_ATTN on Ada because only FlashAttention 3 on Hopper handles the attention sinks", (t) => {
    t.deepEqual(errorsOf({ gpu: RTX4090, options: { attentionBackend: "FLASH_ATTN" } }), [
        `gpu.attentionBackend: "FLASH_ATTN" needs FlashAttention 3 for gpt-oss's attention sinks, which vLLM runs only on Hopper (sm_90); this card is sm_89: use "TRITON_ATTN"`,
    ]);
});

test("rejects FLASHINFER on Hopper because its sink kernels are sm_100 only", (t) => {
    t.regex(errorsOf({ gpu: H100, options: { attentionBackend: "FLASHINFER" } })[0], /^gpu\.attentionBackend: "FLASHINFER" .* sm_100; this card is sm_90: use "FLASH_ATTN"/);
});

test("rejects an fp8 KV cache on Ampere (sm_86)", (t) => {
    t.regex(errorsOf({ gpu: RTX3060, options: { kvCacheDtype: "fp8" } })[0], /^gpu\.kvCacheDtype: "fp8" needs fp8 support \(sm_89 or newer.*is sm_86/);
});

test("rejects a utilization above what free memory lets vLLM start with", (t) => {
    const errors = errorsOf({ gpu: RTX4090, options: { gpuMemoryUtilization: 0.99 } });
    t.is(errors.length, 1);
    t.regex(errors[0], /^gpu\.gpuMemoryUtilization: 0\.99 asks for 23\.75 GiB of "NVIDIA GeForce RTX 4090", but only .* use 0\.9\d or less$/);
});

test("rejects maxModelLen 131072 on a 12 GB card with cpuOffloadGb 0, naming both options", (t) => {
    const errors = errorsOf({ gpu: RTX3060, options: { maxModelLen: 131072, cpuOffloadGb: 0 } });
    t.is(errors.length, 2);
    t.regex(errors[0], /^gpu\.cpuOffloadGb: 0 keeps 13\.80 GiB of weights on the GPU, .* offload at least \d+ GiB/);
    t.regex(errors[1], /^gpu\.maxModelLen: 131072 needs 3\.\d\d GiB of KV cache, .*\(gpu\.cpuOffloadGb 0\)/);
});

test("rejects an explicit offload too small for the card", (t) => {
    const errors = errorsOf({ gpu: RTX3060, options: { cpuOffloadGb: 1 } });
    t.is(errors.length, 1);
    t.regex(errors[0], /^gpu\.cpuOffloadGb: 1 keeps 12\.78 GiB of weights .* offload at least 4 GiB, or leave it unset$/);
});

test("rejects a context that does not fit beside an explicit offload, suggesting one that does", (t) => {
    const errors = errorsOf({ gpu: RTX3060, options: { cpuOffloadGb: 4, maxModelLen: 131072 } });
    t.is(errors.length, 2);
    t.regex(errors[1], /^gpu\.maxModelLen: 131072 needs 3\.\d\d GiB .* use \d+ or less, or offload more weights$/);
});

test("rejects a utilization too low for the weights when offloading is ruled out", (t) => {
    const errors = errorsOf({ gpu: RTX4090, options: { gpuMemoryUtilization: 0.5, cpuOffloadGb: 0 } });
    t.true(errors.some((e) => /^gpu\.gpuMemoryUtilization: 0\.5 gives vLLM 11\.99 GiB, .* raise it to 0\.\d+ or leave it unset$/.test(e)), errors.join("\n"));
});

test("rejects a batch size whose activations crowd out the KV cache", (t) => {
    const errors = errorsOf({ gpu: RTX3060, options: { cpuOffloadGb: 4, maxNumBatchedTokens: 16384 } });
    t.true(errors.some((e) => /^gpu\.maxNumBatchedTokens: 16384 needs \d+\.\d+ GiB of activations/.test(e)), errors.join("\n"));
});

test("rejects enforceEager false with offloading under WSL2", (t) => {
    t.regex(errorsOf({ gpu: RTX3060, options: { enforceEager: false } })[0], /^gpu\.enforceEager: false with \d+ GiB of weights offloaded under WSL2/);
});

test("rejects a 2 GB card that cannot hold the model even with every weight offloaded", (t) => {
    const tiny: PlanGpu = { name: "NVIDIA RTX A500 Embedded", memoryTotalMiB: 2048, memoryFreeMiB: 1900, computeCap: "8.6" };
    t.regex(errorsOf({ gpu: tiny })[0], /^gpu: "NVIDIA RTX A500 Embedded" \(2048 MiB, 1900 MiB free\) is too small for gpt-oss-20b/);
});

test("reports every problem at once", (t) => {
    const errors = errorsOf({
        gpu: RTX4090,
        options: { gpuMemoryUtilization: 1.5, cpuOffloadGb: -2, maxModelLen: 1, maxNumSeqs: 2000, kvCacheDtype: "int8" as PlanOptions["kvCacheDtype"] },
    });
    t.deepEqual(
        errors.map((e) => e.split(":")[0]),
        ["gpu.gpuMemoryUtilization", "gpu.cpuOffloadGb", "gpu.maxModelLen", "gpu.maxNumSeqs", "gpu.kvCacheDtype"],
    );
});
