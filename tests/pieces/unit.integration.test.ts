// The service unit as renderUnit writes it for the example stacks, through `systemd-analyze verify` on a
// booted box: systemd's own reading of every section, key and value, of the ExecStart= binary and of
// the units it orders itself after. verify prints what it finds and exits non-zero only on some of it,
// so both its exit status and its silence are asserted.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { parseConfig, WorkstationConfig } from "../../components/config/schema";
import { layout } from "../../components/pieces/model";
import { checkoutRoot, stackFileLayer } from "../../components/config/stackFiles";
import { q } from "../../components/host/shell";
import { renderUnit, unitName } from "../../components/pieces/vllmService";
import { Box, ensureRootfs, startBox } from "../helpers/box";

function exampleStack(file: string, extra: Record<string, unknown> = {}): WorkstationConfig {
    const { raw } = stackFileLayer(fs.readFileSync(path.join(checkoutRoot, file), "utf8"), "vllm-workstation");
    return parseConfig({ ...raw, ...extra });
}

const withKey = { apiKey: "sk-0123456789abcdef0123", server: { host: "0.0.0.0", port: 8000 } };
const configs: Array<[string, WorkstationConfig]> = [
    ["the 12 GB stack", exampleStack("Pulumi.workstation-12gb.yaml")],
    ["the 12 GB stack served beyond loopback with an API key", exampleStack("Pulumi.workstation-12gb.yaml", withKey)],
    ["the 24 GB stack", exampleStack("Pulumi.workstation-24gb.yaml")],
    ["the 24 GB stack served beyond loopback with an API key", exampleStack("Pulumi.workstation-24gb.yaml", withKey)],
];

/** Where each unit goes on the box: a directory of its own, under the unit's own name (verify reads the type from it). */
const unitDir = (n: number) => `/root/units/${n}`;

/**
 * The venv's vllm, a test double: verify requires ExecStart='s binary to exist and be executable, and
 * no vLLM is installed on the box. It is made for the venvPath each config names, so a unit that points
 * anywhere else fails.
 */
async function standInVllm(box: Box, c: WorkstationConfig): Promise<void> {
    const bin = `${c.python.venvPath}/bin/vllm`;
    await box.sh(`mkdir -p "$(dirname ${q(bin)})" && cat >${q(bin)} && chmod 0755 ${q(bin)}`, {
        input: "#!/bin/sh\n# Test double for vLLM's CLI: systemd-analyze verify only checks that it exists.\nexit 0\n",
    });
}

async function verify(box: Box, n: number, unit: string): Promise<{ code: number; output: string }> {
    const file = `${unitDir(n)}/${unitName}`;
    await box.sh(`install -d ${unitDir(n)} && cat >${file}`, { input: unit });
    const r = await box.exec(`systemd-analyze verify ${file}`);
    return { code: r.code, output: `${r.stdout}${r.stderr}` };
}

let box: Box;

test.before("a booted box", async (t) => {
    t.timeout(30 * 60 * 1000);
    await ensureRootfs();
    box = await startBox({ name: "unit" });
});

test.after.always("the box is stopped", async () => {
    await box?.stop();
});

test.serial("the unit of each example stack passes systemd-analyze verify, with and without an API key", async (t) => {
    t.timeout(5 * 60 * 1000);
    for (const [n, [what, c]] of configs.entries()) {
        await standInVllm(box, c);
        const snapshot = layout(c.model).snapshot;
        const r = await verify(box, n, renderUnit(c, snapshot));
        t.deepEqual(r, { code: 0, output: "" }, what);
    }
});

test.serial("systemd-analyze verify on the box finds a missing ExecStart binary and a misspelled key", async (t) => {
    // Without these, a verify that reads nothing (a wrong path, a unit it cannot load) would pass everything.
    t.timeout(5 * 60 * 1000);
    const [, c] = configs[0];
    const unit = renderUnit({ ...c, python: { ...c.python, venvPath: "/opt/vllm-workstation-nowhere/venv" } }, layout(c.model).snapshot);
    const missing = await verify(box, 10, unit);
    t.not(missing.code, 0);
    t.regex(missing.output, /\/opt\/vllm-workstation-nowhere\/venv\/bin\/vllm/);
    await standInVllm(box, c);
    const misspelled = await verify(box, 11, renderUnit(c, layout(c.model).snapshot).replace("ProtectClock=yes", "ProtectClok=yes"));
    t.regex(misspelled.output, /ProtectClok/);
});
