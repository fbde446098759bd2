import test from "ava";
import * as crypto from "crypto";
import { ROLLED_BACK_EXIT } from "../../components/host/provider";
import { parseConfig } from "../../components/config/schema";
import { spawnSync } from "child_process";
import { asset } from "../../components/host/shell";
import { containerArgs, containerEnv, containerScripts, dockerChecks, dockerPreflightProbe, familiarImage, imageRegistry, hostAuthModulePath, hostPythonDir, previousContainerName, publishSpec, pulledTag, pullingLabel, pullMark } from "../../components/pieces/dockerRuntime";
import { authMiddleware } from "../../components/pieces/vllmService";
import type { ServingPlan } from "../../components/pieces/vllmService";
import { plan12, revision, snapshot, tiktokenDir } from "../helpers/plans";

const config = parseConfig({ model: { revision }, runtime: "docker" });


const plan24: ServingPlan = { ...plan12, gpuMemoryUtilization: 0.92, cpuOffloadGb: 0, maxModelLen: 32768, maxNumSeqs: 16, maxNumBatchedTokens: 8192, enforceEager: false };

/** The value after `--name` in argv, or undefined. */
function flag(argv: string[], name: string): string | undefined {
    const i = argv.indexOf(`--${name}`);
    return i < 0 ? undefined : argv[i + 1];
}

test("the container's argv is serve, the snapshot path and then the same flags as the service, for a 12 GB-like plan", (t) => {
    t.deepEqual(containerArgs(config, plan12, snapshot), [
        "serve",
        snapshot,
        "--served-model-name", "gpt-oss-20b",
        "--host", "0.0.0.0",
        "--port", "8000",
        "--gpu-memory-utilization", "0.9",
        "--max-model-len", "4096",
        "--max-num-seqs", "2",
        "--kv-cache-dtype", "auto",
        "--max-num-batched-tokens", "1024",
        "--cpu-offload-gb", "4",
        "--enforce-eager",
    ]);
});

test("the container listens on 0.0.0.0:8000 inside, whatever the host address and port", (t) => {
    const c = parseConfig({ model: { revision }, runtime: "docker", server: { host: "127.0.0.1", port: 9001 } });
    const argv = containerArgs(c, plan24, snapshot);
    t.is(flag(argv, "host"), "0.0.0.0");
    t.is(flag(argv, "port"), "8000");
    t.is(argv.filter((a) => a === "--host").length, 1);
    t.is(argv.filter((a) => a === "--port").length, 1);
});

test("enforce-eager is a bare flag, and no argument is the string true", (t) => {
    const argv = containerArgs(config, plan12, snapshot);
    t.is(argv[argv.length - 1], "--enforce-eager");
    t.false(argv.includes("true"));
});

test("a 24 GB-like plan passes neither cpu-offload-gb nor enforce-eager to the container", (t) => {
    const argv = containerArgs(config, plan24, snapshot);
    t.deepEqual(argv.slice(0, 2), ["serve", snapshot]);
    t.false(argv.includes("--cpu-offload-gb"));
    t.false(argv.includes("--enforce-eager"));
    t.is(flag(argv, "max-model-len"), "32768");
    t.is(argv.length % 2, 0, "serve and the snapshot, then name/value pairs");
});

test("the container env keeps vLLM offline with the local encodings and the planned attention backend", (t) => {
    t.deepEqual(containerEnv(config, plan12, tiktokenDir), [
        "HF_HUB_OFFLINE=1",
        "HF_HUB_CACHE=/var/lib/vllm-workstation/hf",
        `TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`,
        "VLLM_NO_USAGE_STATS=1",
        "DO_NOT_TRACK=1",
        "VLLM_ATTENTION_BACKEND=TRITON_ATTN",
    ]);
});

test("the container env leaves VLLM_ATTENTION_BACKEND out where the image's vLLM takes the flag, and never holds an API key", (t) => {
    const c = parseConfig({ model: { revision }, runtime: "docker", dockerImage: "vllm/vllm-openai:v0.24.0", apiKey: "sk-local-0123456789abcdef" });
    const env = containerEnv(c, plan24, tiktokenDir);
    t.true(env.includes("HF_HUB_OFFLINE=1"));
    t.false(env.some((e) => e.startsWith("VLLM_ATTENTION_BACKEND=")));
    t.false(env.some((e) => e.includes("API_KEY") || e.includes("sk-local")));
});

