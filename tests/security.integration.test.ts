// Security properties of the workstation stack on the throwaway box, through the real engine over SSH:
// secrets (the API key and the Hugging Face token, both real Pulumi secrets) show in plaintext nowhere
// (state, stack file, engine output, files on the box, the journal); the service listens on loopback
// unless told otherwise; a non-loopback host without an API key is refused before any resource; and
// destroy removes what up made and nothing else, even after the config moved the venv elsewhere.
//
// One box and one converge: the stack comes up on the default host (loopback), then moves to 0.0.0.0
// (an update of the service only), then is destroyed after its venvPath was changed without an up.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test from "ava";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { workstationProgram } from "../components/program";
import { Box, freePort } from "./helpers/box";
import { Rig, startRig } from "./helpers/rig";
import { plainExport, readTree, testStack, TestStack } from "./helpers/stack";
import { boxSnapshot } from "./helpers/workstation";

// Distinctive values: 32 hex characters each, nowhere else by chance.
const API_KEY = crypto.randomBytes(16).toString("hex");
const HF_TOKEN = `hf_${crypto.randomBytes(16).toString("hex")}`;
const secrets: Array<[string, string]> = [
    ["the API key", API_KEY],
    ["the HF token", HF_TOKEN],
];

const venvA = "/opt/ws-a/venv";
const venvB = "/opt/ws-b/venv";
const secretsFile = "/etc/vllm-workstation/secrets.env";
const unitFile = "/etc/systemd/system/vllm-workstation.service";
// Everything on the box a file could sit in (the box's /proc, /sys and /dev are the kernel's).
const scanned = "/etc /opt /var /home /tmp /run /root /srv /usr/local";

// Files and directories a person had before the stack ever ran; destroy must leave every one of them.
const userFiles: Record<string, string> = {
    "/opt/ws-b/keep-me": "not the stack's (ws-b)\n",
    "/opt/ws-b/venv/keep-me": "not the stack's (ws-b venv)\n",
    "/var/lib/vllm-workstation/keep-me": "not the stack's (var/lib)\n",
};
// TEST INSTRUMENT: a curl first on root's PATH that records each command line it was started with (what
// `ps` shows every user on the box while it runs), then runs the real curl. Root-only log, removed by
// the test that reads it, before the file scans.
const curlLog = "/root/vllm-ws-test-curl-argv.log";
const curlShim = `#!/bin/sh
( umask 077; printf '%s\\n' "$*" >>${curlLog} )
exec /usr/bin/curl "$@"
`;
// An empty directory at a path the stack takes is adopted: used, and left in place on destroy. (One that
// holds files is refused before anything changes: ownership.integration.test.ts.)
const preexistingCache = { dir: "/var/cache/vllm-workstation" };

let rig: Rig;
let box: Box;
let ts: TestStack;
let port: number;
let before: string;
let destroyed = false;
/** The command lines of every curl the stack ran on the box during both ups. */
let curlCommandLines = "";

/** The lifecycle tests' config (boxStackConfig) with the venv at venvA. */
function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const base = rig.config();
    return { ...base, python: { ...base.python, venvPath: venvA }, ...extra };
}

/** Which of the secrets occur in `text`, by name. */
function leaked(text: string): string[] {
    return secrets.filter(([, v]) => text.includes(v)).map(([name]) => name);
}

/** `grep -rlF value` over the box's file systems as root: the files that hold it. */
async function filesHolding(value: string): Promise<string[]> {
    // -D skip: FIFOs and sockets under /run would block a plain read.
    const out = await box.sh(`grep -rlF -D skip -e ${value} ${scanned} 2>/dev/null || true`);
    return out.split("\n").filter(Boolean).sort();
}

async function listeners(): Promise<string[]> {
    const out = await box.sh(`ss -ltnH 'sport = :${port}'`);
    return out.split("\n").filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

async function up(t: { log: (...a: unknown[]) => void }) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput, diff: true });
    } catch (e) {
        t.log(ts.output.join("").slice(-6000));
        throw e;
    }
}

