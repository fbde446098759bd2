// An upgrade of the docker runtime's image through the real Pulumi engine against a real Docker engine
// (tests/helpers/docker.ts): an image whose vLLM fails to start is rolled back (the old container serves
// again, the state keeps the old container, so a preview still shows the change), a container kept by a
// switch that was cut off is what the next up goes back to or removes, a container the stack did not
// make, under the kept name or taking the name while a switch has it free, is never touched, a good
// image converges with no kept container left, and destroy leaves Docker as it was. The workstation is
// this machine (target local), as in docker.integration.test.ts. Test doubles (no GPU, no registry
// here): nvidia-smi, the NVIDIA toolkit's hook and runtime, the images (the vLLM test double on Debian;
// its 0.11.1+broken exits at `vllm serve`), the Hub and the package index.
import test, { ExecutionContext } from "ava";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lookingAhead } from "../../components/program";
import { freePort } from "../helpers/box";
import { pulledTag } from "../../components/pieces/dockerRuntime";
import { buildStandinImage, dockerStackHome, Engine, engineState, startEngine } from "../helpers/docker";
import { changesLookingAhead, Rig, startRig, upLookingAhead } from "../helpers/rig";
import { TestStack } from "../helpers/stack";

const good = "vllm/vllm-openai:v0.11.0";
const broken = "vllm/vllm-openai:v0.11.1";
const newer = "vllm/vllm-openai:v0.11.2";
const apiKey = "sk-test-docker-upgrade-0123456789";

let rig: Rig<undefined>;
let engine: Engine;
let ts: TestStack;
let port: number;
let home: string;
/** The stack config's part that is this machine's (dockerStackHome). */
let here: Readonly<Record<string, unknown>>;
let ids: Record<string, string>;
let dockerBefore: string;