test("the flags follow the image's vLLM, not the venv's pin: 0.24.0 takes the attention backend as a flag", (t) => {
    const c = parseConfig({ model: { revision }, runtime: "docker", dockerImage: "vllm/vllm-openai:v0.24.0", python: { vllmVersion: "0.11.0" } });
    t.is(flag(containerArgs(c, plan12, snapshot), "attention-backend"), "TRITON_ATTN");
    t.false(containerEnv(c, plan12, tiktokenDir).some((e) => e.startsWith("VLLM_ATTENTION_BACKEND=")));
    const pinned = parseConfig({ model: { revision }, runtime: "docker", dockerImage: "registry.lan/vllm:gpu", dockerVllmVersion: "0.11.0", python: { vllmVersion: "0.24.0" } });
    t.is(flag(containerArgs(pinned, plan12, snapshot), "attention-backend"), undefined);
    t.true(containerEnv(pinned, plan12, tiktokenDir).includes("VLLM_ATTENTION_BACKEND=TRITON_ATTN"));
});

test("localhost is published on 127.0.0.1, an IPv6 address in brackets, and a wildcard as itself", (t) => {
    const at = (host: string) => publishSpec(parseConfig({ model: { revision }, runtime: "docker", server: { host, port: 9001 }, apiKey: "sk-local-0123456789abcdef" }));
    t.is(at("localhost"), "127.0.0.1:9001:8000");
    t.is(at("::1"), "[::1]:9001:8000");
    t.is(at("0.0.0.0"), "0.0.0.0:9001:8000");
});

const scripts = containerScripts({ config, plan: plan12, snapshotPath: snapshot, tiktokenDir, apiKeyId: null });

test("the container's expected probe text names its image, flags, ports, volumes and environment, one key a line", (t) => {
    const lines = scripts.expected.split("\n");
    t.regex(lines[0], /^auth-module=[0-9a-f]{64}$/);
    t.is(lines[1], "managed=true");
    t.true(lines.includes('entrypoint=["vllm"]'));
    t.true(lines.includes(`args=${JSON.stringify(containerArgs(config, plan12, snapshot))}`));
    t.true(lines.includes('ports={"8000/tcp":[{"HostIp":"127.0.0.1","HostPort":"8000"}]}'));
    t.true(lines.includes("bind=/var/lib/vllm-workstation/hf:/var/lib/vllm-workstation/hf:ro"));
    t.true(lines.includes(`bind=${tiktokenDir}:${tiktokenDir}:ro`));
    t.true(lines.includes(`bind=${hostPythonDir(config)}:/opt/vllm-workstation/python:ro`));
    t.true(lines.includes("running=true"));
    t.true(lines.includes("image=vllm/vllm-openai:v0.11.0"));
    t.true(lines.includes("env=HF_HUB_OFFLINE=1"));
    t.is(lines[lines.length - 1], "api-key=none");
});

