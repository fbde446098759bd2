// runtime: "docker": vLLM in the vllm/vllm-openai image, with the same flags, the model cache as a
// read-only volume, every card through a GPU device request, and the same offline environment.
//
// The container is a HostState piece driven through the docker CLI on the workstation, over the same
// connection as every other piece, rather than @pulumi/docker's Container. That provider's state is what
// its last up or refresh saw, so a stopped, removed or changed container stayed invisible to a plain
// preview and `up` reported success with nothing running; its delete failed on a container removed by
// hand; a create that failed half-way (no NVIDIA toolkit, a slow health check) left a container of the
// fixed name that every later create collided with; its health wait could not start before Docker's
// first interval; and it talks to the engine of the machine that runs Pulumi, not the workstation's.
// The piece's probe reads the container on every preview (observe.ts), its apply converges whatever it
// finds, and its remove takes away only what the stack made.
import type { WorkstationConfig } from "../config/schema";
import type { Piece } from "./observe";
import { layout } from "./python";
import { Check } from "../preflight/checks";
import { ROLLED_BACK_EXIT } from "../host/provider";
import { asset, expectFile, fillFragment, probeFile, q, sha256, writeFile } from "../host/shell";
import { authMiddleware, authModuleName, probeHost, servedModelName, ServingPlan, serviceFlags, vllmVariables } from "./vllmService";

export const containerName = "vllm-workstation";
/**
 * The name a switch keeps the container that served under until its successor is healthy (then it is
 * removed; when the successor fails, it comes back under containerName). Found at the start of an
 * apply, it means a run was cut off mid-switch.
 */
export const previousContainerName = `${containerName}-previous`;
/** The label that marks a container as the stack's: remove and apply touch no other. */
export const managedLabel = "vllm-workstation.managed";
/** The port vLLM listens on inside the container. */
const innerPort = 8000;

/** The image's entrypoint is not relied on (`python3 -m vllm.entrypoints.openai.api_server` in older images, `vllm serve` in newer ones). */
export const entrypoint = "vllm";

/**
 * The API key middleware's directory on the workstation, among the tools the stack keeps beside the
 * venv: the container's own, so that it never shares a file with the systemd runtime's (a switch of
 * runtime removes one while the other runs). Mounted as a directory, read-only: a file bind-mounted
 * alone keeps its old inode when the file is replaced.
 */
export function hostPythonDir(c: WorkstationConfig): string {
    return `${layout(c.python).home}/container-python`;
}
export function hostAuthModulePath(c: WorkstationConfig): string {
    return `${hostPythonDir(c)}/${authModuleName}.py`;
}
/** Where the container finds that directory (on its PYTHONPATH with a key). */
export const containerPythonDir = "/opt/vllm-workstation/python";

/**
 * argv after the entrypoint: `serve`, the snapshot, then the service's flags with the container's own
 * host and port. With a key, the middleware that requires it on every route but /health, as the
 * service loads it (serviceFlags).
 */
export function containerArgs(c: WorkstationConfig, plan: ServingPlan, snapshotPath: string, withKey = false): string[] {
    const flags: Record<string, string | number | boolean> = { ...serviceFlags(c, plan, withKey), host: "0.0.0.0", port: innerPort };
    const argv = ["serve", snapshotPath];
    for (const [k, v] of Object.entries(flags)) {
        if (v === true) argv.push(`--${k}`);
        else argv.push(`--${k}`, String(v));
    }
    return argv;
}

/**
 * The container's variables; the API key is not among them (it travels apart, see containerScripts).
 * With a key, PYTHONPATH finds the middleware's module.
 */
export function containerEnv(c: WorkstationConfig, plan: ServingPlan, tiktokenDir: string, withKey = false): string[] {
    return [
        "HF_HUB_OFFLINE=1",
        `HF_HUB_CACHE=${c.model.cacheDir}`,
        `TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`,
        "VLLM_NO_USAGE_STATS=1",
        "DO_NOT_TRACK=1",
        ...(withKey ? [`PYTHONPATH=${containerPythonDir}`] : []),
        ...vllmVariables(c, plan),
    ];
}