test.before(async () => {
    [engine, rig] = await Promise.all([startEngine({ gpuHook: true }), startRig({ name: "docker-upgrade", box: false, port: 19000 + Math.floor(Math.random() * 1000) })]);
    ({ port } = rig);
    // The default wheelhouse holds the vllm doubles 0.11.0, 0.11.2 and 0.11.1+broken.
    ids = {};
    for (const [tag, vllmVersion] of [[good, "0.11.0"], [broken, "0.11.1+broken"], [newer, "0.11.2"]]) {
        ids[tag] = await buildStandinImage(engine, tag, { vllmVersion, wheelhouse: {} });
    }
    dockerBefore = await engineState(engine);
    ({ home, config: here } = dockerStackHome("docker-upgrade", engine, rig));
    ts = await rig.stack({
        config: {
            ...here,
            dockerImage: good,
            server: { host: "localhost", port, healthTimeoutSeconds: 30 },
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

const up = (t: ExecutionContext, opts?: { expectNoChanges?: boolean }) => upLookingAhead(ts, t, opts);
const changed = () => changesLookingAhead(ts);
const upFails = (t: ExecutionContext) => t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") }));
const inspect = (format: string, name = "vllm-workstation") => engine.dockerOk("container", "inspect", "--format", format, name);
const containers = async () => (await engine.dockerOk("ps", "-a", "--format", "{{.Names}}")).split("\n").filter(Boolean).sort();
async function version(key = apiKey, at = port): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${at}/version`, { headers: { Authorization: `Bearer ${key}` } });
    return ((await r.json()) as { version: string }).version;
}
const modelsStatus = async (key = apiKey, at = port) => (await fetch(`http://127.0.0.1:${at}/v1/models`, { headers: { Authorization: `Bearer ${key}` } })).status;

test.serial("the first up serves the first image", async (t) => {
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await version(), "0.11.0");
    t.deepEqual(await containers(), ["vllm-workstation"]);
});

test.serial("a container the stack did not make that takes the name while a switch has it free is never removed: the step fails, and the container to go back to is kept", async (t) => {
    // What a run cut off after it set the serving container aside leaves: that container, running, under
    // the kept name, and the name free. Here one whose main process ignores SIGTERM (sleep as PID 1),
    // so that the next up's stop of it takes the engine's 10 s, in which another program takes the name.
    await engine.dockerOk("rm", "-f", "vllm-workstation");
    const kept = await engine.dockerOk("run", "-d", "--name", "vllm-workstation-previous", "--label", "vllm-workstation.managed=true", "--entrypoint", "sleep", good, "infinity");
    const events = spawn("docker", ["events", "--filter", "container=vllm-workstation-previous", "--filter", "event=kill", "--format", "{{.Action}}"], { env: { ...process.env, DOCKER_HOST: engine.host } });
    // Resolves to the id of the container that took the name, or to "" when no stop came.
    const taken = new Promise<string>((resolve, reject) => {
        events.stdout.once("data", () => engine.dockerOk("create", "--name", "vllm-workstation", good, "/model").then(resolve, reject));
        events.once("exit", () => setTimeout(() => resolve(""), 5000));
    });
    let failed: Error | undefined;
    try {
        failed = await upFails(t);
    } finally {
        events.kill();
    }
    const foreign = await taken;
    t.not(foreign, "", "the up stopped the kept container");
    t.regex(failed!.message, /the container vllm-workstation could not be created: a container named vllm-workstation exists that the stack did not make; the stack leaves it alone, and keeps the container that served as vllm-workstation-previous \(stopped\) to go back to/);
    t.notRegex(failed!.message, /rolled back/);
    t.is(await inspect("{{.Id}}"), foreign, "the container that took the name is still there");
    t.is(await inspect("{{.Config.Labels}}"), "map[]");
    t.is(await inspect("{{.Id}}", "vllm-workstation-previous"), kept, "the container to go back to is still there, under the kept name");
    t.deepEqual(await containers(), ["vllm-workstation", "vllm-workstation-previous"]);
    // Once the name is free again, the next up goes on from the kept container.
    await engine.dockerOk("rm", "vllm-workstation");
    await up(t);
    t.is(await version(), "0.11.0");
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.deepEqual(await changed(), {});
});

test.serial("an image whose vLLM fails to start is rolled back: up fails with its log lines, the old container serves again, and a preview still shows the change", async (t) => {
    const oldId = await inspect("{{.Id}}");
    await ts.stack.setConfig("dockerImage", { value: broken });
    const failed = await upFails(t);
    t.regex(failed!.message, /the container vllm-workstation exited before it served/);
    t.regex(failed!.message, /built to fail at start: CUDA driver too old/, "the new container's last log lines");
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.0\), model revision \([0-9a-f]{40}\) and flags/);
    t.is(await version(), "0.11.0");
    t.is(await modelsStatus(), 200);
    t.is(await inspect("{{.Id}}"), oldId, "the very container that served before");
    t.is(await inspect("{{.Image}}"), ids[good]);
    t.is(await inspect("{{.HostConfig.RestartPolicy.Name}}"), "unless-stopped");
    t.deepEqual(await containers(), ["vllm-workstation"], "the failed one is gone and nothing stays under the kept name");
    t.deepEqual(await changed(), { update: 1 }, "the state records the old container: the wanted change is still to do");
});

test.serial("a run cut off after it set the serving container aside goes back to that container on the next up", async (t) => {
    // What a run killed between the rename and the new container's create leaves.
    const oldId = await inspect("{{.Id}}");
    await engine.dockerOk("stop", "vllm-workstation");
    await engine.dockerOk("rename", "vllm-workstation", "vllm-workstation-previous");
    const failed = await upFails(t);
    t.regex(failed!.message, /found vllm-workstation-previous: an earlier run was cut off/);
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.0\)/);
    t.is(await inspect("{{.Id}}"), oldId);
    t.is(await version(), "0.11.0");
    t.deepEqual(await containers(), ["vllm-workstation"]);
});

test.serial("a run cut off before it stopped the container it set aside goes back to that container on the next up", async (t) => {
    // What a run killed between the rename and the stop leaves: the kept container still serving.
    const oldId = await inspect("{{.Id}}");
    await engine.dockerOk("rename", "vllm-workstation", "vllm-workstation-previous");
    const failed = await upFails(t);
    t.regex(failed!.message, /found vllm-workstation-previous: an earlier run was cut off/);
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.0\)/);
    t.is(await inspect("{{.Id}}"), oldId);
    t.is(await version(), "0.11.0");
    t.deepEqual(await containers(), ["vllm-workstation"]);
});

