// The committed locks behind the example stacks: each pins exactly what its stack asks for, and every
// package in it carries hashes, so `uv pip sync --require-hashes` installs the same files everywhere.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { parseConfig } from "../../components/config/schema";
import { rawFromPulumiConfig } from "../../components/config/stackFiles";

const root = path.join(__dirname, "..", "..", "..");

for (const file of ["Pulumi.workstation-12gb.yaml", "Pulumi.workstation-24gb.yaml"]) {
    const doc = yaml.load(fs.readFileSync(path.join(root, file), "utf8")) as { config: Record<string, unknown> };
    const all = Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
    const config = parseConfig(rawFromPulumiConfig(all, "vllm-workstation"));

    test(`${file} names a committed lock that pins its vLLM and FlashInfer`, (t) => {
        t.truthy(config.python.lockFile);
        const lock = fs.readFileSync(path.join(root, config.python.lockFile!), "utf8");
        t.regex(lock, new RegExp(`^vllm==${config.python.vllmVersion.replace(/\./g, "\\.")} \\\\$`, "m"));
        t.regex(lock, new RegExp(`^flashinfer-python==${config.python.flashinferVersion.replace(/\./g, "\\.")} \\\\$`, "m"));
    });

    test(`every package in ${file}'s lock is pinned with at least one sha256`, (t) => {
        const lock = fs.readFileSync(path.join(root, config.python.lockFile!), "utf8");
        const entries = lock.split(/\n(?=[a-z0-9])/i).filter((e) => /^[a-z0-9]/i.test(e));
        t.true(entries.length > 50);
        const bad = entries.filter((e) => !/^[A-Za-z0-9._-]+==\S+/.test(e) || !/--hash=sha256:[0-9a-f]{64}/.test(e));
        t.deepEqual(bad.map((e) => e.split("\n")[0]), []);
    });
}
