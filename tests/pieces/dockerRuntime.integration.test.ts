// The docker runtime's lifecycle through the real Pulumi engine against a real Docker engine (Debian's
// docker.io, started privately by tests/helpers/docker.ts): a create that fails without the NVIDIA
// toolkit and then converges, the endpoint, a no-op up, drift of every kind in a plain preview and its
// repair, the preflight's refusals, and a destroy that leaves Docker as it was.
// The workstation is this machine (target local) with every path of the stack in a directory of the
// test's own, outside /root (the grammar keeps the stack's directories out of people's homes), and the
// ownership record (own.sh) in it too. Test doubles (no GPU, no registry here): nvidia-smi, the NVIDIA toolkit's hook and
// runtime, the image (the vLLM test double on Debian), the Hub and the package index.
import test, { ExecutionContext } from "ava";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lookingAhead, workstationProgram } from "../../components/program";
import { startBox } from "../helpers/box";
import { buildStandinImage, dockerStackHome, Engine, engineState, startEngine } from "../helpers/docker";
import { changesLookingAhead, Rig, startRig, upLookingAhead } from "../helpers/rig";
import { sshTarget, testStack, TestStack } from "../helpers/stack";
import { wheelhouse } from "../helpers/workstation";

const image = "vllm/vllm-openai:v0.11.0";
const apiKey = "sk-test-docker-0123456789abcdef";

let rig: Rig<undefined>;
let engine: Engine;
let ts: TestStack;
let port: number;
let home: string;
/** The stack config's part that is this machine's (dockerStackHome). */
let here: Readonly<Record<string, unknown>>;
let record: string;
let imageId: string;
let dockerBefore: string;

test.before(async () => {
    [engine, rig] = await Promise.all([startEngine({ gpuHook: false }), startRig({ name: "docker", box: false, port: 19000 + Math.floor(Math.random() * 1000) })]);
    ({ port } = rig);
    imageId = await buildStandinImage(engine, image, { vllmVersion: "0.11.0", wheelhouse });
    dockerBefore = await engineState(engine);
    ({ home, config: here } = dockerStackHome("docker", engine, rig));
    record = process.env.VLLM_WS_RECORD!;
    ts = await rig.stack({
        config: {
            ...here,
            dockerImage: image,
            // Shorter than Docker's default 30 s health interval: the wait must not hang on it.
            server: { host: "localhost", port, healthTimeoutSeconds: 20 },
        },
    });
    await ts.stack.setConfig("apiKey", { value: apiKey, secret: true });
});

test.after.always(async () => {
    try {
        await rig?.stop();
    } finally {
        if (home) fs.rmSync(home, { recursive: true, force: true });
        await engine?.stop();
    }
});

// Every up and preview runs as npm run up and preview run it.
const up = (t: ExecutionContext, opts?: { expectNoChanges?: boolean }) => upLookingAhead(ts, t, opts);
const changed = () => changesLookingAhead(ts);

const inspect = (format: string) => engine.dockerOk("container", "inspect", "--format", format, "vllm-workstation");
const models = (key?: string) => fetch(`http://127.0.0.1:${port}/v1/models`, { headers: key ? { Authorization: `Bearer ${key}` } : {} });

test.serial("a create that fails without the NVIDIA container toolkit converges once the toolkit is there, with no conflict", async (t) => {
    const failed = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") }));
    t.regex(failed!.message, /did not start/);
    t.regex(failed!.message, /NVIDIA Container Toolkit/);
    t.is(await inspect("{{.State.Running}}"), "false", "the failed create left a container behind");

    await engine.restart({ gpuHook: true });
    const started = Date.now();
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);
    t.false(ts.output.join("").includes("Conflict"));
    t.true(Date.now() - started < 30_000, `up took ${Date.now() - started} ms: the health wait does not sit out a 30 s interval`);
});

