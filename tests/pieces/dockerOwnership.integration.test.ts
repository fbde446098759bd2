// Whose images and containers the container's scripts take away, against a real Docker engine and a
// real registry on loopback (tests/helpers/docker.ts): container_lib.sh's functions as the apply and
// remove put them in, and the rendered remove.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { pulledTag } from "../../components/pieces/dockerRuntime";
import { asset } from "../../components/host/shell";
import { Engine, Registry, startEngine, startRegistry } from "../helpers/docker";
import { execFileSync, spawnSync } from "child_process";

let engine: Engine;
let registry: Registry;
let byTag: string;
let byDigest: string;

/** container_lib.sh's functions, as the apply and remove put them in, with their settings. */
const lib = [
    "set -euo pipefail",
    `label_format='{{index .Config.Labels "vllm-workstation.managed"}}'`,
    "managed_label=vllm-workstation.managed",
    "pulling_label=vllm-workstation.pulling",
    asset("container_lib.sh"),
].join("\n");

function sh(script: string, env: NodeJS.ProcessEnv = {}): { code: number; out: string } {
    const r = spawnSync("bash", ["-c", script], { env: { ...process.env, DOCKER_HOST: engine.host, ...env }, encoding: "utf8" });
    return { code: r.status ?? 1, out: r.stdout + r.stderr };
}

test.before(async () => {
    [engine, registry] = await Promise.all([startEngine(), startRegistry()]);
    const dir = fs.mkdtempSync(path.join(engine.dir, "img-"));
    fs.writeFileSync(path.join(dir, "f"), "x");
    execFileSync("tar", ["-C", dir, "-cf", path.join(dir, "img.tar"), "f"]);
    byTag = `${registry.address}/vllm/vllm-openai:v0.11.0`;
    await engine.dockerOk("import", path.join(dir, "img.tar"), byTag);
    await engine.dockerOk("push", byTag);
    byDigest = await engine.dockerOk("image", "inspect", "--format", "{{index .RepoDigests 0}}", byTag);
    await engine.dockerOk("rmi", byTag);
});
test.after.always(async () => {
    await engine?.stop();
    await registry?.stop();
});

async function clean(): Promise<void> {
    await engine.docker("rm", "-f", "vllm-workstation");
    await engine.docker("rmi", "-f", byTag, byDigest, pulledTag(byTag), pulledTag(byDigest));
}

test.serial("an image the user pulled by digest before the stack pulled it by tag is not tagged as pulled, and stays after the stack's remove", async (t) => {
    await clean();
    await engine.dockerOk("pull", byDigest);
    t.not((await engine.docker("image", "inspect", byTag)).code, 0, "the name is new to the engine");
    // The apply's pull, as container_apply.sh runs it.
    const r = sh(`${lib}\nids_before=$(image_ids)\ndocker pull '${byTag}' >/dev/null\ntag_pulled '${byTag}' '${pulledTag(byTag)}' "$ids_before"\nprune_pulled ""`);
    t.is(r.code, 0, r.out);
    t.regex(r.out, /was there before the pull/);
    t.not((await engine.docker("image", "inspect", pulledTag(byTag))).code, 0);
    t.is((await engine.docker("image", "inspect", byDigest)).code, 0, `the user's ${byDigest} was deleted by the stack's remove`);
});

test.serial("a mark left by a run cut off after its pull does not claim an image the user had before the pull", async (t) => {
    await clean();
    await engine.dockerOk("pull", byDigest);
    // Cut off between the pull and its tag: the mark stays; the next run's claim_pulls decides.
    const r = sh(`${lib}\nmark_pull '${byTag}' '${byTag}' "$(image_ids)"\ndocker pull '${byTag}' >/dev/null\nclaim_pulls\nprune_pulled ""`);
    t.is(r.code, 0, r.out);
    t.not((await engine.docker("image", "inspect", pulledTag(byTag))).code, 0);
    t.is((await engine.docker("image", "inspect", byDigest)).code, 0);
    t.is(await engine.dockerOk("volume", "ls", "-q"), "", "the mark is gone");
});

test.serial("a mark left by a run cut off after its pull claims the image it pulled, and remove takes it away", async (t) => {
    await clean();
    const r = sh(`${lib}\nmark_pull '${byTag}' '${byTag}' "$(image_ids)"\ndocker pull '${byTag}' >/dev/null\nclaim_pulls`);
    t.is(r.code, 0, r.out);
    const id = await engine.dockerOk("image", "inspect", "--format", "{{.Id}}", byTag);
    t.is((await engine.docker("image", "inspect", pulledTag(byTag))).code, 0);
    t.is(sh(`${lib}\nprune_pulled ""`).code, 0);
    t.not((await engine.docker("image", "inspect", id)).code, 0);
});

test.serial("the container's remove fails while the engine is unreachable, naming the engine, rather than forgetting a container that restarts with it", (t) => {
    // The remove as tests/fixtures/rendered holds it (tests/rendered.test.ts keeps that equal to what containerScripts renders).
    const remove = fs
        .readFileSync(path.join(__dirname, "..", "..", "..", "tests", "fixtures", "rendered", "container.remove.sh"), "utf8")
        .replace(/^export DOCKER_HOST=.*$/m, "export DOCKER_HOST=unix:///nonexistent/docker.sock");
    const r = sh(`own_kind(){ :; }; own_release_dir(){ :; }\nset -euo pipefail\n${remove}`, { DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    t.not(r.code, 0, `remove exited 0 with the engine unreachable: ${r.out}`);
    t.regex(r.out, /unix:\/\/\/nonexistent\/docker\.sock/);
    t.regex(r.out, /pulumi state delete/);
});

test.serial("an image the stack pulled by tag, then pinned to its digest while a container runs it, still goes with the stack's remove", async (t) => {
    await clean();
    await engine.dockerOk("pull", byTag);
    await engine.dockerOk("tag", byTag, pulledTag(byTag));
    const id = await engine.dockerOk("image", "inspect", "--format", "{{.Id}}", byTag);
    await engine.dockerOk("create", "--name", "vllm-workstation", "--label", "vllm-workstation.managed=true", byDigest, "/f");
    // The apply with dockerImage pinned to the digest: present, no pull; it prunes every other pulled tag.
    const kept = sh(`${lib}\nprune_pulled '${pulledTag(byDigest)}'`);
    t.is(kept.code, 0, kept.out);
    t.regex(kept.out, /a container uses it/);
    t.is((await engine.docker("image", "inspect", pulledTag(byTag))).code, 0, "the pulled tag stays while a container uses the image");
    // Then the stack's remove: its container, then its images.
    await engine.dockerOk("rm", "-f", "vllm-workstation");
    t.is(sh(`${lib}\nprune_pulled ""`).code, 0);
    t.not((await engine.docker("image", "inspect", id)).code, 0, `the image the stack pulled (${id}) stays behind with no mark of the stack's`);
});
