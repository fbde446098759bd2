// runtime: "docker": the vllm/vllm-openai image through @pulumi/docker, with the same flags, the model
// cache as a read-only volume, the card through a GPU device request, and the same offline environment.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config";
import { assetPath, authModuleName, endpointUrl, ServingPlan, serviceFlags, vllmVariables } from "./vllmService";

/** Where the container finds the API key middleware (a read-only mount of components/assets' module). */
export const containerPythonDir = "/opt/vllm-workstation/python";

/**
 * The service's flags as argv after the image's `vllm serve` entrypoint; host and port are the
 * container's own. With a key, the middleware that requires it on every route but /health, as the
 * service loads it (serviceFlags).
 */
export function containerArgs(c: WorkstationConfig, plan: ServingPlan, snapshotPath: string, withKey = false): string[] {
    const flags: Record<string, string | number | boolean> = { ...serviceFlags(c, plan, withKey), host: "0.0.0.0", port: 8000 };
    const argv = [snapshotPath];
    for (const [k, v] of Object.entries(flags)) {
        if (v === true) argv.push(`--${k}`);
        else argv.push(`--${k}`, String(v));
    }
    return argv;
}

export function containerEnv(c: WorkstationConfig, plan: ServingPlan, tiktokenDir: string): string[] {
    return ["HF_HUB_OFFLINE=1", `HF_HUB_CACHE=${c.model.cacheDir}`, `TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`, "VLLM_NO_USAGE_STATS=1", ...vllmVariables(c, plan)];
}

export interface DockerVllmArgs {
    readonly config: WorkstationConfig;
    readonly plan: ServingPlan;
    readonly snapshotPath: pulumi.Input<string>;
    readonly tiktokenDir: pulumi.Input<string>;
    readonly apiKey: pulumi.Output<string> | null;
}

export class DockerVllm extends pulumi.ComponentResource {
    /** The OpenAI-compatible base URL of the container. */
    public readonly endpoint: pulumi.Output<string>;
    public readonly containerName: pulumi.Output<string>;

    constructor(name: string, args: DockerVllmArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:DockerVllm", name, {}, opts);
        const c = args.config;
        const image = new docker.RemoteImage(`${name}-image`, { name: c.dockerImage, keepLocally: true }, { parent: this });
        const envs = pulumi.all([args.tiktokenDir, args.apiKey ?? pulumi.output(null)]).apply(([dir, key]) => [
            ...containerEnv(c, args.plan, dir),
            // The key goes through the environment, not argv: vLLM logs its arguments at start.
            ...(key === null ? [] : [`VLLM_API_KEY=${key}`, `PYTHONPATH=${containerPythonDir}`]),
        ]);
        const container = new docker.Container(
            `${name}-container`,
            {
                name: "vllm-workstation",
                image: image.imageId,
                command: pulumi.output(args.snapshotPath).apply((p) => containerArgs(c, args.plan, p, args.apiKey !== null)),
                envs: args.apiKey === null ? envs : pulumi.secret(envs),
                // `--gpus all`: a device request for every NVIDIA card, through the NVIDIA container toolkit.
                gpus: "all",
                // vLLM's workers share tensors through /dev/shm; the image's docs ask for the host's IPC namespace.
                ipcMode: "host",
                ports: [{ internal: 8000, external: c.server.port, ip: c.server.host }],
                volumes: [
                    { hostPath: c.model.cacheDir, containerPath: c.model.cacheDir, readOnly: true },
                    { hostPath: pulumi.output(args.tiktokenDir), containerPath: pulumi.output(args.tiktokenDir), readOnly: true },
                    ...(args.apiKey === null
                        ? []
                        : [{ hostPath: assetPath(`${authModuleName}.py`), containerPath: `${containerPythonDir}/${authModuleName}.py`, readOnly: true }]),
                ],
                restart: "unless-stopped",
                healthcheck: { tests: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"], interval: "30s", timeout: "5s", retries: 3, startPeriod: "900s" },
                wait: true,
                waitTimeout: c.server.healthTimeoutSeconds,
            },
            { parent: this },
        );
        this.containerName = container.name;
        this.endpoint = container.id.apply(() => endpointUrl(c));
        this.registerOutputs({ endpoint: this.endpoint, containerName: this.containerName });
    }
}
