// Every flag and VLLM_* variable the stack emits must exist in the pinned vLLM release. The lists come
// from the real wheels (scripts/vllm-flags.sh), so a version bump that drops a flag fails here first.
// Checked for each example stack, with the vLLM version that stack pins.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { parseConfig, WorkstationConfig } from "../../components/config/schema";
import { plan } from "../../components/plan/planner";
import { servingPlan } from "../../components/program";
import { rawFromPulumiConfig } from "../../components/config/stackFiles";
import { containerArgs, containerEnv } from "../../components/pieces/dockerRuntime";
import { renderEnv, serviceFlags, vllmFlags } from "../../components/pieces/vllmService";
import { servedVllmVersion } from "../../components/plan/vllmVersion";

const root = path.join(__dirname, "..", "..", "..");
const fixtures = path.join(root, "tests", "fixtures", "vllm");
const list = (version: string, kind: string) => new Set(fs.readFileSync(path.join(fixtures, `${version}-${kind}.txt`), "utf8").split("\n").filter(Boolean));

/** Reads an example stack file the way Pulumi hands config to a program: one JSON text per key. */
function exampleStack(file: string): WorkstationConfig {
    const doc = yaml.load(fs.readFileSync(path.join(root, file), "utf8")) as { config: Record<string, unknown> };
    const all = Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
    return parseConfig(rawFromPulumiConfig(all, "vllm-workstation"));
}

const stacks = ["Pulumi.workstation-12gb.yaml", "Pulumi.workstation-24gb.yaml"];

for (const file of stacks) {
    const config = exampleStack(file);
    const version = config.python.vllmVersion;
    const flags = list(version, "flags");
    const envs = list(version, "envs");
    const backends = list(version, "attention-backends");
    const result = plan({ gpu: null, options: config.gpu, wsl: true });

    test(`${file} plans for its tier`, (t) => {
        t.true(result.ok, result.ok ? "" : result.errors.join("\n"));
    });
    test(`every flag ${file} emits exists in its vLLM ${version}`, (t) => {
        if (!result.ok) return t.fail();
        const keys = Object.keys(vllmFlags(config, servingPlan(result)));
        t.true(keys.length > 5);
        t.deepEqual(keys.filter((k) => !flags.has(`--${k}`)), []);
        const withKey = Object.keys(serviceFlags(config, servingPlan(result), true));
        t.true(withKey.includes("middleware"));
        t.deepEqual(withKey.filter((k) => !flags.has(`--${k}`)), []);
        const argv = containerArgs(config, servingPlan(result), "/snap", true).filter((a) => a.startsWith("--"));
        t.deepEqual(argv.filter((a) => !flags.has(a)), []);
    });
    test(`every VLLM_ variable ${file} sets exists in its vLLM ${version}, and so does its attention backend`, (t) => {
        if (!result.ok) return t.fail();
        const sp = servingPlan(result);
        const vars = [...renderEnv(config, sp, "/x").split("\n"), ...containerEnv(config, sp, "/x")].map((l) => l.split("=")[0]).filter((k) => k.startsWith("VLLM_"));
        t.deepEqual(vars.filter((k) => !envs.has(k)), []);
        if (sp.attentionBackend !== null) t.true(backends.has(sp.attentionBackend), sp.attentionBackend);
        t.true(envs.has("VLLM_API_KEY"));
    });
}

// The docker runtime's flags and variables follow the image's vLLM (its tag, or dockerVllmVersion),
// whatever the venv pin says: each example stack as a docker stack, with each image the lists cover.
for (const file of stacks) {
    for (const imageVersion of ["0.11.0", "0.24.0"]) {
        test(`${file} as a docker stack on a vLLM ${imageVersion} image emits only that release's flags and variables`, (t) => {
            const config = { ...exampleStack(file), runtime: "docker" as const, dockerImage: `vllm/vllm-openai:v${imageVersion}`, dockerVllmVersion: null };
            t.is(servedVllmVersion(config), imageVersion);
            const result = plan({ gpu: null, options: config.gpu, wsl: true });
            if (!result.ok) return t.fail();
            const sp = servingPlan(result);
            const argv = containerArgs(config, sp, "/snap").filter((a) => a.startsWith("--"));
            t.deepEqual(argv.filter((a) => !list(imageVersion, "flags").has(a)), []);
            const vars = containerEnv(config, sp, "/x").map((l) => l.split("=")[0]).filter((k) => k.startsWith("VLLM_"));
            t.deepEqual(vars.filter((k) => !list(imageVersion, "envs").has(k)), []);
        });
    }
}

test("the 12 GB example offloads and turns WSL's pinned memory back on", (t) => {
    const config = exampleStack("Pulumi.workstation-12gb.yaml");
    const result = plan({ gpu: null, options: config.gpu, wsl: true });
    if (!result.ok) return t.fail();
    t.true(result.plan.cpuOffloadGb > 0);
    t.regex(renderEnv(config, servingPlan(result), "/x"), /^VLLM_WSL2_ENABLE_PIN_MEMORY=1$/m);
});

test("the 24 GB example keeps every weight on the card", (t) => {
    const config = exampleStack("Pulumi.workstation-24gb.yaml");
    const result = plan({ gpu: null, options: config.gpu, wsl: true });
    if (!result.ok) return t.fail();
    t.is(result.plan.cpuOffloadGb, 0);
    t.false("cpu-offload-gb" in vllmFlags(config, servingPlan(result)));
    // The context vLLM 0.24.0 gave room for three requests of (tests/fixtures/calibration/vllm-0.24.0/stack-24gb.json).
    t.is(vllmFlags(config, servingPlan(result))["max-model-len"], 65536);
});
