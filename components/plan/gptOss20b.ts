// The model the stack serves, as the planner and the config schema both need it: the schema bounds
// the options by it (the longest context, the weights one can offload), the planner sizes memory by it.

/** The model, from openai/gpt-oss-20b's config.json and vLLM's own load log. */
export const GPT_OSS_20B = {
    repo: "openai/gpt-oss-20b",
    /** max_position_embeddings; vLLM refuses a longer --max-model-len. */
    maxModelLen: 131072,
    /**
     * GPU memory once loaded: MXFP4 MoE experts (Marlin layout) + bf16 attention, router, embeddings and
     * lm_head. "Model loading took 13.8 GiB": card-24gb-rtx4090.json.
     */
    weightsGiB: 13.8,
    /** 24 layers alternating sliding (even) and full (odd) attention. */
    fullAttentionLayers: 12,
    slidingAttentionLayers: 12,
    slidingWindow: 128,
    numKvHeads: 8,
    headDim: 64,
    vocabSize: 201088,
    /** The three model-*.safetensors files (4.79 + 4.80 + 4.17 GB); vLLM skips original/ and metal/. */
    downloadBytes: 13.8e9,
} as const;