/**
 * The address Docker publishes the port on: the configured host. "localhost" is loopback to the
 * API-key rule, so it must be loopback here too (Docker would take a bare port for every address).
 */
export function publishAddress(host: string): string {
    return host === "localhost" ? "127.0.0.1" : host;
}

/** `-p` for the configured address and port; IPv6 addresses go in brackets. */
export function publishSpec(c: WorkstationConfig): string {
    const a = publishAddress(c.server.host);
    return `${a.includes(":") ? `[${a}]` : a}:${c.server.port}:${innerPort}`;
}

/** `export DOCKER_HOST=...` when the stack names the engine; nothing for the docker CLI's default. */
function dockerEnv(c: Pick<WorkstationConfig, "dockerHost">): string {
    return c.dockerHost === null ? "" : `export DOCKER_HOST=${q(c.dockerHost)}`;
}

/** An image reference's parts as docker reads them: the registry ("" for Docker Hub), the path, ":tag" and "@digest". */
function imageParts(image: string): { domain: string; path: string; tag: string; digest: string } {
    const at = image.indexOf("@");
    const digest = at < 0 ? "" : image.slice(at);
    let name = at < 0 ? image : image.slice(0, at);
    let tag = "";
    const colon = name.lastIndexOf(":");
    if (colon > name.lastIndexOf("/")) {
        tag = name.slice(colon);
        name = name.slice(0, colon);
    }
    // The first part is a registry when it has a dot, a port or capitals, or is localhost (docker's rule).
    const slash = name.indexOf("/");
    const first = slash < 0 ? "" : name.slice(0, slash);
    const isDomain = slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase());
    let domain = isDomain ? first : "";
    let path = isDomain ? name.slice(slash + 1) : name;
    if (domain === "index.docker.io" || domain === "docker.io") domain = "";
    if (domain === "" && path.startsWith("library/") && !path.slice("library/".length).includes("/")) path = path.slice("library/".length);
    return { domain, path, tag, digest };
}

/**
 * An image reference as docker prints it in an image's RepoTags and RepoDigests (its "familiar" form):
 * docker.io and index.docker.io dropped, library/ dropped from an official image's one-part name,
 * :latest added to a name with neither tag nor digest, and the tag dropped beside a digest (docker
 * pulls by the digest and records only that).
 */
export function familiarImage(image: string): string {
    const { domain, path, tag, digest } = imageParts(image);
    const familiar = domain === "" ? path : `${domain}/${path}`;
    return digest !== "" ? familiar + digest : familiar + (tag || ":latest");
}

/** The registry an image is pulled from, as the engine's registry settings name it: docker.io for Docker Hub. */
export function imageRegistry(image: string): string {
    return imageParts(image).domain || "docker.io";
}

/**
 * The tag the stack puts on an image it pulled, so that remove takes away only an image that was not
 * there before. A name of the stack's own, from the hash of the image's as docker prints it (remove
 * finds the name the image was pulled under among its tags or digests by that hash): tags are the
 * engine's one place for marks on an image.
 */
export function pulledTag(image: string): string {
    return `vllm-workstation-pulled:${sha256(familiarImage(image)).slice(0, 16)}`;
}

/**
 * The volume that marks a pull the stack began, until the image has its pulledTag: a run cut off
 * between the pull and the tag leaves it, and the next run tags the image (container_lib.sh).
 */
export function pullMark(image: string): string {
    return `vllm-workstation-pulling-${sha256(familiarImage(image)).slice(0, 16)}`;
}
/** The label of a pull's mark that holds the image's name (familiarImage). */
export const pullingLabel = "vllm-workstation.pulling";

/** `docker container inspect --format` for the stack's label: "true" on a container the stack made. */
const labelFormat = `{{index .Config.Labels ${JSON.stringify(managedLabel)}}}`;

