// A real Docker engine for the docker runtime's integration tests: Debian's docker.io (installed with
// apt-get when missing), started with a data root, exec root and socket of its own under the cache, so
// it never touches a Docker the machine may already run. No outside registry is reachable here, so the
// image the stack asks for is built locally from the box's Debian rootfs with the vLLM test double
// inside; an image named by its digest is pushed to a registry on loopback (startRegistry) and pulled.
//
// TEST DOUBLES (no GPU here): `nvidia-container-runtime-hook`, an executable that exits 0, on dockerd's
// PATH, which makes dockerd accept `--gpus` device requests; and an `nvidia` runtime that is runc, as
// `nvidia-ctk runtime configure` registers NVIDIA's.
import { execFile, execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { cacheDir, ensureRootfs, freePort, repoRoot } from "./box";
import { ensureWheelhouse, WheelhouseOptions } from "../infra/servers/index";

export interface CmdResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

function exec(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 10 * 60_000): Promise<CmdResult> {
    return new Promise((resolve) => {
        const child = execFile(file, args, { env, maxBuffer: 64 << 20, timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
            const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
            resolve({ code, stdout, stderr: err && code === 1 && !stderr ? String(err) : stderr });
        });
        child.stdin?.end();
    });
}

/** Installs Debian's docker.io when dockerd is missing (once per machine; flock against parallel test files). */
export async function ensureDockerInstalled(): Promise<void> {
    if (fs.existsSync("/usr/sbin/dockerd")) return;
    fs.mkdirSync(cacheDir(), { recursive: true });
    const script =
        "command -v dockerd >/dev/null && exit 0; " +
        "export DEBIAN_FRONTEND=noninteractive; " +
        "apt-get install -y -o DPkg::Lock::Timeout=600 docker.io >&2 || { apt-get update >&2 && apt-get install -y -o DPkg::Lock::Timeout=600 docker.io >&2; }";
    const r = await exec("flock", [path.join(cacheDir(), ".docker-install.lock"), "bash", "-c", script], process.env, 20 * 60_000);
    if (r.code !== 0) throw new Error(`installing docker.io failed:\n${r.stderr.slice(-3000)}`);
}

export interface Engine {
    /** DOCKER_HOST for clients: unix://<dir>/docker.sock */
    readonly host: string;
    readonly dir: string;
    /** The docker CLI against this engine; never throws. */
    docker(...args: string[]): Promise<CmdResult>;
    /** Like docker, but throws on a non-zero exit; resolves to stdout, trimmed. */
    dockerOk(...args: string[]): Promise<string>;
    /** Stops dockerd and starts it again on the same data, with or without the GPU hook double. */
    restart(opts: { gpuHook: boolean }): Promise<void>;
    stop(): Promise<void>;
}

const live = new Set<() => void>();
let hooked = false;
function hookExit(): void {
    if (hooked) return;
    hooked = true;
    process.on("exit", () => {
        for (const stop of [...live]) stop();
    });
}

/** Starts a private dockerd; `gpuHook: false` leaves out the hook double, as a machine without the NVIDIA toolkit is. */
export async function startEngine(opts: { gpuHook?: boolean } = {}): Promise<Engine> {
    await ensureDockerInstalled();
    hookExit();
    // A short directory: the socket's path must fit in 108 bytes.
    const dir = path.join(cacheDir(), "docker", crypto.randomBytes(4).toString("hex"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "nvidia-container-runtime-hook"), "#!/bin/sh\n# TEST DOUBLE of the NVIDIA Container Toolkit's hook: no GPU here.\nexit 0\n", { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "nvidia-container-runtime"), "#!/bin/sh\n# TEST DOUBLE of the NVIDIA Container Toolkit's runtime: runc, without a GPU to add.\nexec runc \"$@\"\n", { mode: 0o755 });
    // A bridge and subnet of its own: two engines on one bridge (docker0) would hand out the same
    // addresses, and a published port could reach the other engine's container.
    const bridge = `vws${path.basename(dir).slice(0, 8)}`;
    execFileSync(
        "flock",
        [
            path.join(cacheDir(), ".docker-bridge.lock"),
            "bash",
            "-c",
            'used=$(ip -4 -o addr show | awk \'{print $4}\'); for n in $(seq 20 250); do case "$used" in *"10.213.$n."*) continue ;; esac; ' +
                'ip link add name "$1" type bridge && ip addr add "10.213.$n.1/24" dev "$1" && ip link set "$1" up && exit 0; exit 1; done; exit 1',
            "bridge",
            bridge,
        ],
        { stdio: "ignore" },
    );
    const dropBridge = (): void => {
        try {
            execFileSync("ip", ["link", "del", bridge], { stdio: "ignore" });
        } catch {
            // gone already
        }
    };
    const host = `unix://${dir}/docker.sock`;
    const env = { ...process.env, DOCKER_HOST: host };
    let pid = 0;

    const start = async (gpuHook: boolean): Promise<void> => {
        const hookDir = path.join(dir, "hook");
        fs.rmSync(hookDir, { recursive: true, force: true });
        fs.mkdirSync(hookDir);
        if (gpuHook) {
            fs.copyFileSync(path.join(bin, "nvidia-container-runtime-hook"), path.join(hookDir, "nvidia-container-runtime-hook"));
            fs.chmodSync(path.join(hookDir, "nvidia-container-runtime-hook"), 0o755);
        }
        const log = fs.openSync(path.join(dir, "dockerd.log"), "a");
        const child = spawn(
            "/usr/sbin/dockerd",
            [
                "--data-root", path.join(dir, "data"),
                "--exec-root", path.join(dir, "exec"),
                "--pidfile", path.join(dir, "dockerd.pid"),
                "--storage-driver=overlay2",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge", bridge,
                "-H", host,
                "--add-runtime", `nvidia=${path.join(bin, "nvidia-container-runtime")}`,
            ],
            { env: { ...process.env, PATH: `${hookDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` }, stdio: ["ignore", log, log], detached: true },
        );
        child.unref();
        fs.closeSync(log);
        pid = child.pid ?? 0;
        for (let i = 0; i < 150; i++) {
            if ((await exec("docker", ["info", "--format", "{{.ServerVersion}}"], env)).code === 0) return;
            await new Promise((r) => setTimeout(r, 200));
        }
        throw new Error(`dockerd did not answer on ${host}:\n${fs.readFileSync(path.join(dir, "dockerd.log"), "utf8").slice(-3000)}`);
    };

    const killSync = (): void => {
        if (pid > 0) {
            try {
                process.kill(pid, "SIGTERM");
            } catch {
                // gone already
            }
        }
    };
    const waitGone = async (): Promise<void> => {
        for (let i = 0; i < 200 && pid > 0; i++) {
            try {
                process.kill(pid, 0);
            } catch {
                break;
            }
            await new Promise((r) => setTimeout(r, 100));
        }
        if (pid > 0) {
            try {
                process.kill(pid, "SIGKILL");
            } catch {
                // gone
            }
        }
        pid = 0;
    };
    const unmountAndRemove = (): void => {
        try {
            execFileSync("bash", ["-c", `for m in $(awk -v p=${JSON.stringify(dir + "/")} 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done; rm -rf --one-file-system ${JSON.stringify(dir)}`], { stdio: "ignore", timeout: 60_000 });
        } catch {
            // best effort at exit
        }
    };
    const onExit = (): void => {
        killSync();
        try {
            execFileSync("bash", ["-c", `for i in $(seq 50); do kill -0 ${pid} 2>/dev/null || break; sleep 0.1; done; kill -9 ${pid} 2>/dev/null || true`], { stdio: "ignore" });
        } catch {
            // gone
        }
        unmountAndRemove();
        dropBridge();
    };
    live.add(onExit);
    await start(opts.gpuHook ?? true);

    const docker = (...args: string[]) => exec("docker", args, env);
    return {
        host,
        dir,
        docker,
        async dockerOk(...args: string[]) {
            const r = await docker(...args);
            if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
            return r.stdout.trim();
        },
        async restart(o) {
            killSync();
            await waitGone();
            await start(o.gpuHook);
        },
        async stop() {
            live.delete(onExit);
            killSync();
            await waitGone();
            unmountAndRemove();
            dropBridge();
        },
    };
}

/**
 * Builds the stand-in for a vllm/vllm-openai image in the engine, tagged `tag`: the box's Debian rootfs
 * (`docker import`), the vLLM test double at `vllmVersion` installed from the test wheelhouse, `vllm`
 * on PATH, root as the user and ENTRYPOINT ["vllm", "serve"], as the real image's Dockerfile has them.
 * Returns the image id.
 */
export async function buildStandinImage(engine: Engine, tag: string, opts: { vllmVersion: string; wheelhouse: WheelhouseOptions }): Promise<string> {
    const [rootfs, wh] = await Promise.all([ensureRootfs(), ensureWheelhouse(opts.wheelhouse)]);
    const base = "vllm-ws-test/debian:bookworm";
    if ((await engine.docker("image", "inspect", base)).code !== 0) await engine.dockerOk("import", rootfs, base);
    const ctx = fs.mkdtempSync(path.join(engine.dir, "build-"));
    try {
        fs.mkdirSync(path.join(ctx, "wheels"));
        // The whole wheelhouse (30 MB): pip picks what fits the rootfs's Python, Debian 12's 3.11.
        for (const w of wh.wheels) {
            fs.copyFileSync(path.join(wh.dir, w), path.join(ctx, "wheels", w));
        }
        fs.writeFileSync(
            path.join(ctx, "Dockerfile"),
            fs.readFileSync(path.join(repoRoot, "tests", "fixtures", "docker", "Dockerfile"), "utf8"),
        );
        const r = await exec("docker", ["build", "-q", "--build-arg", `BASE=${base}`, "--build-arg", `VLLM_VERSION=${opts.vllmVersion}`, "-t", tag, ctx], { ...process.env, DOCKER_HOST: engine.host, DOCKER_BUILDKIT: "0" });
        if (r.code !== 0) throw new Error(`building the stand-in image failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
    } finally {
        fs.rmSync(ctx, { recursive: true, force: true });
    }
    return engine.dockerOk("image", "inspect", "--format", "{{.Id}}", tag);
}

/**
 * distribution's registry, the reference implementation of the registry API that Docker Hub and most
 * private registries speak (github.com/distribution/distribution), built once from its Go module into
 * the cache: the one way here to an image that has a digest (RepoDigests) in the engine, which only a
 * pull or a push records (`docker load` and `docker build` do not).
 */
const registryModule = "github.com/distribution/distribution/v3/cmd/registry@v3.0.0";

async function ensureRegistryBinary(): Promise<string> {
    const dir = path.join(cacheDir(), "registry", "v3.0.0");
    const bin = path.join(dir, "registry");
    if (fs.existsSync(bin)) return bin;
    fs.mkdirSync(dir, { recursive: true });
    const script = 'test -x "$1/registry" && exit 0; rm -rf "$1/part" && GOBIN="$1/part" GOFLAGS=-mod=mod go install -trimpath "$2" >&2 && mv "$1/part/registry" "$1/registry" && rmdir "$1/part"';
    const r = await exec("flock", [path.join(dir, ".lock"), "bash", "-c", script, "build", dir, registryModule], process.env, 20 * 60_000);
    if (r.code !== 0) throw new Error(`building the registry (${registryModule}) failed:\n${r.stderr.slice(-3000)}`);
    return bin;
}

export interface Registry {
    /** host:port on loopback, which the engine talks to over plain HTTP (127.0.0.0/8 is an insecure registry by default). */
    readonly address: string;
    stop(): Promise<void>;
}

/** Starts a registry on a free loopback port with its storage in a directory of its own (gone with stop). */
export async function startRegistry(): Promise<Registry> {
    const bin = await ensureRegistryBinary();
    const dir = fs.mkdtempSync(path.join(cacheDir(), "registry", "run-"));
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    fs.writeFileSync(
        path.join(dir, "config.yml"),
        ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:", `    rootdirectory: ${dir}/data`, "http:", `  addr: ${address}`, ""].join("\n"),
    );
    const log = fs.openSync(path.join(dir, "registry.log"), "a");
    // OTEL_TRACES_EXPORTER: it would send traces to localhost:4318 otherwise.
    const child = spawn(bin, ["serve", path.join(dir, "config.yml")], { env: { ...process.env, OTEL_TRACES_EXPORTER: "none" }, stdio: ["ignore", log, log] });
    fs.closeSync(log);
    const stopNow = (): void => {
        child.kill("SIGTERM");
        fs.rmSync(dir, { recursive: true, force: true });
    };
    live.add(stopNow);
    hookExit();
    for (let i = 0; ; i++) {
        try {
            if ((await fetch(`http://${address}/v2/`)).status === 200) break;
        } catch {
            // not listening yet
        }
        if (i >= 100 || child.exitCode !== null) {
            const out = fs.readFileSync(path.join(dir, "registry.log"), "utf8").slice(-3000);
            live.delete(stopNow);
            stopNow();
            throw new Error(`the registry did not answer on ${address}:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    return {
        address,
        async stop() {
            live.delete(stopNow);
            const gone = child.exitCode === null ? new Promise((r) => child.once("exit", r)) : Promise.resolve();
            stopNow();
            await gone;
        },
    };
}

/** Every container, image (with its digest) and volume in the engine, as one comparable text: what a destroy
 * must leave as it found it. */
export async function engineState(engine: Engine): Promise<string> {
    const ps = await engine.dockerOk("ps", "-a", "--format", "{{.Names}} {{.Image}}");
    const images = await engine.dockerOk("images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}");
    const volumes = await engine.dockerOk("volume", "ls", "--format", "volume {{.Name}}");
    return [...ps.split("\n"), ...images.split("\n"), ...volumes.split("\n")].filter(Boolean).sort().join("\n");
}

/** The part of a docker-runtime stack's config that is this machine's (the engine, the venv and model cache in
 * a directory of the test's own, the rig's package index and Hub, a 24 GB card), and that directory. */
export interface DockerStackHome {
    readonly home: string;
    readonly config: Readonly<Record<string, unknown>>;
}

/** Makes `/var/lib/vllm-ws-<name>-test-*` with a TEST DOUBLE of WSL's nvidia-smi in it (the box's, reading the
 * RTX 4090 fixture), and points VLLM_WS_RECORD there: every script the stack runs here reads it (own.sh). */
export function dockerStackHome(name: string, engine: Engine, rig: { index: { url: string }; hub: { url: string; commitSha: string; tiktoken: { baseUrl: string; files: Readonly<Record<string, string>> } } }): DockerStackHome {
    const home = fs.mkdtempSync(`/var/lib/vllm-ws-${name}-test-`);
    process.env.VLLM_WS_RECORD = path.join(home, "record");
    const wslLib = path.join(home, "wsl-lib");
    fs.mkdirSync(wslLib);
    const smi = fs.readFileSync(path.join(repoRoot, "tests", "fixtures", "box", "nvidia-smi"), "utf8").replace(/^conf=.*$/m, `conf=${wslLib}`);
    fs.writeFileSync(path.join(wslLib, "nvidia-smi"), smi, { mode: 0o755 });
    fs.copyFileSync(path.join(repoRoot, "tests", "fixtures", "nvidia-smi", "rtx4090.csv"), path.join(wslLib, "nvidia-smi.csv"));
    return {
        home,
        config: {
            runtime: "docker",
            dockerHost: engine.host,
            cuda: { wslLibDir: wslLib },
            python: { version: "3.11", indexUrl: rig.index.url, venvPath: path.join(home, "venv") },
            model: { revision: rig.hub.commitSha, endpoint: rig.hub.url, cacheDir: path.join(home, "hf"), tiktoken: { baseUrl: rig.hub.tiktoken.baseUrl, files: rig.hub.tiktoken.files } },
            gpu: { tier: "24gb" },
        },
    };
}
