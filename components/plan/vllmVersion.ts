// What the pinned vLLM release can do, where the stack's output depends on it. Each threshold was read
// from the real wheels (scripts/vllm-flags.sh keeps the evidence under tests/fixtures/vllm).

/** "0.10.1+gptoss" -> [0, 10, 1]; local and pre-release suffixes are ignored. */
export function versionParts(v: string): number[] {
    return v.split(/[+-]/)[0].split(".").map((p) => parseInt(p, 10) || 0);
}

export function atLeast(version: string, minimum: string): boolean {
    const a = versionParts(version);
    const b = versionParts(minimum);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
        const d = (a[i] ?? 0) - (b[i] ?? 0);
        if (d !== 0) return d > 0;
    }
    return true;
}

export const features = {
    /**
     * `--attention-backend` (vllm#26315). Before it, the VLLM_ATTENTION_BACKEND variable chose the
     * backend; it was deprecated in 0.13 and later releases ignore it (vllm#50292). 0.11.0 has no flag,
     * 0.24.0 has no variable.
     */
    attentionBackendFlag: "0.13.0",
    /**
     * VLLM_WSL2_ENABLE_PIN_MEMORY (vllm#41496). vLLM turns pinned memory off under WSL, and its V1
     * engine refuses --cpu-offload-gb without it; this switch turns it back on. First in 0.24.0
     * (0.23.0's envs.py lacks it).
     */
    wslPinMemorySwitch: "0.24.0",
} as const;

export function has(version: string, feature: keyof typeof features): boolean {
    return atLeast(version, features[feature]);
}

/**
 * The vLLM release that serves: the venv's pin for the systemd runtime, the image's for the docker
 * runtime (dockerVllmVersion, or the image's `:vX.Y.Z` tag). The flags and variables follow it.
 */
export function servedVllmVersion(c: {
    readonly runtime: "systemd" | "docker";
    readonly python: { readonly vllmVersion: string };
    readonly dockerImage: string;
    readonly dockerVllmVersion: string | null;
}): string {
    if (c.runtime === "systemd") return c.python.vllmVersion;
    const fromTag = /:v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$/.exec(c.dockerImage)?.[1] ?? null;
    const v = c.dockerVllmVersion ?? fromTag;
    // The config schema refuses a docker stack whose image's version is unknown (dockerVllmVersion).
    if (v === null) throw new Error(`dockerVllmVersion: the vLLM release in ${c.dockerImage} is unknown`);
    return v;
}
