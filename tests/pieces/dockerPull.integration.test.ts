// The images the docker runtime pulls, through the real Pulumi engine against a real Docker engine
// (tests/helpers/docker.ts) and a real registry on loopback (distribution's, built from its Go module):
// an image named by its digest (or by tag and digest) that the stack pulled goes with destroy, one that
// was there before stays, and a run killed (SIGKILL) at each step of its pull leaves nothing that the
// next up and destroy do not recognise. The workstation is this machine (target local), as in
// dockerRuntime.integration.test.ts. Test doubles (no GPU here): nvidia-smi, the NVIDIA toolkit's hook
// and runtime, the image's content (the vLLM test double on Debian), the Hub and the package index.
import test, { ExecutionContext } from "ava";
import * as fs from "fs";
import * as path from "path";
import { pulledTag, pullMark } from "../../components/pieces/dockerRuntime";
import { buildStandinImage, dockerStackHome, Engine, engineState, Registry, startEngine, startRegistry } from "../helpers/docker";
import { changesLookingAhead, Rig, startRig, upLookingAhead } from "../helpers/rig";
import { runScriptAsync } from "../helpers/script";
import { TestStack } from "../helpers/stack";

const base = "vllm/vllm-openai:v0.11.0";

let rig: Rig<undefined>;
let engine: Engine;
let registry: Registry;
let ts: TestStack;
let port: number;
let home: string;
/** The stack config's part that is this machine's (dockerStackHome). */
let here: Readonly<Record<string, unknown>>;
/** The image as the stack names it: <registry>/vllm/vllm-openai@sha256:<digest>. */
let image: string;
let imageId: string;
let dockerBefore: string;
/** The container's apply as the state holds it: what the engine runs on the workstation. */
let apply = "";

test.before(async () => {
    [engine, registry, rig] = await Promise.all([startEngine({ gpuHook: true }), startRegistry(), startRig({ name: "docker-pull", box: false, port: 19000 + Math.floor(Math.random() * 1000) })]);
    ({ port } = rig);
    await buildStandinImage(engine, base, { vllmVersion: "0.11.0", wheelhouse: {} });
    // An image of its own (the stand-in with one more label), so that pulling it adds an image to the
    // engine rather than a name to one that is there; pushed, and then only in the registry.
    const pushed = `${registry.address}/vllm/vllm-openai:v0.11.0`;
    const ctx = fs.mkdtempSync(path.join(engine.dir, "pinned-"));
    fs.writeFileSync(path.join(ctx, "Dockerfile"), `FROM ${base}\nLABEL org.opencontainers.image.ref.name=pinned\n`);
    await engine.dockerOk("build", "-q", "-t", pushed, ctx);
    fs.rmSync(ctx, { recursive: true, force: true });
    await engine.dockerOk("push", pushed);
    image = await engine.dockerOk("image", "inspect", "--format", "{{index .RepoDigests 0}}", pushed);
    imageId = await engine.dockerOk("image", "inspect", "--format", "{{.Id}}", pushed);
    await engine.dockerOk("rmi", pushed);
    if ((await engine.docker("image", "inspect", imageId)).code === 0) throw new Error(`${image} is still in the engine`);
    dockerBefore = await engineState(engine);
    ({ home, config: here } = dockerStackHome("docker-pull", engine, rig));
    ts = await rig.stack({
        config: {
            ...here,
            dockerImage: image,
            dockerVllmVersion: "0.11.0",
            server: { host: "localhost", port, healthTimeoutSeconds: 30 },
        },
    });
});

test.after.always(async () => {
    try {
        await rig?.stop();
    } finally {
        if (home) fs.rmSync(home, { recursive: true, force: true });
        await Promise.all([engine?.stop(), registry?.stop()]);
    }
});

const up = (t: ExecutionContext) => upLookingAhead(ts, t);
const present = async (ref: string) => (await engine.docker("image", "inspect", ref)).code === 0;
const volumes = async () => (await engine.dockerOk("volume", "ls", "-q")).split("\n").filter(Boolean);
async function version(): Promise<string> {
    const r = await fetch(`http://127.0.0.1:${port}/version`);
    return ((await r.json()) as { version: string }).version;
}