test.serial("a kept container of the stack's that a cut-off switch left beside a serving one shows in a plain preview, and up removes it", async (t) => {
    // Back on the image that serves: the engine runs the step that failed once more (it does so after
    // any failed step), which finds the container as wanted and leaves it.
    await ts.stack.setConfig("dockerImage", { value: good });
    const id = await inspect("{{.Id}}");
    await up(t);
    t.is(await inspect("{{.Id}}"), id);
    t.deepEqual(await changed(), {});
    // What a run killed after its new container served, before it removed the one it kept, leaves.
    await engine.dockerOk("create", "--name", "vllm-workstation-previous", "--label", "vllm-workstation.managed=true", good, "/model");
    t.deepEqual(await changed(), { update: 1 });
    await up(t);
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.deepEqual(await changed(), {});
});

test.serial("a container a cut-off switch left kept is no way back once the container of the name serves: the next switch goes back to what served when it started", async (t) => {
    // What a run killed after its new container served, before it removed the one it kept, leaves
    // (here a container that could never serve): an older container than the one that serves now.
    await engine.dockerOk("create", "--name", "vllm-workstation-previous", "--label", "vllm-workstation.managed=true", good, "/model");
    const id = await inspect("{{.Id}}");
    await ts.stack.setConfig("dockerImage", { value: broken });
    const failed = await upFails(t);
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.0\)/);
    t.is(await inspect("{{.Id}}"), id, "the container that served when the up started");
    t.is(await version(), "0.11.0");
    t.deepEqual(await containers(), ["vllm-workstation"]);
});

test.serial("a run cut off before it stopped the container it set aside finishes a good switch on the next up", async (t) => {
    // The kept container still runs and holds the published port: the next up stops it before it
    // starts the new one, which then serves.
    await engine.dockerOk("rename", "vllm-workstation", "vllm-workstation-previous");
    await ts.stack.setConfig("dockerImage", { value: newer });
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await version(), "0.11.2");
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.deepEqual(await changed(), {});
});

test.serial("a switch that moves the port and rotates the API key to an image that fails brings the old container back on its own address with the new key; the rotated-away key stays refused", async (t) => {
    const port2 = await freePort();
    const apiKey2 = "sk-test-docker-upgrade-rotated-9876543210";
    await ts.stack.setConfig("dockerImage", { value: broken });
    await ts.stack.setConfig("server.port", { value: String(port2) }, true);
    await ts.stack.setConfig("apiKey", { value: apiKey2, secret: true });
    const failed = await upFails(t);
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.2\)/);
    t.notRegex(failed!.message, new RegExp(apiKey2));
    t.notRegex(failed!.message, new RegExp(apiKey));
    t.is(await version(apiKey2), "0.11.2", "the old container on its own port, answering the key in force now");
    t.is(await modelsStatus(apiKey2), 200);
    t.is(await modelsStatus(apiKey), 401, "the rotated-away key is refused");
    t.is(await inspect("{{.Image}}"), ids[newer]);
    t.is(await inspect("{{.HostConfig.RestartPolicy.Name}}"), "unless-stopped");
    t.is(await inspect('{{index .Config.Labels "vllm-workstation.managed"}}'), "true");
    t.notRegex(await inspect("{{json .Config.Env}}"), new RegExp(apiKey), "no container holds the rotated-away key");
    await t.throwsAsync(fetch(`http://127.0.0.1:${port2}/health`), undefined, "nothing on the new port");
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.deepEqual(await changed(), { update: 1 });
    // Back to the first image, address and key: it converges, and nothing is kept.
    await ts.stack.setConfig("dockerImage", { value: good });
    await ts.stack.setConfig("server.port", { value: String(port) }, true);
    await ts.stack.setConfig("apiKey", { value: apiKey, secret: true });
    await up(t);
    t.is(await version(), "0.11.0");
    t.is(await modelsStatus(apiKey2), 401);
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.deepEqual(await changed(), {});
});