test.serial("the endpoint answers /v1/models with the API key and 401 without it", async (t) => {
    const ok = await models(apiKey);
    t.is(ok.status, 200);
    t.deepEqual(((await ok.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id), ["gpt-oss-20b"]);
    t.is((await models()).status, 401);
    t.is((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    // Outside /v1, where vLLM's own check does not reach: the key middleware, loaded in the container.
    t.is((await fetch(`http://127.0.0.1:${port}/version`)).status, 401);
    t.is((await fetch(`http://127.0.0.1:${port}/tokenize`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: "hi" }) })).status, 401);
});

test.serial("the container runs vllm serve on the snapshot with the plan's flags, read-only volumes and the key only in its environment", async (t) => {
    const logs = await engine.docker("logs", "vllm-workstation");
    const line = logs.stdout.split("\n").filter((l) => l.startsWith("vllm-standin-record: ")).pop()!;
    const rec = JSON.parse(line.slice("vllm-standin-record: ".length)) as { argv: string[]; args: Record<string, unknown>; env: Record<string, string> };
    t.regex(rec.argv.join(" "), /vllm serve \S+\/models--openai--gpt-oss-20b\/snapshots\/[0-9a-f]{40} /);
    t.is(String(rec.args["max-model-len"]), "32768");
    t.is(String(rec.args["host"]), "0.0.0.0");
    t.is(String(rec.args["port"]), "8000");
    t.is(rec.env.HF_HUB_OFFLINE, "1");
    t.is(rec.env.VLLM_ATTENTION_BACKEND, "TRITON_ATTN", "vLLM 0.11.0, the image's, takes the backend as a variable");
    t.false(rec.argv.join(" ").includes(apiKey));
    const mounts = JSON.parse(await inspect("{{json .Mounts}}")) as Array<{ Source: string; RW: boolean }>;
    t.is(mounts.length, 3, "the model cache, the encodings and the key middleware's module");
    t.true(mounts.every((m) => m.Source.startsWith(home) && m.RW === false));
    t.is(await inspect("{{.Image}}"), imageId);
    t.false((await inspect("{{json .Config.Cmd}}")).includes(apiKey));
});

test.serial("server.host localhost publishes the port on 127.0.0.1 only", async (t) => {
    t.deepEqual(JSON.parse(await inspect("{{json .HostConfig.PortBindings}}")), { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: String(port) }] });
    // The local address of every listener on the port (ss's fourth column).
    const listeners = execFileSync("ss", ["-Hltn", `sport = :${port}`], { encoding: "utf8" }).split("\n").filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
    t.deepEqual([...new Set(listeners)], [`127.0.0.1:${port}`]);
});

test.serial("the docker runtime installs neither vLLM nor the CUDA environment on the host", async (t) => {
    const freeze = execFileSync(path.join(home, "venv-tools", "uv"), ["pip", "freeze", "--python", path.join(home, "venv", "bin", "python")], { encoding: "utf8" });
    t.regex(freeze, /^huggingface-hub==/m);
    t.notRegex(freeze, /^(vllm|flashinfer-python)==/m);
    t.false(ts.output.join("").includes("workstation-cuda"));
});

test.serial("a second up changes nothing, and a refresh finds nothing either", async (t) => {
    const r = await up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
    const refreshed = await ts.stack.refresh({ onOutput: ts.onOutput, expectNoChanges: true });
    t.is(refreshed.summary.result, "succeeded");
    t.deepEqual(await changed(), {});
});

const drifts: Array<[string, () => Promise<unknown>]> = [
    ["the container is stopped", () => engine.dockerOk("stop", "vllm-workstation")],
    ["the container is removed", () => engine.dockerOk("rm", "-f", "vllm-workstation")],
    ["a flag of the container is changed", () => engine.dockerOk("update", "--restart", "no", "vllm-workstation")],
    ["the key middleware's module is edited", async () => fs.appendFileSync(path.join(home, "venv-tools", "container-python", "vllm_workstation_auth.py"), "\nOPEN_PATHS = frozenset({'/health', '/tokenize'})\n")],
    [
        "the image's tag moves to another image",
        async () => {
            const dir = fs.mkdtempSync(path.join(engine.dir, "other-"));
            fs.writeFileSync(path.join(dir, "Dockerfile"), `FROM ${imageId}\nLABEL vllm-ws-test.other=1\n`);
            await engine.dockerOk("build", "-q", "-t", image, dir);
            fs.rmSync(dir, { recursive: true });
        },
    ],
];