test.before(async () => {
    rig = await startRig({ name: "security", hub: { token: HF_TOKEN }, port: await freePort() });
    ({ box, port } = rig);
    await box.sh(`install -d -m 0755 ${preexistingCache.dir}`);
    for (const [file, content] of Object.entries(userFiles)) await box.sh(`install -d ${path.posix.dirname(file)} && cat > ${file}`, { input: content });
    await box.sh(`cat > /usr/local/bin/curl && chmod 755 /usr/local/bin/curl`, { input: curlShim });
    before = await boxSnapshot(box);
    ts = await rig.stack({ config: config() });
    await ts.stack.setConfig("apiKey", { value: API_KEY, secret: true });
    await ts.stack.setConfig("hfToken", { value: HF_TOKEN, secret: true });
});

test.after.always(() => rig?.stop({ destroy: !destroyed }));

test.serial("a non-loopback host without an API key is refused by config validation before any resource", async (t) => {
    const snapshot = await boxSnapshot(box);
    const refused = await testStack({ name: "security-refused", program: workstationProgram, config: config({ server: { host: "0.0.0.0", port } }) });
    try {
        const err = await t.throwsAsync(refused.stack.up({ onOutput: refused.onOutput }));
        const message = refused.output.join("") + String(err?.message);
        t.regex(message, /apiKey: .*is required when server\.host is "0\.0\.0\.0" \(not loopback\)/);
        const state = await refused.stack.exportStack();
        t.deepEqual((state.deployment.resources ?? []).map((r: { type: string }) => r.type).filter((ty: string) => ty !== "pulumi:pulumi:Stack"), []);
        t.is(await boxSnapshot(box), snapshot, "nothing on the box changed");
        t.is((await box.exec("systemctl cat vllm-workstation")).code === 0, false);
    } finally {
        refused.remove();
    }
});

test.serial("the API key and the HF token are real Pulumi secrets, held only encrypted in the stack file", async (t) => {
    t.deepEqual(await ts.stack.getConfig("apiKey"), { value: API_KEY, secret: true });
    t.deepEqual(await ts.stack.getConfig("hfToken"), { value: HF_TOKEN, secret: true });
    const text = fs.readFileSync(path.join(ts.dir, "Pulumi.test.yaml"), "utf8");
    t.deepEqual(leaked(text), []);
    const cfg = (yaml.load(text) as { config: Record<string, unknown> }).config;
    t.regex((cfg["vllm-workstation:apiKey"] as { secure: string }).secure, /^v1:/);
    t.regex((cfg["vllm-workstation:hfToken"] as { secure: string }).secure, /^v1:/);
});

test.serial("by default the service listens on loopback only", async (t) => {
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);
    t.deepEqual(await listeners(), [`127.0.0.1:${port}`]);
    t.is((await box.sh(`grep '^host:' /etc/vllm-workstation/vllm.yaml`)).trim(), `host: "127.0.0.1"`);
});

test.serial("the model download used the HF token, which the endpoint requires", async (t) => {
    // The repository's routes; the Hub's open ones (/health, /tiktoken, the CLI's /api/agent-harnesses) need no token.
    const log = (await rig.hub.requestLog()).filter((e) => e.path.includes(rig.hub.repoId));
    t.true(log.some((e) => e.path.includes("/resolve/") && e.status !== null && e.status < 400), "the model files were served");
    t.deepEqual(log.filter((e) => !e.auth).map((e) => e.path), [], "every request for the repository carried the token");
    t.deepEqual(log.filter((e) => e.status === 401).map((e) => e.path), []);
    const anonymous = await fetch(`${rig.hub.url}/api/models/${rig.hub.repoId}/revision/${rig.hub.commitSha}`);
    t.is(anonymous.status, 401, "without the token the endpoint refuses");
});