test("apply never removes a container the stack did not make, and remove takes an image only if the stack pulled it", (t) => {
    t.regex(scripts.apply, /exists that the stack did not make; the stack leaves it alone/);
    t.regex(scripts.apply, new RegExp(`${previousContainerName} exists that the stack did not make`));
    t.regex(scripts.remove, /for c in "\$name" "\$previous"; do\n  case "\$\(kind_of "\$c"\)" in\n    ours\) docker rm -f "\$c"/);
    // Tagged as pulled only when the image's ID was not in the engine before the pull.
    t.true(scripts.apply.includes(`tag_pulled 'vllm/vllm-openai:v0.11.0' '${pulledTag("vllm/vllm-openai:v0.11.0")}' "$ids_before"`));
    t.regex(scripts.remove, /if grep -qxF "\$id" <<<"\$3"; then/);
    // A container that uses an image keeps the image and its tag as pulled.
    t.regex(scripts.remove, /docker ps -aq --filter "ancestor=\$id"/);
    // Pruning goes by the stack's tags only, and takes the name a tag marks by its hash.
    t.true(scripts.apply.includes(`prune_pulled '${pulledTag("vllm/vllm-openai:v0.11.0")}'`));
    t.regex(scripts.remove, /docker image ls --format '\{\{\.Repository\}\}:\{\{\.Tag\}\}' vllm-workstation-pulled/);
    t.regex(scripts.remove, /"vllm-workstation-pulled:\$\(name_hash "\$n"\)" = "\$1"/);
    // An image pulled by its digest has that name among its digests, not its tags.
    t.regex(scripts.remove, /\{\{range \.RepoTags\}\}\{\{println \.\}\}\{\{end\}\}\{\{range \.RepoDigests\}\}\{\{println \.\}\}\{\{end\}\}/);
    t.regex(pulledTag("vllm/vllm-openai:v0.11.0"), /^vllm-workstation-pulled:[0-9a-f]{16}$/);
    t.is(pulledTag("vllm/vllm-openai:v0.11.0").split(":")[1], crypto.createHash("sha256").update("vllm/vllm-openai:v0.11.0").digest("hex").slice(0, 16), "the hash the scripts compute");
});

test("an image's marks are named after the image as docker prints it, however the config writes the name", (t) => {
    const digest = `sha256:${"ab12".repeat(16)}`;
    const same: [string, string][] = [
        ["vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.11.0"],
        ["docker.io/vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.11.0"],
        ["index.docker.io/vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.11.0"],
        ["vllm/vllm-openai", "vllm/vllm-openai:latest"],
        ["docker.io/library/ubuntu:24.04", "ubuntu:24.04"],
        ["library/ubuntu", "ubuntu:latest"],
        ["docker.io/ubuntu", "ubuntu:latest"],
        [`vllm/vllm-openai@${digest}`, `vllm/vllm-openai@${digest}`],
        [`docker.io/vllm/vllm-openai:v0.11.0@${digest}`, `vllm/vllm-openai@${digest}`],
        [`registry.lan:5000/vllm-openai@${digest}`, `registry.lan:5000/vllm-openai@${digest}`],
        [`127.0.0.1:5000/library/vllm:v1@${digest}`, `127.0.0.1:5000/library/vllm@${digest}`],
        ["localhost/vllm:v1", "localhost/vllm:v1"],
        ["[::1]:5000/vllm-openai:v1", "[::1]:5000/vllm-openai:v1"],
    ];
    for (const [configured, printed] of same) {
        t.is(familiarImage(configured), printed, configured);
        t.is(pulledTag(configured), pulledTag(printed), configured);
        t.is(pullMark(configured).split("-").pop(), pulledTag(printed).split(":")[1], configured);
    }
    t.not(pulledTag("vllm/vllm-openai:v0.11.0"), pulledTag("vllm/vllm-openai:v0.11.2"));
    t.is(imageRegistry("vllm/vllm-openai:v0.11.0"), "docker.io");
    t.is(imageRegistry("index.docker.io/vllm/vllm-openai:v0.11.0"), "docker.io");
    t.is(imageRegistry(`127.0.0.1:5000/vllm/vllm-openai@${digest}`), "127.0.0.1:5000");
    t.is(imageRegistry("Registry/vllm:v1"), "Registry");
});

