import test from "ava";
import { parseConfig } from "../components/config";
import { containerArgs, containerEnv } from "../components/dockerRuntime";
import { authMiddleware } from "../components/vllmService";
import type { ServingPlan } from "../components/vllmService";
import { plan12, revision, snapshot, tiktokenDir } from "./helpers/plans";

const config = parseConfig({ model: { revision }, runtime: "docker" });


const plan24: ServingPlan = { ...plan12, gpuMemoryUtilization: 0.92, cpuOffloadGb: 0, maxModelLen: 32768, maxNumSeqs: 16, maxNumBatchedTokens: 8192, enforceEager: false, attentionBackend: null };

/** The value after `--name` in argv, or undefined. */
function flag(argv: string[], name: string): string | undefined {
    const i = argv.indexOf(`--${name}`);
    return i < 0 ? undefined : argv[i + 1];
}

test("the container's argv starts with the snapshot path and then the same flags as the service, for a 12 GB-like plan", (t) => {
    t.deepEqual(containerArgs(config, plan12, snapshot), [
        snapshot,
        "--served-model-name", "gpt-oss-20b",
        "--host", "0.0.0.0",
        "--port", "8000",
        "--gpu-memory-utilization", "0.9",
        "--max-model-len", "4096",
        "--max-num-seqs", "2",
        "--kv-cache-dtype", "auto",
        "--max-num-batched-tokens", "1024",
        "--cpu-offload-gb", "4",
        "--enforce-eager",
    ]);
});

test("the container listens on 0.0.0.0:8000 inside, whatever the host address and port", (t) => {
    const c = parseConfig({ model: { revision }, runtime: "docker", server: { host: "127.0.0.1", port: 9001 } });
    const argv = containerArgs(c, plan24, snapshot);
    t.is(flag(argv, "host"), "0.0.0.0");
    t.is(flag(argv, "port"), "8000");
    t.is(argv.filter((a) => a === "--host").length, 1);
    t.is(argv.filter((a) => a === "--port").length, 1);
});

test("enforce-eager is a bare flag, and no argument is the string true", (t) => {
    const argv = containerArgs(config, plan12, snapshot);
    t.is(argv[argv.length - 1], "--enforce-eager");
    t.false(argv.includes("true"));
});

test("a 24 GB-like plan passes neither cpu-offload-gb nor enforce-eager to the container", (t) => {
    const argv = containerArgs(config, plan24, snapshot);
    t.is(argv[0], snapshot);
    t.false(argv.includes("--cpu-offload-gb"));
    t.false(argv.includes("--enforce-eager"));
    t.is(flag(argv, "max-model-len"), "32768");
    t.is(argv.length % 2, 1, "snapshot plus name/value pairs");
});

test("the container env keeps vLLM offline with the local encodings and the planned attention backend", (t) => {
    t.deepEqual(containerEnv(config, plan12, tiktokenDir), [
        "HF_HUB_OFFLINE=1",
        "HF_HUB_CACHE=/var/lib/vllm-workstation/hf",
        `TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`,
        "VLLM_NO_USAGE_STATS=1",
        "VLLM_ATTENTION_BACKEND=TRITON_ATTN",
    ]);
});

test("the container env leaves VLLM_ATTENTION_BACKEND out when vLLM chooses, and never holds an API key", (t) => {
    const c = parseConfig({ model: { revision }, runtime: "docker", apiKey: "sk-local-0123456789abcdef" });
    const env = containerEnv(c, plan24, tiktokenDir);
    t.true(env.includes("HF_HUB_OFFLINE=1"));
    t.false(env.some((e) => e.startsWith("VLLM_ATTENTION_BACKEND=")));
    t.false(env.some((e) => e.includes("API_KEY") || e.includes("sk-local")));
});

test("with an API key the container loads the middleware that requires it on every route but /health; without one it does not", (t) => {
    t.is(flag(containerArgs(config, plan24, snapshot, true), "middleware"), authMiddleware);
    t.false(containerArgs(config, plan24, snapshot, false).includes("--middleware"));
    t.false(containerArgs(config, plan24, snapshot).includes("--middleware"));
});