for (const [what, drift] of drifts) {
    test.serial(`a plain preview shows drift when ${what}, and up repairs it`, async (t) => {
        await drift();
        t.deepEqual(await changed(), { update: 1 });
        await up(t);
        t.deepEqual(await changed(), {});
        t.is(await inspect("{{.State.Running}}"), "true");
        t.is((await models(apiKey)).status, 200);
        t.is((await fetch(`http://127.0.0.1:${port}/version`)).status, 401);
    });
}

test.serial("the repaired container runs the image the tag names, and the tag's old image comes back with up", async (t) => {
    t.not(await inspect("{{.Image}}"), imageId);
    const other = await engine.dockerOk("image", "inspect", "--format", "{{.Id}}", image);
    t.is(await inspect("{{.Image}}"), other);
    await engine.dockerOk("tag", imageId, image);
    t.deepEqual(await changed(), { update: 1 });
    await up(t);
    t.is(await inspect("{{.Image}}"), imageId);
    await engine.dockerOk("rmi", other);
});

test.serial("the preflight refuses an unreachable engine and a missing image before anything changes", async (t) => {
    const id = await inspect("{{.Id}}");
    await ts.stack.setConfig("dockerHost", { value: `unix://${engine.dir}/nowhere.sock` });
    const down = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput }));
    t.regex(down!.message, /\[docker\] the Docker engine is not reachable/);
    t.regex(down!.message, /fix: start the engine at dockerHost/);
    await ts.stack.setConfig("dockerHost", { value: engine.host });
    // A registry on a loopback port nobody listens on: the lookup fails at once, and only on loopback.
    await ts.stack.setConfig("dockerImage", { value: "127.0.0.1:9/vllm/vllm-openai:v0.11.0" });
    const missing = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput }));
    t.regex(missing!.message, /\[docker-image\] 127\.0\.0\.1:9\/vllm\/vllm-openai:v0\.11\.0 is not in the engine and cannot be pulled/);
    t.regex(missing!.message, /nothing was changed/);
    await ts.stack.setConfig("dockerImage", { value: image });
    t.is(await inspect("{{.Id}}"), id, "the container is the same one");
    t.deepEqual(await changed(), {});
});

test.serial("destroy after the container was removed by hand succeeds and leaves Docker as it was", async (t) => {
    await engine.dockerOk("rm", "-f", "vllm-workstation");
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    t.is(await engineState(engine), dockerBefore, "the image stays: it was there before");
    t.false(fs.existsSync(path.join(home, "venv")));
    t.false(fs.existsSync(path.join(home, "hf")));
    t.false(fs.existsSync(path.join(home, "venv-tools")), "the middleware's directory went with the tools beside the venv");
    t.false(fs.existsSync(record), "everything the stack recorded as its own was removed or released");
});

test.serial("over SSH the docker runtime looks at the workstation's own Docker, and refuses a workstation without one before changing it", async (t) => {
    const box = await startBox({ name: "docker-ssh" });
    const other = await testStack({
        name: "docker-ssh",
        program: workstationProgram,
        config: {
            target: sshTarget(box),
            runtime: "docker",
            python: { version: "3.11", indexUrl: rig.index.url },
            model: { revision: rig.hub.commitSha, endpoint: rig.hub.url },
            gpu: { tier: "24gb" },
        },
    });
    try {
        const before = await box.sh("ls -a /opt /var/lib");
        const refused = await t.throwsAsync(other.stack.up({ onOutput: other.onOutput }));
        t.regex(refused!.message, new RegExp(`\\[docker\\] the docker CLI is not installed on dev@127\\.0\\.0\\.1:${box.port}`));
        t.regex(refused!.message, /fix: install Docker Engine/);
        t.notRegex(refused!.message, /\[systemd\]|\[nvcc\]/);
        t.is(await box.sh("ls -a /opt /var/lib"), before);
    } finally {
        other.remove();
        await box.stop();
    }
});