interface StateResource {
    urn: string;
    inputs?: { what?: string; apply?: string };
}

async function destroy(t: ExecutionContext): Promise<void> {
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
}

test.serial("an image named by its digest that the stack pulled serves, and destroy takes it away", async (t) => {
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await version(), "0.11.0");
    t.is(await engine.dockerOk("container", "inspect", "--format", "{{.Image}}", "vllm-workstation"), imageId);
    t.is(await engine.dockerOk("image", "inspect", "--format", "{{json .RepoTags}} {{json .RepoDigests}}", imageId), `["${pulledTag(image)}"] ["${image}"]`);
    t.deepEqual(await volumes(), [], "no mark of a pull stays once the image has its tag");
    t.deepEqual(await changesLookingAhead(ts), {}, "the container runs the image the digest names");
    const resources = ((await ts.stack.exportStack()).deployment as { resources?: StateResource[] }).resources ?? [];
    apply = resources.find((x) => x.inputs?.what === "the vLLM container vllm-workstation")?.inputs?.apply ?? "";
    t.true(apply.includes(`docker pull '${image}'`));
    await destroy(t);
    t.false(await present(imageId), "the image the stack pulled is gone");
    t.is(await engineState(engine), dockerBefore);
});

test.serial("an image named by its digest that was there before the first up stays after destroy", async (t) => {
    await engine.dockerOk("pull", image);
    const before = await engineState(engine);
    await up(t);
    t.is(await version(), "0.11.0");
    t.false(await present(pulledTag(image)), "an image that was there is never tagged as pulled");
    await destroy(t);
    t.true(await present(imageId));
    t.is(await engineState(engine), before);
    await engine.dockerOk("rmi", image);
    t.is(await engineState(engine), dockerBefore);
});

test.serial("an image named by its tag and its digest, which docker records by the digest alone, goes with destroy", async (t) => {
    const [repo, digest] = image.split("@");
    const both = `${repo}:v0.11.0@${digest}`;
    await ts.stack.setConfig("dockerImage", { value: both });
    try {
        await up(t);
        t.is(await version(), "0.11.0");
        t.is(await engine.dockerOk("image", "inspect", "--format", "{{json .RepoTags}} {{json .RepoDigests}}", imageId), `["${pulledTag(both)}"] ["${image}"]`);
        await destroy(t);
        t.false(await present(imageId));
        t.is(await engineState(engine), dockerBefore);
    } finally {
        await ts.stack.setConfig("dockerImage", { value: image });
    }
});

// Where the run is killed (the command it is about to run), and what the engine then holds.
const kills: [string, string, { pulled: boolean; tagged: boolean }][] = [
    // The mark of a pull that left no image is dropped, and the next up pulls and marks anew.
    ["before its pull", "docker pull ", { pulled: false, tagged: false }],
    ["between its pull and its tag", "docker tag ", { pulled: true, tagged: false }],
    ["between its tag and taking its mark away", "unmark_pull ", { pulled: true, tagged: true }],
];
for (const [when, command, left] of kills) {
    test.serial(`a run killed ${when} leaves its mark, the next up recognises the image as pulled by the stack, and destroy takes it away`, async (t) => {
        t.true(apply !== "", "the apply from the first test");
        // The apply, killed by SIGKILL just before it runs the command (a DEBUG trap, inherited by functions with set -T).
        const killed = await runScriptAsync(`set -T\ntrap '[[ $BASH_COMMAND != ${JSON.stringify(command)}* ]] || kill -9 $$' DEBUG\n${apply}`, { VLLM_WS_RECORD: process.env.VLLM_WS_RECORD });
        t.is(killed.code, null, killed.stderr);
        t.deepEqual(await volumes(), [pullMark(image)], "the mark of the pull");
        t.is(await present(imageId), left.pulled);
        t.is(await present(pulledTag(image)), left.tagged);
        await up(t);
        t.is(await version(), "0.11.0");
        t.is(await engine.dockerOk("image", "inspect", "--format", "{{json .RepoTags}}", imageId), `["${pulledTag(image)}"]`);
        t.deepEqual(await volumes(), []);
        await destroy(t);
        t.false(await present(imageId), "the image the killed run pulled is gone");
        t.is(await engineState(engine), dockerBefore);
    });
}
