// A step that fails after it touched the box leaves no orphans, on the throwaway box through the real
// engine over SSH: the vLLM service step fails its health check after it wrote the unit, the secrets
// file and the service user (another program holds the port), and the service stays in the state with
// the error, so `destroy` removes what the failed step made, and the next `up` after the cause is gone
// converges it.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test, { ExecutionContext } from "ava";
import * as crypto from "crypto";
import type { Box } from "./helpers/box";
import { Rig, startRig } from "./helpers/rig";
import type { TestStack } from "./helpers/stack";
import { boxSnapshot } from "./helpers/workstation";

let rig: Rig;
let box: Box;
let ts: TestStack;
let port: number;
let before: string;

const API_KEY = crypto.randomBytes(16).toString("hex");
const unitUrn = /workstation-vllm-unit$/;

interface StateResource {
    urn: string;
    outputs?: Record<string, unknown>;
    initErrors?: string[];
}

async function resources(): Promise<StateResource[]> {
    return ((await ts.stack.exportStack()).deployment as { resources?: StateResource[] }).resources ?? [];
}

/** What listens on the service's port (the box shares the host's network: only that port is the stack's). */
async function listeners(): Promise<string> {
    return (await box.sh(`ss -ltnH 'sport = :${port}' | awk '{print $4}'`)).trim();
}

/** TEST INSTRUMENT: another program on the service's port, the cause of the failed health check. */
async function holdPort(): Promise<void> {
    await box.sh(`systemd-run --unit=port-holder --quiet python3 -m http.server --bind 0.0.0.0 ${port} && for i in $(seq 50); do ss -ltnH 'sport = :${port}' | grep -q . && exit 0; sleep 0.1; done; exit 1`);
}

async function releasePort(): Promise<void> {
    await box.sh(`systemctl stop port-holder`);
}

/** Runs an up that must fail; resolves to what the person at the keyboard reads. */
async function failingUp(): Promise<string> {
    const from = ts.output.length;
    try {
        await ts.stack.up({ onOutput: ts.onOutput });
    } catch (e) {
        return ts.output.slice(from).join("") + "\n" + String((e as Error).message);
    }
    throw new Error("pulumi up was expected to fail, and succeeded");
}

async function up(t: ExecutionContext) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput });
    } catch (e) {
        t.log(ts.output.join("").slice(-6000));
        throw e;
    }
}

test.before(async () => {
    rig = await startRig({ name: "orphans" });
    ({ box, port } = rig);
    before = await boxSnapshot(box);
    const config = rig.config();
    // Beyond loopback with a key, so the failed step has written the root-only secrets file too.
    ts = await rig.stack({ config: { ...config, server: { ...config.server, host: "0.0.0.0", healthTimeoutSeconds: 5 } } });
    await ts.stack.setConfig("apiKey", { value: API_KEY, secret: true });
});

test.after.always(() => rig?.stop({ beforeDestroy: () => box.exec(`systemctl stop port-holder`) }));

test.serial("a service step that fails its health check on a fresh box stays in the state with its error and what it made", async (t) => {
    await holdPort();
    const message = await failingUp();
    t.log(message.slice(-3000));
    t.regex(message, /vllm-workstation\.service (did not become healthy|exited before it served|failed)/);
    t.is(await listeners(), `0.0.0.0:${port}`, "the other program holds the port");
    // What the failed step made on the box.
    t.is((await box.exec("systemctl cat vllm-workstation")).code, 0, "the unit was written");
    t.is((await box.sh(`stat -c '%a %U' /etc/vllm-workstation/secrets.env`)).trim(), "600 root");
    t.is((await box.exec("id vllm")).code, 0);
    // ...is what the state knows of: the service, with the init error and what the probe saw after it.
    const unit = (await resources()).find((r) => unitUrn.test(r.urn));
    t.truthy(unit, "the failed service is in the state");
    t.regex((unit!.initErrors ?? []).join("\n"), /vllm-workstation\.service (did not become healthy|exited before it served|failed)/);
    t.regex(String(unit!.outputs?.observed), /^unit=[0-9a-f]{64}$/m, "what the probe saw after the failure");
    t.regex(String(unit!.outputs?.remove), /^unit_name=vllm-workstation\.service$[^]*^systemctl disable --now "\$unit_name"/m);
    t.false(JSON.stringify(unit!.outputs).includes(API_KEY), "no secret among its outputs");
});

test.serial("destroy after the failed up leaves the box as it was before up", async (t) => {
    await releasePort();
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    t.is((await box.exec("systemctl cat vllm-workstation")).code === 0, false, "no unit");
    t.is((await box.exec("test -e /etc/vllm-workstation")).code, 1, "no /etc/vllm-workstation, no secrets.env");
    t.is((await box.exec("id vllm")).code, 1, "no vllm user");
    t.is((await box.exec("getent group vllm")).code, 2, "no vllm group");
    t.is(await listeners(), "", "nothing listens on the service's port");
    t.is(await boxSnapshot(box), before);
    t.deepEqual((await resources()).filter((r) => !r.urn.includes("::pulumi:pulumi:Stack::")).map((r) => r.urn), []);
});

test.serial("the next up after the cause is gone converges the service that failed", async (t) => {
    await holdPort();
    await failingUp();
    t.true((await resources()).some((r) => unitUrn.test(r.urn) && (r.initErrors ?? []).length > 0));
    await releasePort();
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.deepEqual(r.summary.resourceChanges, { same: r.summary.resourceChanges!.same, update: 1 }, "the failed service is updated, the rest left as it is");
    const unit = (await resources()).find((res) => unitUrn.test(res.urn));
    t.deepEqual(unit!.initErrors ?? [], [], "the error is gone with the converge");
    const ok = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    t.is(ok.status, 200);
    const pv = await ts.stack.preview({ onOutput: ts.onOutput });
    t.deepEqual(Object.keys(pv.changeSummary).filter((k) => k !== "same"), [], "a preview after up changes nothing");
});
