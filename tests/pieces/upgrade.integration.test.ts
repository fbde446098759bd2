// An upgrade of the vLLM packages on the throwaway box, through the real engine over SSH: a release that
// fails to start is rolled back (the old one serves again, the state keeps the old service), a good one
// converges, and going back switches to the kept install without a request to the package index.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels (0.11.1+broken exits at
// `vllm serve`), the Hub.
import test from "ava";
import * as fs from "fs";
import { lookingAhead } from "../../components/program";
import type { Box } from "../helpers/box";
import type { TestStack } from "../helpers/stack";
import type { PackageIndex } from "../infra/servers/index";
import { startUpgradeRig, UpgradeRig, venv } from "../helpers/upgradeRig";
import { boxSnapshot } from "../helpers/workstation";

let rig: UpgradeRig;
let box: Box;
let index: PackageIndex;
let ts: TestStack;
let port: number;
let before: string;

const installs = `${venv}-tools/installs`;

test.before(async () => {
    rig = await startUpgradeRig({ name: "upgrade", index: { logRequests: true } });
    ({ box, index, ts, port } = rig);
    before = await boxSnapshot(box);
});

test.after.always(() => rig?.stop());

const execStart = async () => (await box.sh("systemctl show -p ExecStart --value vllm-workstation")).trim();
const onDisk = async () => (await box.sh(`ls -1 ${installs}`)).trim().split("\n").filter(Boolean).sort();
/** The requests pypiserver logged, from byte `from` of its log on. */
const indexRequests = (from: number) =>
    fs
        .readFileSync(index.logPath, "utf8")
        .slice(from)
        .split("\n")
        .filter((l) => /^<LocalRequest: [A-Z]+ http/.test(l));

test.serial("a first up installs the packages beside the venv path, which links to the install", async (t) => {
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.0");
    t.is(await rig.link(), rig.installOf("0.11.0"));
    t.true((await execStart()).includes(`${venv}/bin/vllm serve `), "the unit runs the venv path's vllm");
    t.is(await rig.servedFrom(), rig.installOf("0.11.0"));
    t.true(indexRequests(0).length > 0, "the index logs the requests of the install");
});

test.serial("an upgrade to a vLLM that fails to start rolls back: up fails saying so with its log, the old vLLM serves, and preview still shows the change", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.1+broken" }, true);
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") }));
    const said = `${err?.message ?? ""}\n${ts.output.join("")}`;
    t.log(err?.message);
    t.regex(said, /rolled back: vllm-workstation\.service serves again on the previous packages/);
    t.regex(said, /built to fail at start/, "the service's last log lines are in the message");
    t.is(await rig.servedVersion(), "0.11.0", "the old stand-in answers");
    t.is(await rig.link(), rig.installOf("0.11.0"));
    t.is(await rig.servedFrom(), rig.installOf("0.11.0"), "the service runs the old install");
    t.is((await box.sh("systemctl is-active vllm-workstation || true")).trim(), "active");
    t.deepEqual(await onDisk(), [rig.installOf("0.11.0"), rig.installOf("0.11.1+broken")].map((p) => p.split("/").pop()!).sort(), "the new install stays beside, for the next try");
    const c = await rig.changes();
    t.is(c.update, 1, `only the service is still to change: ${JSON.stringify(c)}`);
});

test.serial("an upgrade to a vLLM that starts converges, a second up is a no-op, and only the installs in service and before stay", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.2" }, true);
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.2");
    t.is(await rig.link(), rig.installOf("0.11.2"));
    t.is(await rig.servedFrom(), rig.installOf("0.11.2"));
    t.deepEqual(await onDisk(), [rig.installOf("0.11.0"), rig.installOf("0.11.2")].map((p) => p.split("/").pop()!).sort());
    const again = await rig.up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
});

test.serial("going back to the previous version switches to its kept install without a request to the package index", async (t) => {
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.0" }, true);
    const logged = fs.statSync(index.logPath).size;
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.deepEqual(indexRequests(logged), [], "no request reached the package index");
    t.is(await rig.servedVersion(), "0.11.0");
    t.is(await rig.link(), rig.installOf("0.11.0"));
    t.is(await rig.servedFrom(), rig.installOf("0.11.0"));
    t.deepEqual(await onDisk(), [rig.installOf("0.11.0"), rig.installOf("0.11.2")].map((p) => p.split("/").pop()!).sort());
    t.deepEqual(await rig.changes(), {});
});

const firstKey = "sk-upgrade-first-0123456789";
const secondKey = "sk-upgrade-second-9876543210";
/** The status of GET /v1/models with `key`, and the version the vLLM stand-in reports to it. */
async function asked(key: string) {
    const headers = { authorization: `Bearer ${key}` };
    const models = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers });
    const version = await fetch(`http://127.0.0.1:${port}/version`, { headers });
    return { models: models.status, version: version.ok ? ((await version.json()) as { version: string }).version : `HTTP ${version.status}` };
}

test.serial("an upgrade that rotates the API key and moves to a vLLM that fails to start rolls back: the old vLLM serves again, with the new key, and the old key is refused", async (t) => {
    await ts.stack.setConfig("apiKey", { value: firstKey, secret: true });
    t.is((await rig.up(t)).summary.result, "succeeded");
    t.deepEqual(await asked(firstKey), { models: 200, version: "0.11.0" });
    await ts.stack.setConfig("apiKey", { value: secondKey, secret: true });
    await ts.stack.setConfig("python.vllmVersion", { value: "0.11.1+broken" }, true);
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") }));
    t.regex(`${err?.message ?? ""}\n${ts.output.join("")}`, /rolled back: vllm-workstation\.service serves again on the previous packages/);
    // The rollback keeps the key in force now: the one this up wrote. The rotated-away key never serves again.
    t.deepEqual(await asked(secondKey), { models: 200, version: "0.11.0" });
    t.is((await asked(firstKey)).models, 401);
    t.is(await box.sh("cat /etc/vllm-workstation/secrets.env"), `VLLM_API_KEY=${secondKey}\n`);
    t.is(await rig.servedFrom(), rig.installOf("0.11.0"));
});

test.serial("an upgrade that changes the CUDA environment and moves to a vLLM that fails to start rolls back fully: the CUDA environment the old vLLM served on is back", async (t) => {
    const cudaEnv = () => box.sh("grep ^CUDA_HOME= /etc/vllm-workstation/cuda.env");
    t.is(await cudaEnv(), "CUDA_HOME=/usr/local/cuda\n");
    await ts.stack.setConfig("cuda.home", { value: "/usr/local/cuda-12.8" }, true);
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") }));
    t.regex(`${err?.message ?? ""}\n${ts.output.join("")}`, /rolled back: vllm-workstation\.service serves again on the previous packages/);
    t.is(await cudaEnv(), "CUDA_HOME=/usr/local/cuda\n");
    t.is(await box.sh(`tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value vllm-workstation)/environ | grep ^CUDA_HOME=`), "CUDA_HOME=/usr/local/cuda\n");
    t.deepEqual(await asked(secondKey), { models: 200, version: "0.11.0" });
    // The CUDA environment and the service are still to change.
    t.is((await rig.changes()).update, 2);
});

test.serial("pulumi destroy removes both installs, the link and the service: the box is as before up", async (t) => {
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    t.is((await box.exec(`test -e ${venv} || test -L ${venv}`)).code, 1);
    t.is((await box.exec(`test -e ${installs}`)).code, 1);
    t.is(await boxSnapshot(box), before);
});
