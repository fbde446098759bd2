// Credentials in URLs on the throwaway box, through the real engine over SSH: the package index
// (python.indexUrl) and the Hub (model.endpoint, model.tiktoken.baseUrl) both require HTTP basic auth,
// and the stack carries the credentials as each URL's userinfo (`https://user:password@host/...`, set as
// Pulumi secrets). The box converges (uv fetched from the index, the packages locked and synced, the
// model fetched over ranges and verified), the credentials go to each URL's own host only (never to the
// CDN the Hub redirects to), and their text shows nowhere: not in the engine output, the state as
// exported or stored, the box's process list while up runs, or any file on the box.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test, { ExecutionContext } from "ava";
import * as crypto from "crypto";
import * as path from "path";
import type { Box } from "./helpers/box";
import { Rig, startRig } from "./helpers/rig";
import { plainExport, readTree, TestStack } from "./helpers/stack";
import { BasicAuth, withUserinfo } from "./infra/servers";

// Distinctive values, nowhere else by chance; each password needs %-encoding in a URL.
const indexAuth: BasicAuth = { user: `ci-${crypto.randomBytes(4).toString("hex")}`, password: `ix%${crypto.randomBytes(12).toString("hex")}` };
const hubAuth: BasicAuth = { user: `hub-${crypto.randomBytes(4).toString("hex")}`, password: `hb%${crypto.randomBytes(12).toString("hex")}` };
/** Every text that would give a credential away: the user names, the passwords as written in the URL and decoded. */
const credentialTexts: Array<[string, string]> = [indexAuth, hubAuth].flatMap((a): Array<[string, string]> => [
    [`the user name ${a.user}`, a.user],
    [`the password of ${a.user}`, a.password],
    [`the %-encoded password of ${a.user}`, encodeURIComponent(a.password)],
]);
// Everything on the box a file could sit in (its /proc, /sys and /dev are the kernel's).
const scanned = "/etc /opt /var /home /tmp /run /root /srv /usr/local";

let rig: Rig;
let box: Box;
let ts: TestStack;
let port: number;
/** Every command line seen on the box while up ran. */
const processLists: string[] = [];

function leaked(text: string): string[] {
    return credentialTexts.filter(([, v]) => text.includes(v)).map(([name]) => name);
}

async function up(t: ExecutionContext, opts: { expectNoChanges?: boolean } = {}) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput, diff: true, ...opts });
    } catch (e) {
        t.log(ts.output.join("").slice(-6000));
        throw e;
    }
}

/** Runs `during` while recording the box's process list (what `ps` shows every user) every 100 ms. */
async function watchingProcesses<T>(during: () => Promise<T>): Promise<T> {
    let done = false;
    const watcher = (async () => {
        while (!done) {
            const r = await box.exec(`ps -eo args`);
            processLists.push(r.stdout);
            await new Promise((res) => setTimeout(res, 100));
        }
    })();
    try {
        return await during();
    } finally {
        done = true;
        await watcher;
    }
}

test.before(async () => {
    rig = await startRig({
        name: "credentials",
        index: { basicAuth: indexAuth },
        // The Hub's LFS files redirect to a "CDN" (the same server as localhost), where no credentials belong.
        hub: { basicAuth: hubAuth, cdnHost: "localhost" },
    });
    ({ box, port } = rig);
    ts = await rig.stack();
    // The credentialed URLs are secrets in the stack file, as the README says to set them.
    await ts.stack.setConfig("python.indexUrl", { value: withUserinfo(rig.index.url, indexAuth), secret: true }, true);
    await ts.stack.setConfig("model.endpoint", { value: withUserinfo(rig.hub.url, hubAuth), secret: true }, true);
    await ts.stack.setConfig("model.tiktoken.baseUrl", { value: withUserinfo(rig.hub.tiktoken.baseUrl, hubAuth), secret: true }, true);
});

test.after.always(() => rig?.stop());

