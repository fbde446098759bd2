// The whole workstation: CUDA environment, uv and the venv, the model, and vLLM as a systemd service or
// a container. Each piece is a child of this component and depends on the ones it needs.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config/schema";
import { CudaEnvironment, cudaPiece, scripts as cudaScripts } from "./pieces/cudaEnv";
import { containerPiece, DockerVllm } from "./pieces/dockerRuntime";
import type { Connection } from "./host/connection";
import { ModelCache, modelPiece, modelScripts } from "./pieces/model";
import type { Observed, Piece } from "./pieces/observe";
import { packageScripts, PythonEnvironment, pythonPieces } from "./pieces/python";
import { q, sha256 } from "./host/shell";
import { ServingPlan, servedModelName, servicePiece, VllmService, vllmFlags } from "./pieces/vllmService";

export interface WorkstationArgs {
    /** The parsed config; its secrets are blanked, they come in apiKey and hfToken. */
    readonly config: WorkstationConfig;
    readonly connection: Connection;
    /** The VRAM plan for this card (planner.ts). */
    readonly plan: ServingPlan;
    /** python.lockFile's contents, or null to lock on the box. */
    readonly lockText: string | null;
    readonly apiKey: pulumi.Output<string> | null;
    readonly hfToken: pulumi.Output<string> | null;
    /** What the program saw of every piece this run (workstationPieces, observe.ts); null: the last refresh's. */
    readonly observed: Observed | null;
}

/** Every piece a Workstation with this config declares on the box, for the program to look at first. */
export function workstationPieces(config: WorkstationConfig, lockText: string | null): Piece[] {
    if (config.runtime === "docker") {
        // The image brings vLLM and CUDA: the host keeps only the model and what downloads it.
        const py = pythonPieces(config.python, null, "docker");
        return [py.uv, py.packages, modelPiece(config.model), containerPiece(config)];
    }
    const py = pythonPieces(config.python, lockText);
    return [cudaPiece(config.cuda), py.uv, py.packages, modelPiece(config.model), servicePiece(config)];
}

/**
 * Ids of what the vLLM service runs on, from each upstream piece's expected state: they change exactly
 * when a converge changes that piece on disk (another CUDA environment, another package set, another
 * model revision or encoding), and the service restarts on such a change (VllmService's runsOn).
 */
export function serviceRunsOn(config: WorkstationConfig, lockText: string | null): Record<string, string> {
    const id = (text: string) => sha256(text).slice(0, 12);
    return {
        cuda: id(cudaScripts(config.cuda).expected),
        packages: id(packageScripts(config.python, lockText).expected),
        model: id(`${modelScripts(config.model, config.python.venvPath).expected}\n${config.model.tiktoken.baseUrl}\n${Object.entries(config.model.tiktoken.files).sort().join("\n")}`),
    };
}

export class Workstation extends pulumi.ComponentResource {
    /** OpenAI-compatible base URL; known only once the health check passed. */
    public readonly endpoint: pulumi.Output<string>;
    /** The Hugging Face repository and pinned revision served. */
    public readonly model: pulumi.Output<string>;
    /** The name clients put in "model". */
    public readonly servedModelName: pulumi.Output<string>;
    /** The vLLM flags in effect (the --config YAML, as a map). */
    public readonly vllmFlags: pulumi.Output<Record<string, string | number | boolean>>;
    /** The venv holding vllm and hf. */
    public readonly venvPath: pulumi.Output<string>;
    /** A request to try the endpoint with. */
    public readonly exampleRequest: pulumi.Output<string>;

    constructor(name: string, args: WorkstationArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:Workstation", name, {}, opts);
        const c = args.config;
        const conn = args.connection;
        const observed = args.observed;
        const docker = c.runtime === "docker";
        // The docker runtime's CUDA is in its image: no toolkit environment on the host.
        const cuda = docker ? null : new CudaEnvironment(`${name}-cuda`, { connection: conn, cuda: c.cuda, observed }, { parent: this });
        const python = new PythonEnvironment(
            `${name}-python`,
            { connection: conn, python: c.python, lockText: docker ? null : args.lockText, observed, runtime: c.runtime },
            { parent: this, dependsOn: cuda === null ? [] : [cuda] },
        );
        const model = new ModelCache(`${name}-model`, { connection: conn, model: c.model, venvPath: python.venvPath, hfToken: args.hfToken, observed }, { parent: this });
        const served =
            cuda !== null
                ? new VllmService(
                      `${name}-vllm`,
                      { connection: conn, config: c, plan: args.plan, installPath: python.installPath, snapshotPath: model.snapshotPath, tiktokenDir: model.tiktokenDir, apiKey: args.apiKey, runsOn: serviceRunsOn(c, args.lockText), observed },
                      { parent: this, dependsOn: [cuda, python] },
                  )
                : new DockerVllm(`${name}-docker`, { connection: conn, config: c, plan: args.plan, snapshotPath: model.snapshotPath, tiktokenDir: model.tiktokenDir, apiKey: args.apiKey, observed }, { parent: this });
        this.endpoint = served.endpoint;
        this.model = pulumi.output(`${c.model.repo}@${c.model.revision}`);
        this.servedModelName = pulumi.output(servedModelName(c));
        this.vllmFlags = pulumi.output(vllmFlags(c, args.plan));
        this.venvPath = python.venvPath;
        this.exampleRequest = served.endpoint.apply((url) => exampleRequest(url, servedModelName(c), args.apiKey !== null));
        this.registerOutputs({
            endpoint: this.endpoint,
            model: this.model,
            servedModelName: this.servedModelName,
            vllmFlags: this.vllmFlags,
            venvPath: this.venvPath,
            exampleRequest: this.exampleRequest,
        });
    }
}

export function exampleRequest(endpoint: string, model: string, withKey: boolean): string {
    const body = JSON.stringify({ model, messages: [{ role: "user", content: "Say hello in one sentence." }] });
    const auth = withKey ? ` -H "Authorization: Bearer $VLLM_API_KEY"` : "";
    // Quoted: an IPv6 endpoint's brackets are a glob pattern to the shell it is pasted into.
    return `curl -s ${q(`${endpoint}/chat/completions`)} -H "Content-Type: application/json"${auth} -d ${q(body)}`;
}