test.serial("on a non-loopback host the service answers only with the API key", async (t) => {
    await ts.stack.setConfig("server.host", { value: "0.0.0.0" }, true);
    const r = await up(t);
    const { same, ...changes } = r.summary.resourceChanges ?? {};
    t.deepEqual(changes, { update: 1 }, "only the service changes");
    t.true((same ?? 0) > 3);
    t.deepEqual(await listeners(), [`0.0.0.0:${port}`]);
    const url = `http://127.0.0.1:${port}/v1/models`;
    t.is((await fetch(url)).status, 401);
    t.is((await fetch(url, { headers: { Authorization: `Bearer ${crypto.randomBytes(16).toString("hex")}` } })).status, 401);
    const ok = await fetch(url, { headers: { Authorization: `Bearer ${API_KEY}` } });
    t.is(ok.status, 200);
    t.deepEqual(((await ok.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id), ["gpt-oss-20b"]);
    t.deepEqual(leaked(JSON.stringify(r.outputs)), [], "no stack output holds a secret");
    const pv = await ts.stack.preview({ onOutput: ts.onOutput, diff: true });
    t.deepEqual(Object.keys(pv.changeSummary).filter((k) => k !== "same"), [], "a preview after up changes nothing");
    curlCommandLines = await box.sh(`cat ${curlLog} && rm -f ${curlLog}`);
    t.true(curlCommandLines.includes("/v1/models"), "the instrument saw the service's /v1/models check");
});

// vLLM's --api-key guards only some prefixes (/v1; 0.24.0 adds /v2 and /inference): /invocations,
// /tokenize and /detokenize serve inference without it in both pinned releases, and the test double
// serves them as they do. The stack's middleware closes every route but /health.
const inferenceRoutes: Array<[string, string, Record<string, unknown> | null]> = [
    ["POST", "/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] }],
    ["POST", "/v1/completions", { prompt: "hi" }],
    ["POST", "/invocations", { messages: [{ role: "user", content: "hi" }] }],
    ["POST", "/invocations", { prompt: "hi" }],
    ["POST", "/tokenize", { prompt: "hi there" }],
    ["POST", "/detokenize", { tokens: [1, 2] }],
    ["GET", "/v1/models", null],
];
// Routes the double does not serve (pooling models, other releases, control and description): with the
// key they reach it (404), without it they are refused before routing.
const otherRoutes: Array<[string, string]> = [
    ["POST", "/pooling"],
    ["POST", "/classify"],
    ["POST", "/score"],
    ["POST", "/rerank"],
    ["POST", "/v2/rerank"],
    ["POST", "/inference/v1/generate"],
    ["POST", "/v1/responses"],
    ["POST", "/sleep"],
    ["POST", "/collective_rpc"],
    ["GET", "/ping"],
    ["GET", "/load"],
    ["GET", "/metrics"],
    ["GET", "/version"],
];

test.serial("on a non-loopback host every route that serves inference answers 401 without the key and 200 with it; /health answers without", async (t) => {
    const base = `http://127.0.0.1:${port}`;
    const call = (method: string, route: string, body: Record<string, unknown> | null, key: string | null) =>
        fetch(`${base}${route}`, {
            method,
            headers: { "Content-Type": "application/json", ...(key === null ? {} : { Authorization: `Bearer ${key}` }) },
            body: body === null ? undefined : JSON.stringify(body),
        });
    for (const [method, route, body] of inferenceRoutes) {
        const refused = await call(method, route, body, null);
        t.is(refused.status, 401, `${method} ${route} without the key`);
        t.false((await refused.text()).includes("Hello"), `${method} ${route} without the key infers nothing`);
        t.is((await call(method, route, body, crypto.randomBytes(16).toString("hex"))).status, 401, `${method} ${route} with a wrong key`);
        const ok = await call(method, route, body, API_KEY);
        t.is(ok.status, 200, `${method} ${route} with the key`);
        await ok.text();
    }
    const answered = await (await call("POST", "/invocations", { messages: [{ role: "user", content: "hi" }] }, API_KEY)).json();
    t.is((answered as { object: string }).object, "chat.completion", "with the key /invocations infers");
    for (const [method, route] of otherRoutes) {
        t.is((await call(method, route, method === "POST" ? {} : null, null)).status, 401, `${method} ${route} without the key`);
        t.not((await call(method, route, method === "POST" ? {} : null, API_KEY)).status, 401, `${method} ${route} with the key`);
    }
    const health = await fetch(`${base}/health`);
    t.is(health.status, 200, "/health needs no key: the health checks poll it");
    t.is(await health.text(), "");
});

// The health check's curl once took the key as `-H "Authorization: Bearer $KEY"`, readable by every user
// in `ps` while it ran (curl blanks -u arguments, not -H); it now reads the header from stdin.
test.serial("no command the stack runs on the box carries the API key on its command line", (t) => {
    t.deepEqual(leaked(curlCommandLines), []);
});

test.serial("the state holds the secrets only encrypted", async (t) => {
    // Decrypted with the stack's passphrase (what exportStack does), the state does hold both secrets...
    t.deepEqual(leaked(JSON.stringify(await ts.stack.exportStack())), ["the API key", "the HF token"]);
    // ...and exported as anyone would, or read from the backend's files, it holds neither.
    const exported = await plainExport(ts);
    t.true(exported.includes('"ciphertext"'), "the secrets are in the state, as ciphertext");
    t.deepEqual(leaked(exported), []);
    const files = readTree(path.join(ts.dir, "state"));
    t.true(files.some(([p]) => p.endsWith(path.join("stacks", "vllm-workstation", "test.json"))), files.map(([p]) => p).join("\n"));
    for (const [file, text] of files) t.deepEqual(leaked(text), [], file);
    // The whole project directory: stack file, backups, history, locks.
    for (const [file, text] of readTree(ts.dir)) t.deepEqual(leaked(text), [], file);
});

test.serial("on the box only the root-only secrets file holds the API key, and no file holds the HF token", async (t) => {
    t.is((await box.sh(`stat -c '%a %U %G' ${secretsFile}`)).trim(), "600 root root");
    t.is(await box.sh(`cat ${secretsFile}`), `VLLM_API_KEY=${API_KEY}\n`);
    const unit = await box.sh(`cat ${unitFile}`);
    t.regex(unit, /EnvironmentFile=-\/etc\/vllm-workstation\/secrets\.env/);
    t.deepEqual(leaked(unit), [], "the unit file");
    const others = (await box.sh(`cd /etc/vllm-workstation && find . -type f ! -name '.*' -printf '%P\\n'`)).split("\n").filter((f) => f && f !== "secrets.env");
    // previous/ is the set a switch keeps to go back to: never with the key in it.
    t.deepEqual(others.filter((f) => !f.startsWith("previous/")).sort(), ["cuda.env", "python/vllm_workstation_auth.py", "service.cuda.env", "service.runs-on", "service.serves", "vllm.env", "vllm.yaml"]);
    t.false(others.some((f) => f.startsWith("previous/secrets")), "a switch keeps no copy of the key");
    for (const f of others) t.deepEqual(leaked(await box.sh(`cat /etc/vllm-workstation/${f}`)), [], f);
    t.deepEqual(leaked(await box.sh(`ps -eo args`)), [], "no command line on the box");

    const keyFiles = await filesHolding(API_KEY);
    // The vLLM TEST DOUBLE writes its whole environment to a record in its own (systemd PrivateTmp) /tmp,
    // for the other tests' benefit; real vLLM writes no such file. It must still be unreadable by others.
    const isStandinRecord = (f: string) => /^\/tmp\/systemd-private-[^/]+-vllm-workstation\.service-[^/]+\/tmp\/vllm-standin-record\.json$/.test(f);
    for (const f of keyFiles.filter(isStandinRecord)) {
        t.regex((await box.sh(`stat -c '%a %U' ${f}; stat -c '%a' ${path.posix.dirname(path.posix.dirname(f))}`)).trim(), /^600 vllm\n700$/);
    }
    t.deepEqual(keyFiles.filter((f) => !isStandinRecord(f)), [secretsFile]);
    for (const f of keyFiles.filter((f) => !isStandinRecord(f))) {
        t.regex((await box.sh(`stat -c '%a %U' ${f}`)).trim(), /^[46]00 root$/, f);
    }
    t.deepEqual(await filesHolding(HF_TOKEN), []);
});

test.serial("the journal shows neither the API key nor the HF token", async (t) => {
    const cat = await box.sh(`journalctl --no-pager -o cat`);
    t.true(cat.includes("vllm-standin-record:"), "the service's own log lines are in the journal");
    t.deepEqual(leaked(cat), []);
    // Every field (command lines, environment-derived fields), not only the messages.
    t.deepEqual(leaked(await box.sh(`journalctl --no-pager -o verbose`)), []);
});

test.serial("destroy after venvPath moved in config removes only what up made", async (t) => {
    await ts.stack.setConfig("python.venvPath", { value: venvB }, true);
    t.is((await ts.stack.getConfig("python.venvPath", true)).value, venvB);
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    destroyed = true;
    t.is(d.summary.result, "succeeded");
    t.is((await box.exec(`test -e /opt/ws-a`)).code, 1, "what up made under /opt/ws-a is gone");
    t.is((await box.exec(`test -e ${venvA}-tools`)).code, 1);
    t.is((await box.exec("systemctl cat vllm-workstation")).code !== 0, true);
    t.is((await box.exec("id vllm")).code, 1);
    t.is((await box.exec(`test -e ${secretsFile}`)).code, 1);
    // /opt/ws-b, which the config now names but up never made, is as the user left it.
    t.is((await box.sh(`ls -A /opt/ws-b | sort`)).trim(), "keep-me\nvenv");
    t.is((await box.sh(`ls -A ${venvB}`)).trim(), "keep-me");
    for (const [file, content] of Object.entries(userFiles)) t.is(await box.sh(`cat ${file}`), content, file);
    const left = (await box.sh(`ls -A /var/lib/vllm-workstation`)).trim();
    t.is(left, "keep-me", `the pre-existing directory lost only what up put in it; left: ${await box.sh("find /var/lib/vllm-workstation /var/lib/vllm-workstation-record -ls; cat /var/lib/vllm-workstation-record/* 2>/dev/null || true")}`);
    // The rest of the box is as before up (the pre-existing cache directory has a test of its own).
    const drop = (s: string) => s.split("\n").filter((l) => !l.startsWith(preexistingCache.dir)).join("\n");
    t.is(drop(await boxSnapshot(box)), drop(before));
    t.deepEqual(await filesHolding(API_KEY), [], "no file on the box holds the API key any more");
});

test.serial("the engine printed neither secret in up, preview or destroy", async (t) => {
    const printed = ts.output.join("");
    for (const step of ["Updating (test)", "Previewing update (test)", "Destroying (test)"]) t.true(printed.includes(step), step);
    t.true(printed.includes("workstation-vllm-unit"), "the output shows the resources");
    t.deepEqual(leaked(printed), []);
});

// Destroy once ran `rm -rf /var/cache/vllm-workstation` whether or not the stack made it.
test.serial("an empty cache directory that existed before up survives destroy, emptied of what the service put there", async (t) => {
    t.true(destroyed, "runs after destroy");
    t.is((await box.exec(`test -d ${preexistingCache.dir}`)).code, 0, `${preexistingCache.dir} still exists`);
    t.is((await box.sh(`ls -A ${preexistingCache.dir}`)).trim(), "");
});