// The probe (components/pieces/assets/container_inspect.sh): what the container is, in the form `expected`
// renders. The container's name is a constant of the code, a plain word, so it goes in unquoted.
function inspectScript(c: WorkstationConfig): string {
    const format = fillFragment("container_inspect.tmpl", { LABEL: JSON.stringify(managedLabel) });
    const ours = ["HF_HUB_OFFLINE", "HF_HUB_CACHE", "TIKTOKEN_ENCODINGS_BASE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK", "PYTHONPATH", "VLLM_ATTENTION_BACKEND", "VLLM_WSL2_ENABLE_PIN_MEMORY"];
    const probe = fillFragment("container_inspect.sh", {
        FORMAT: q(format),
        NAME: containerName,
        PREVIOUS: previousContainerName,
        LABEL_FORMAT: q(labelFormat),
        IMAGE: q(c.dockerImage),
        OURS: q(`^(${ours.join("|")})=`),
    });
    return [dockerEnv(c), probe].filter(Boolean).join("\n");
}

export interface ContainerInputs {
    readonly config: WorkstationConfig;
    readonly plan: ServingPlan;
    readonly snapshotPath: string;
    readonly tiktokenDir: string;
    /** apiKeyId of the key, or null; the key itself travels in secretEnv. */
    readonly apiKeyId: string | null;
}

/**
 * The container as a piece, as the program looks at it first (observe.ts): the middleware's
 * module on the host, then the container.
 */
export function containerPiece(c: WorkstationConfig): Piece {
    return {
        name: "container",
        what: `the vLLM container ${containerName}`,
        probe: [probeFile("auth-module", hostAuthModulePath(c)), inspectScript(c)].join("\n"),
        claims: [{ path: hostPythonDir(c), kind: "dir", sha256: null, option: "python.venvPath" }],
    };
}