test.serial("the index and the Hub refuse requests without the credentials", async (t) => {
    t.is((await fetch(`${rig.index.url}uv/`)).status, 401);
    t.is((await fetch(`${rig.hub.url}/api/models/${rig.hub.repoId}`)).status, 401);
    t.is((await fetch(`${rig.hub.tiktoken.baseUrl}/o200k_base.tiktoken`)).status, 401);
    const basic = `Basic ${Buffer.from(`${hubAuth.user}:${hubAuth.password}`).toString("base64")}`;
    t.is((await fetch(`${rig.hub.url}/api/models/${rig.hub.repoId}`, { headers: { Authorization: basic } })).status, 200);
});

test.serial("up converges the box from an index and a Hub that require basic auth, the credentials in their URLs", async (t) => {
    await rig.hub.clearRequestLog();
    const r = await watchingProcesses(() => up(t));
    t.is(r.summary.result, "succeeded");
    t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);
    t.is((await box.sh(`/opt/vllm-workstation/venv-tools/uv --version`)).trim().split(" ")[1], "0.9.5");
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: Array<{ id: string }> };
    t.deepEqual(models.data.map((m) => m.id), ["gpt-oss-20b"]);
    t.true(processLists.length > 20, `the process list was read ${processLists.length} times during up`);
});

test.serial("the Hub's credentials went to the Hub and the tiktoken store, and never to the CDN it redirected to", async (t) => {
    const log = await rig.hub.requestLog();
    const home = log.filter((e) => e.host?.startsWith("127.0.0.1:"));
    const cdn = log.filter((e) => e.host?.startsWith("localhost:"));
    t.true(home.some((e) => e.path.includes("/resolve/")), "the model's files were asked of the Hub");
    t.true(home.some((e) => e.path.startsWith("/tiktoken/")), "the encodings were fetched");
    t.deepEqual(home.filter((e) => e.path !== "/health" && e.auth_kind !== "basic").map((e) => `${e.method} ${e.path}`), [], "every request to the Hub carried basic auth");
    t.deepEqual(home.filter((e) => e.status === 401).map((e) => e.path), []);
    t.true(cdn.some((e) => e.range !== null && e.status === 206), "the weights came over ranges from the CDN");
    t.deepEqual(cdn.filter((e) => e.auth).map((e) => `${e.method} ${e.path} ${e.range}`), [], "no request to the CDN carried credentials");
});

test.serial("a second up changes nothing", async (t) => {
    const r = await up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(r.summary.resourceChanges ?? {}), ["same"]);
});

test.serial("no command line on the box showed a credential while up ran", (t) => {
    t.deepEqual(leaked(processLists.join("\n")), []);
    t.true(processLists.some((l) => l.includes("bash -s")), "the watcher saw the stack's steps run");
});

test.serial("the engine printed no credential", (t) => {
    const printed = ts.output.join("");
    t.true(printed.includes("workstation-python-packages"), "the output shows the resources");
    t.true(printed.includes("***@127.0.0.1"), "and the URLs, without their userinfo");
    t.deepEqual(leaked(printed), []);
});

test.serial("the state holds the credentials only encrypted", async (t) => {
    // Decrypted (what the Automation API's exportStack does), the state holds them: in secretEnv.
    t.true(leaked(JSON.stringify(await ts.stack.exportStack())).length > 0);
    const exported = await plainExport(ts);
    t.true(exported.includes('"ciphertext"'));
    t.deepEqual(leaked(exported), []);
    // The backend's files, the stack file, backups and history: the whole project directory.
    const files = readTree(ts.dir);
    t.true(files.some(([p]) => p.endsWith(path.join("stacks", "vllm-workstation", "test.json"))));
    for (const [file, text] of files) t.deepEqual(leaked(text), [], file);
});

test.serial("no file on the box holds a credential", async (t) => {
    for (const [name, value] of credentialTexts) {
        // -D skip: FIFOs and sockets under /run would block a plain read.
        const out = await box.sh(`grep -rlF -D skip -e ${JSON.stringify(value)} ${scanned} 2>/dev/null || true`);
        t.deepEqual(out.split("\n").filter(Boolean), [], name);
    }
    t.deepEqual(leaked(await box.sh(`journalctl --no-pager -o verbose`)), [], "nor the journal");
});