test("the docker preflight looks an image up over plain HTTP only in a registry the engine pulls from over plain HTTP, and only after the look-up over TLS failed", (t) => {
    const probe = (image: string) => dockerPreflightProbe(parseConfig({ model: { revision }, runtime: "docker", dockerImage: image, dockerVllmVersion: "0.11.0" })).probe;
    t.regex(probe("registry.lan:5000/vllm-openai:v1"), /\nregistry='registry\.lan:5000'\n/);
    t.regex(probe("vllm/vllm-openai:v0.11.0"), /\nregistry='docker\.io'\n/);
    const p = probe("vllm/vllm-openai:v0.11.0");
    t.true(p.indexOf("docker manifest inspect 'vllm/vllm-openai:v0.11.0'") < p.indexOf("engine_insecure && timeout 30 docker manifest inspect --insecure 'vllm/vllm-openai:v0.11.0'"));
    t.is(p.split("manifest inspect --insecure").length, 2, "one look-up with --insecure");
    const fn = p.slice(p.indexOf("engine_insecure() {"), p.indexOf("\n}\n", p.indexOf("engine_insecure() {")) + 2);
    // TEST DOUBLE of `docker info` (a shell function in its place): what it prints of the engine's
    // insecure ranges and registries for Debian's 20.10 as installed, and for a newer engine told that
    // registry.lan:5000 is insecure. The loopback case runs against a real engine and registry in
    // dockerPull.integration.test.ts.
    const engines = { plain: "127.0.0.0/8 ", told: "127.0.0.0/8 ::1/128 registry.lan:5000 " };
    const cases: [string, keyof typeof engines, boolean][] = [
        ["127.0.0.1:5000", "plain", true],
        ["localhost", "plain", true],
        ["[::1]:5000", "plain", false],
        ["[::1]:5000", "told", true],
        ["127.evil.example:5000", "told", false],
        ["registry.lan:5000", "plain", false],
        ["registry.lan:5000", "told", true],
        ["docker.io", "told", false],
    ];
    for (const [registry, engine, insecure] of cases) {
        const r = spawnSync("bash", ["-c", `engine_out=$2\ndocker() { printf '%s' "$engine_out"; }\nregistry=$1\n${fn}\nengine_insecure`, "bash", registry, engines[engine]], { encoding: "utf8" });
        t.is(r.status === 0, insecure, `${registry} on the ${engine} engine`);
    }
});

test("the scripts name an image's marks with the hash the program computes", (t) => {
    const image = `127.0.0.1:5000/vllm/vllm-openai@sha256:${"ab12".repeat(16)}`;
    const lib = asset("container_lib.sh");
    const r = spawnSync("bash", ["-c", `${lib}\nname_hash "$1"`, "bash", image], { encoding: "utf8" });
    t.is(r.status, 0, r.stderr);
    t.is(`vllm-workstation-pulled:${r.stdout.trim()}`, pulledTag(image));
    t.is(`vllm-workstation-pulling-${r.stdout.trim()}`, pullMark(image));
});