export function containerScripts(s: ContainerInputs) {
    const c = s.config;
    const withKey = s.apiKeyId !== null;
    const args = containerArgs(c, s.plan, s.snapshotPath, withKey);
    const env = containerEnv(c, s.plan, s.tiktokenDir, withKey);
    const authModule = asset(`${authModuleName}.py`);
    const binds = [`${c.model.cacheDir}:${c.model.cacheDir}:ro`, `${s.tiktokenDir}:${s.tiktokenDir}:ro`, `${hostPythonDir(c)}:${containerPythonDir}:ro`];
    const address = publishAddress(c.server.host);
    // The probe's text for this container when it is as declared, in the order the probe prints it.
    const expectedContainer = [
        "managed=true",
        `entrypoint=${JSON.stringify([entrypoint])}`,
        `args=${JSON.stringify(args)}`,
        `ports=${JSON.stringify({ [`${innerPort}/tcp`]: [{ HostIp: address, HostPort: String(c.server.port) }] })}`,
        "gpus=-1[[gpu]]",
        "ipc=host",
        "restart=unless-stopped",
        "running=true",
        `image=${c.dockerImage}`,
        ...[...binds].sort().map((b) => `bind=${b}`),
        ...[...env].sort().map((e) => `env=${e}`),
        `api-key=${s.apiKeyId ?? "none"}`,
    ].join("\n");
    const expected = [expectFile("auth-module", authModule), expectedContainer].join("\n");
    const base = `http://${probeHost(address)}:${c.server.port}`;
    const name = servedModelName(c);
    // docker create's part that is the same for every container of the stack: copy_with_key_now (the
    // way back to a container that held another API key) makes one from it too.
    const createFixed = [
        "docker",
        "create",
        "--name", containerName,
        "--label", `${managedLabel}=true`,
        "--entrypoint", entrypoint,
        // `--gpus all`: a device request for every NVIDIA card, through the NVIDIA container toolkit.
        "--gpus", "all",
        // vLLM's workers share tensors through /dev/shm; the image's docs ask for the host's IPC namespace.
        "--ipc", "host",
        "--restart", "unless-stopped",
    ]
        .map(q)
        .join(" ");
    const create = ["-p", publishSpec(c), ...binds.flatMap((b) => ["-v", b]), ...env.flatMap((e) => ["-e", e])].map(q).join(" ");
    const probe = inspectScript(c);
    const common = {
        NAME: q(containerName),
        PREVIOUS: q(previousContainerName),
        LABEL_FORMAT: q(labelFormat),
        MANAGED_LABEL: q(managedLabel),
        PULLING_LABEL: q(pullingLabel),
        MODULE: q(hostAuthModulePath(c)),
        MODULE_DIR: q(hostPythonDir(c)),
        CONTAINER_LIB: fillFragment("container_lib.sh", {}),
    };
    const apply = fillFragment("container_apply.sh", {
        ...common,
        API_KEY_ID: s.apiKeyId ?? "none",
        IMAGE: q(c.dockerImage),
        FAMILIAR_IMAGE: q(familiarImage(c.dockerImage)),
        PULLED_TAG: q(pulledTag(c.dockerImage)),
        ROLLED_BACK_EXIT: String(ROLLED_BACK_EXIT),
        SWITCH_LIB: fillFragment("container_switch.sh", {}),
        PULLING: q(`pulling ${c.dockerImage}`),
        CANNOT_PULL: q(`cannot pull ${c.dockerImage}: check the name (dockerImage), the network and the registry's login (docker login), or load the image (docker load), then run pulumi up again`),
        WRITE_MODULE: writeFile(hostAuthModulePath(c), authModule),
        PROBE: probe,
        NOT_OURS: q(`a container named ${containerName} exists that the stack did not make; the stack leaves it alone: remove or rename it (docker rm -f ${containerName}), then run pulumi up again`),
        PREVIOUS_NOT_OURS: q(`a container named ${previousContainerName} exists that the stack did not make, and the stack needs that name to keep ${containerName} while it replaces it; the stack leaves it alone: remove or rename it (docker rm -f ${previousContainerName}), then run pulumi up again`),
        EXPECTED: q(expectedContainer.split("\n").filter((l) => !l.startsWith("running=")).join("\n")),
        REMOVING: q(`removing the container ${containerName}: it differs from the stack's`),
        CREATING: q(`creating the container ${containerName} from ${c.dockerImage}`),
        CREATE_FIXED: createFixed,
        CREATE: create,
        INNER_PORT: String(innerPort),
        KEY_MIDDLEWARE: q(authMiddleware),
        KEY_BIND: q(`${hostPythonDir(c)}:${containerPythonDir}:ro`),
        KEY_ENV: q(`PYTHONPATH=${containerPythonDir}`),
        ARGS: args.map(q).join(" "),
        STARTING: q(`starting the container ${containerName}`),
        NOT_STARTED: q(`the container ${containerName} did not start; if the error above is about the GPU, install the NVIDIA Container Toolkit, register its runtime (nvidia-ctk runtime configure --runtime=docker) and restart the engine, then run pulumi up again`),
        WAITING: q(`waiting for ${base}/health (up to ${c.server.healthTimeoutSeconds}s: loading the weights takes minutes)`),
        TIMEOUT: String(c.server.healthTimeoutSeconds),
        HEALTH_URL: q(`${base}/health`),
        MODELS_URL: q(`${base}/v1/models`),
        SERVED_NAME: q(name),
        SERVING: q(`serving ${name} at ${base}/v1`),
    });
    const remove = fillFragment("container_remove.sh", common);
    return {
        apply: [dockerEnv(c), apply].filter(Boolean).join("\n"),
        probe,
        expected,
        remove: [dockerEnv(c), remove].filter(Boolean).join("\n"),
    };
}

// --- preflight -------------------------------------------------------------------------------------

/**
 * The docker runtime's part of the preflight (components/pieces/assets/docker_preflight_probe.sh): the docker
 * CLI, the engine, the NVIDIA runtime and the image, as `docker-*=` lines. Read-only; always exits 0.
 */