test.serial("a rollback puts back the key middleware's module the old container ran with, and the next good up writes the stack's again", async (t) => {
    // What a release of the stack with another module leaves beside the container it made.
    const module = path.join(home, "venv-tools", "container-python", "vllm_workstation_auth.py");
    const stacks = fs.readFileSync(module, "utf8");
    const earlier = stacks + "# the module of an earlier release\n";
    fs.writeFileSync(module, earlier);
    await ts.stack.setConfig("dockerImage", { value: broken });
    const failed = await upFails(t);
    t.regex(failed!.message, /rolled back: the container vllm-workstation serves again on the previous image \(vllm\/vllm-openai:v0\.11\.0\)/);
    t.is(fs.readFileSync(module, "utf8"), earlier, "the module the old container ran with");
    t.is(fs.statSync(module).mode & 0o777, 0o644);
    t.is(await version(), "0.11.0");
    t.is(await modelsStatus(), 200);
    t.deepEqual(await changed(), { update: 1 });
    await ts.stack.setConfig("dockerImage", { value: good });
    await up(t);
    t.is(fs.readFileSync(module, "utf8"), stacks);
    t.is(await version(), "0.11.0");
    t.deepEqual(await changed(), {});
});

test.serial("a container of the kept name that the stack did not make is never touched: a switch that needs the name stops before changing anything", async (t) => {
    await engine.dockerOk("create", "--name", "vllm-workstation-previous", good, "/model");
    const id = await inspect("{{.Id}}");
    await ts.stack.setConfig("dockerImage", { value: newer });
    const refused = await upFails(t);
    t.regex(refused!.message, /a container named vllm-workstation-previous exists that the stack did not make/);
    t.is(await inspect("{{.Id}}"), id);
    t.is(await version(), "0.11.0");
    t.is(await inspect("{{.Config.Labels}}", "vllm-workstation-previous"), "map[]");
    await engine.dockerOk("rm", "vllm-workstation-previous");
});

test.serial("a good image converges, no kept container stays, and of the images the stack pulled only the one in service stays", async (t) => {
    // No registry here: the old image is marked as the apply marks an image it pulled (its tag), so the
    // prune after the switch takes it; the broken one, which the stack did not pull, stays.
    await engine.dockerOk("tag", good, pulledTag(good));
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await version(), "0.11.2");
    t.is(await inspect("{{.Image}}"), ids[newer]);
    t.deepEqual(await containers(), ["vllm-workstation"]);
    t.not((await engine.docker("image", "inspect", ids[good])).code, 0, "the image the stack pulled and no longer serves is gone");
    t.not((await engine.docker("image", "inspect", pulledTag(good))).code, 0);
    t.is((await engine.docker("image", "inspect", broken)).code, 0, "an image the stack did not pull stays");
    t.deepEqual(await changed(), {});
    await up(t, { expectNoChanges: true });
});

test.serial("destroy leaves Docker as it was, but for the images the stack pulled, and takes a kept container of the stack's too", async (t) => {
    await engine.dockerOk("tag", newer, pulledTag(newer));
    // What a switch cut off before it finished leaves beside the container.
    await engine.dockerOk("create", "--name", "vllm-workstation-previous", "--label", "vllm-workstation.managed=true", broken, "/model");
    // What a run cut off while it wrote the key middleware's module leaves: its temporary file.
    const moduleDir = path.join(home, "venv-tools", "container-python");
    fs.writeFileSync(path.join(moduleDir, "vllm_workstation_auth.py.Kx91aB"), "half a module");
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    t.false(fs.existsSync(moduleDir), "the module's directory goes, with a temporary file of the module's");
    const pulled = new Set([ids[good], ids[newer]].map((id) => id.replace(/^sha256:/, "").slice(0, 12)));
    const expected = dockerBefore.split("\n").filter((l) => !pulled.has(l.split(" ").pop()!)).join("\n");
    t.is(await engineState(engine), expected);
    t.notRegex(await engineState(engine), /vllm-workstation-pulled/);
});
