// Every flag and VLLM_* variable the stack emits must exist in the pinned vLLM release. The lists come
// from the real wheel (scripts/vllm-flags.sh), so a version bump that drops a flag fails here first.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../components/config";
import { plan } from "../components/planner";
import { servingPlan } from "../components/program";
import { renderEnv, vllmFlags } from "../components/vllmService";
import { containerArgs, containerEnv } from "../components/dockerRuntime";

const fixtures = path.join(__dirname, "..", "..", "tests", "fixtures", "vllm");
const config = parseConfig({ model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" } });
const version = config.python.vllmVersion;
const list = (kind: string) => new Set(fs.readFileSync(path.join(fixtures, `${version}-${kind}.txt`), "utf8").split("\n").filter(Boolean));
const flags = list("flags");
const envs = list("envs");
const backends = list("attention-backends");

const tiers = ["12gb", "16gb", "24gb"] as const;

for (const tier of tiers) {
    const result = plan({ gpu: null, options: { tier } });
    test(`every flag of the ${tier} plan exists in vLLM ${version}`, (t) => {
        if (!result.ok) return t.fail(result.errors.join("\n"));
        const keys = Object.keys(vllmFlags(config, servingPlan(result)));
        t.true(keys.length > 5);
        t.deepEqual(keys.filter((k) => !flags.has(`--${k}`)), []);
    });
    test(`every VLLM_ variable and the attention backend of the ${tier} plan exist in vLLM ${version}`, (t) => {
        if (!result.ok) return t.fail(result.errors.join("\n"));
        const sp = servingPlan(result);
        const vars = [...renderEnv(config, sp, "/x").split("\n"), ...containerEnv(config, sp, "/x")]
            .map((l) => l.split("=")[0])
            .filter((k) => k.startsWith("VLLM_"));
        t.deepEqual(vars.filter((k) => !envs.has(k)), []);
        if (sp.attentionBackend !== null) t.true(backends.has(sp.attentionBackend), sp.attentionBackend);
    });
    test(`the container's argv for the ${tier} plan uses only flags of vLLM ${version}`, (t) => {
        if (!result.ok) return t.fail(result.errors.join("\n"));
        const argv = containerArgs(config, servingPlan(result), "/snap").filter((a) => a.startsWith("--"));
        t.deepEqual(argv.filter((a) => !flags.has(a)), []);
    });
}

test(`the API key variable the service reads exists in vLLM ${version}`, (t) => {
    t.true(envs.has("VLLM_API_KEY"));
    t.true(flags.has("--config"));
});