test("the apply marks a pull before it begins and takes the mark away once the image has its tag or the pull failed; apply and remove first tag what a cut-off pull left", (t) => {
    const image = "vllm/vllm-openai:v0.11.0";
    const pull = scripts.apply.indexOf(`docker pull '${image}'`);
    const mark = scripts.apply.indexOf(`mark_pull '${image}' '${image}'`);
    const tag = scripts.apply.indexOf(`tag_pulled '${image}' '${pulledTag(image)}' "$ids_before"`);
    const unmark = scripts.apply.indexOf(`unmark_pull '${image}'\n`);
    const claim = scripts.apply.indexOf("\nclaim_pulls\n");
    t.true(claim > 0 && claim < mark && mark < pull && pull < tag && tag < unmark, "claim, mark, pull, tag, unmark");
    t.regex(scripts.apply, /docker pull 'vllm\/vllm-openai:v0\.11\.0' >&2 \|\| \{ unmark_pull 'vllm\/vllm-openai:v0\.11\.0'; echo 'cannot pull/);
    // Marked only when the image is not there: an image that was is never tagged as pulled.
    t.regex(scripts.apply, /if ! docker image inspect 'vllm\/vllm-openai:v0\.11\.0' >\/dev\/null 2>&1; then\n  echo 'pulling vllm\/vllm-openai:v0\.11\.0' >&2\n(  #.*\n)*  ids_before=\$\(image_ids\)\n  mark_pull 'vllm\/vllm-openai:v0\.11\.0' 'vllm\/vllm-openai:v0\.11\.0' "\$ids_before"\n/);
    // Neither runs against an engine that does not answer: remove would forget a container that comes back with it.
    t.true(scripts.remove.indexOf("\nneed_engine\n") > 0 && scripts.remove.indexOf("\nneed_engine\n") < scripts.remove.indexOf("\nclaim_pulls\n"));
    t.true(scripts.apply.indexOf("\nneed_engine\n") > 0 && scripts.apply.indexOf("\nneed_engine\n") < scripts.apply.indexOf("\nclaim_pulls\n"));
    t.true(scripts.remove.indexOf("\nclaim_pulls\n") < scripts.remove.indexOf('prune_pulled ""'));
    t.true(scripts.remove.indexOf("\nclaim_pulls\n") > 0);
    t.true(scripts.apply.includes(`pulling_label='${pullingLabel}'\n`));
});

test("a rollback removes the container of the name only when the stack made it, and fails without taking the name back otherwise", (t) => {
    const start = scripts.apply.indexOf("roll_back() {");
    const rollBack = scripts.apply.slice(start, scripts.apply.indexOf("\n}\n", start) + 2);
    t.regex(rollBack, /^roll_back\(\) \{\n  local [^\n]*\n  case "\$\(kind_of "\$name"\)" in\n    ours\)\n[^]*?docker rm -f "\$name"[^]*?\n    other\)\n[^]*?a container named \$name exists that the stack did not make[^]*?exit 1\n/);
    t.is(rollBack.split("docker rm -f \"$name\"").length, 2, "one removal of the name, under ours");
});

test("a switch keeps the serving container under a fixed name of the stack's and fails with the service's rolled-back exit status", (t) => {
    t.is(previousContainerName, "vllm-workstation-previous");
    t.true(scripts.apply.includes(`rolled_back_exit=${ROLLED_BACK_EXIT}\n`));
    t.true(scripts.apply.includes(`previous='${previousContainerName}'\n`));
    // Kept when it passes the health check with its own address, served name and key (settings_of).
    t.regex(scripts.apply, /if \[ "\$can_roll_back" = no \] && serving_now "\$name"; then/);
    t.regex(scripts.apply, /VLLM_WS_API_KEY=\$c_key authed_get "\$c_base\/v1\/models"/);
    t.regex(scripts.apply, /docker rename "\$name" "\$previous"\n\s+docker stop "\$previous" >\/dev\/null/);
    // The probe shows a kept container of the stack's, so a plan after a cut-off switch is not empty.
    t.regex(scripts.probe, /previous=vllm-workstation-previous \(a switch that did not finish\)/);
    t.false(scripts.expected.includes("previous="));
});

test("the way back to a container that held another API key makes it anew from the settings every container of the stack has, the key passed by name only", (t) => {
    const fixed = scripts.apply.match(/^create_fixed=\((.*)\)$/m);
    t.truthy(fixed);
    t.is(fixed![1], "'docker' 'create' '--name' 'vllm-workstation' '--label' 'vllm-workstation.managed=true' '--entrypoint' 'vllm' '--gpus' 'all' '--ipc' 'host' '--restart' 'unless-stopped'");
    t.true(scripts.apply.includes(`key_middleware='${authMiddleware}'\n`));
    t.true(scripts.apply.includes(`key_bind='${hostPythonDir(config)}:/opt/vllm-workstation/python:ro'\n`));
    t.true(scripts.apply.includes("key_env='PYTHONPATH=/opt/vllm-workstation/python'\n"));
    // Both creates start from the same settings; the key's value reaches docker as a variable it copies.
    t.regex(scripts.apply, /VLLM_API_KEY="\$\{VLLM_WS_API_KEY:-\}" "\$\{create_fixed\[@\]\}" '-p'/);
    t.regex(scripts.apply, /envs\+=\(-e "\$key_env" -e VLLM_API_KEY\)/);
    t.regex(scripts.apply, /VLLM_API_KEY=\* \| "\$key_env"\) ;;/, "the kept container's own key is never copied");
});

const b64 = (s: string) => Buffer.from(s).toString("base64");

test("the docker preflight names a missing CLI, an unreachable engine, a missing NVIDIA runtime and an image that cannot be had, each with its fix", (t) => {
    const [cli] = dockerChecks(config, "docker-cli=missing", "this machine");
    t.is(cli.level, "error");
    t.regex(cli.message, /the docker CLI is not installed on this machine/);
    t.regex(cli.fix!, /install Docker Engine/);
    const [engine] = dockerChecks(config, `docker-cli=present\ndocker-engine=unreachable ${b64("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")}`, "dev@ws1:22");
    t.regex(engine.message, /not reachable from dev@ws1:22: Cannot connect to the Docker daemon/);
    t.regex(engine.fix!, /systemctl start docker/);
    const [denied] = dockerChecks(config, `docker-cli=present\ndocker-engine=unreachable ${b64("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock")}`, "dev@ws1:22");
    t.is(denied.level, "error");
    t.regex(denied.message, /socket on dev@ws1:22 refused the probe's user \(permission denied\): permission denied while trying/);
    t.regex(denied.fix!, /reaches the engine as root: check the owner and mode of the engine's socket/);
    const checks = dockerChecks(config, `docker-cli=present\ndocker-engine=24.0.7\ndocker-runtimes=io.containerd.runc.v2 runc \ndocker-image=unavailable ${b64("pull access denied")}`, "this machine");
    const byId = Object.fromEntries(checks.map((c) => [c.id, c]));
    t.is(byId["docker"].level, "ok");
    t.is(byId["nvidia-container-toolkit"].level, "error");
    t.regex(byId["nvidia-container-toolkit"].fix!, /nvidia-ctk runtime configure --runtime=docker/);
    t.is(byId["docker-image"].level, "error");
    t.regex(byId["docker-image"].message, /cannot be pulled: pull access denied/);
});

test("the docker preflight passes an engine with the nvidia runtime and an image that is there or can be pulled", (t) => {
    for (const image of ["present", "pullable"]) {
        const checks = dockerChecks(config, `docker-cli=present\ndocker-engine=20.10.24\ndocker-runtimes=io.containerd.runc.v2 nvidia runc \ndocker-image=${image}`, "this machine");
        t.deepEqual(checks.map((c) => c.level), ["ok", "ok", "ok"]);
    }
});

test("with an API key the container loads the middleware that requires it on every route but /health; without one it does not", (t) => {
    t.is(flag(containerArgs(config, plan24, snapshot, true), "middleware"), authMiddleware);
    t.false(containerArgs(config, plan24, snapshot, false).includes("--middleware"));
    t.false(containerArgs(config, plan24, snapshot).includes("--middleware"));
});

test("with an API key the container finds the middleware's module through PYTHONPATH, from a read-only mount of the stack's own directory", (t) => {
    const keyed = containerScripts({ config, plan: plan12, snapshotPath: snapshot, tiktokenDir, apiKeyId: "0123456789ab" });
    t.true(containerEnv(config, plan12, tiktokenDir, true).includes("PYTHONPATH=/opt/vllm-workstation/python"));
    t.false(containerEnv(config, plan12, tiktokenDir, false).some((e) => e.startsWith("PYTHONPATH=")));
    t.true(keyed.expected.split("\n").includes("env=PYTHONPATH=/opt/vllm-workstation/python"));
    t.true(keyed.expected.split("\n").includes(`args=${JSON.stringify(containerArgs(config, plan12, snapshot, true))}`));
    t.true(keyed.apply.includes(`own_dir '${hostPythonDir(config)}'`));
    t.true(keyed.apply.includes(`mv -f "$tmp" '${hostAuthModulePath(config)}'`));
    t.true(keyed.apply.indexOf(`own_dir '${hostPythonDir(config)}'`) < keyed.apply.indexOf(`mv -f "$tmp" '${hostAuthModulePath(config)}'`), "the directory is the stack's before the module is written");
});

test("remove takes the module only from a directory the stack holds, and releases that directory as own.sh does", (t) => {
    t.true(scripts.remove.includes(`if [ -n "$(own_kind '${hostPythonDir(config)}')" ]; then rm -f '${hostAuthModulePath(config)}' '${hostAuthModulePath(config)}'.??????; fi`));
    t.true(scripts.remove.includes(`own_release_dir '${hostPythonDir(config)}'`));
    t.false(/rm -rf/.test(scripts.remove));
});
