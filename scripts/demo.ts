// npm run demo: the main job on the embedded default. Converges the throwaway box with the dev stack
// (Pulumi.dev.yaml), calls the endpoint, shows that a second preview is clean, and takes it all away.
// Test doubles stand in for the GPU, vLLM and the Hub (see the README); the engine, the box and the
// scripts are real.
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { workstationProgram } from "../components/program";
import { projectRoot } from "./engine";
import { startBox } from "../tests/helpers/box";
import { sshTarget, testStack } from "../tests/helpers/stack";
import { installGpuDoubles, wheelhouse } from "../tests/helpers/workstation";
import { startHfEndpoint, startPackageIndex } from "../tests/infra/servers/index";

const step = (s: string) => console.log(`\n=== ${s}`);

async function main(): Promise<void> {
    const dev = yaml.load(fs.readFileSync(path.join(projectRoot, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, Record<string, unknown>> };
    const base = Object.fromEntries(Object.entries(dev.config).map(([k, v]) => [k.replace(/^vllm-workstation:/, ""), v]));

    step("starting the throwaway box and the local stand-ins for PyPI and the Hugging Face Hub");
    const [box, index, hub] = await Promise.all([startBox({ name: "demo" }), startPackageIndex({ wheelhouse }), startHfEndpoint()]);
    await installGpuDoubles(box, "rtx4090");
    const ts = await testStack({
        name: "demo",
        stackName: "dev",
        program: workstationProgram,
        config: {
            ...base,
            target: { ...base.target, ...sshTarget(box) },
            python: { ...base.python, indexUrl: index.url },
            model: { revision: hub.commitSha, endpoint: hub.url, tiktoken: { baseUrl: hub.tiktoken.baseUrl, files: hub.tiktoken.files } },
        },
    });
    const print = (s: string) => process.stdout.write(s);
    try {
        step("pulumi up");
        const up = await ts.stack.up({ onOutput: print });
        const endpoint = String(up.outputs.endpoint.value);
        step(`calling ${endpoint}/chat/completions`);
        const res = await fetch(`${endpoint}/chat/completions`, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ model: up.outputs.servedModelName.value, messages: [{ role: "user", content: "Say hello." }] }),
        });
        console.log(res.status, JSON.stringify(await res.json()));
        step("pulumi preview (expects no changes)");
        await ts.stack.preview({ onOutput: print, expectNoChanges: true });
        step("pulumi destroy");
        await ts.stack.destroy({ onOutput: print });
    } finally {
        ts.remove();
        await Promise.all([box.stop(), index.stop(), hub.stop()]);
    }
}

main().then(
    () => process.exit(0),
    (e) => {
        console.error(e instanceof Error ? e.message : e);
        process.exit(1);
    },
);