export function dockerPreflightProbe(c: Pick<WorkstationConfig, "dockerImage" | "dockerHost">): Piece {
    return {
        name: "docker-engine",
        what: "the Docker engine",
        probe: [dockerEnv(c), fillFragment("docker_preflight_probe.sh", { IMAGE: q(c.dockerImage), REGISTRY: q(imageRegistry(c.dockerImage)) })].filter(Boolean).join("\n"),
    };
}

function field(out: string, key: string): string | null {
    const line = out.split("\n").find((l) => l.startsWith(`${key}=`));
    return line === undefined ? null : line.slice(key.length + 1);
}

function decoded(value: string): string {
    const [, b64 = ""] = value.split(" ");
    return Buffer.from(b64, "base64").toString("utf8").trim().split("\n").slice(-3).join(" ");
}

/**
 * The docker runtime's checks, from what dockerPreflightProbe printed; `where` names the workstation.
 * `deniedFix` is the way out when the engine refused the probe's user its socket: the stack's own probe
 * runs as root, a caller that runs it as another user says how to get past that.
 */
export function dockerChecks(
    c: Pick<WorkstationConfig, "dockerImage" | "dockerHost">,
    out: string,
    where: string,
    deniedFix = "the stack reaches the engine as root: check the owner and mode of the engine's socket (`ls -l /var/run/docker.sock`), or set dockerHost",
): Check[] {
    const engineFix = c.dockerHost === null
        ? "start the engine (`sudo systemctl start docker`, or Docker Desktop with WSL integration for this distribution) and check that root reaches it (`sudo docker info`); or set dockerHost to its address"
        : `start the engine at dockerHost ${JSON.stringify(c.dockerHost)}, or correct dockerHost`;
    if (field(out, "docker-cli") !== "present") {
        return [{
            id: "docker",
            level: "error",
            message: `the docker CLI is not installed on ${where}`,
            fix: "install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop with WSL integration for this distribution, or use runtime \"systemd\"",
        }];
    }
    const engine = field(out, "docker-engine") ?? "unreachable";
    if (engine.startsWith("unreachable")) {
        // An engine that refuses the user its socket is running; "not reachable" would send the user to start it.
        if (/permission denied/i.test(decoded(engine))) {
            return [{ id: "docker", level: "error", message: `the Docker engine's socket on ${where} refused the probe's user (permission denied): ${decoded(engine)}`, fix: deniedFix }];
        }
        return [{ id: "docker", level: "error", message: `the Docker engine is not reachable from ${where}: ${decoded(engine) || "no answer"}`, fix: engineFix }];
    }
    const checks: Check[] = [{ id: "docker", level: "ok", message: `Docker engine ${engine}`, fix: null }];
    const runtimes = (field(out, "docker-runtimes") ?? "").split(/\s+/).filter(Boolean);
    checks.push(
        runtimes.includes("nvidia")
            ? { id: "nvidia-container-toolkit", level: "ok", message: "the engine has the nvidia runtime", fix: null }
            : {
                  id: "nvidia-container-toolkit",
                  level: "error",
                  message: `the engine has no nvidia runtime (runtimes: ${runtimes.join(", ") || "none"}): the container could not reach the GPU`,
                  fix: "install the NVIDIA Container Toolkit (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), then `sudo nvidia-ctk runtime configure --runtime=docker` and restart the engine",
              },
    );
    const image = field(out, "docker-image") ?? "unavailable";
    if (image === "present") checks.push({ id: "docker-image", level: "ok", message: `${c.dockerImage} is in the engine`, fix: null });
    else if (image === "pullable") checks.push({ id: "docker-image", level: "ok", message: `${c.dockerImage} will be pulled (tens of GB)`, fix: null });
    else {
        checks.push({
            id: "docker-image",
            level: "error",
            message: `${c.dockerImage} is not in the engine and cannot be pulled: ${decoded(image) || "no answer from its registry"}`,
            fix: `check the name (dockerImage), the network and \`docker login\`, or \`docker load\` the image on the workstation`,
        });
    }
    return checks;
}
