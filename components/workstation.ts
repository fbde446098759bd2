// The whole workstation: CUDA environment, uv and the venv, the model, and vLLM as a systemd service or
// a container. Each piece is declared once, as data (declarePieces): the program's look at the box
// (workstationPieces) and the resources the Workstation declares are both read from that one list.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config/schema";
import { cudaPiece, scripts as cudaScripts } from "./pieces/cudaEnv";
import { containerPiece, containerScripts, publishAddress } from "./pieces/dockerRuntime";
import type { Connection } from "./host/connection";
import { HostState, pieceState, PieceScripts, ready } from "./host/hostState";
import { layout as modelLayout, modelEnv, modelPiece, modelScripts } from "./pieces/model";
import type { Observed, Piece } from "./pieces/observe";
import { indexEnv, installPath, packageScripts, pythonPieces, uvScripts } from "./pieces/python";
import { q, sha256 } from "./host/shell";
import { apiKeyId, endpointUrl, ServingPlan, servedModelName, serviceScripts, servicePiece, vllmFlags } from "./pieces/vllmService";

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

/** What a piece gives the pieces after it (and the workstation's outputs), each known once that piece has converged. */
export interface Given {
    /** The venv's root, a link to the install in service (python.ts). */
    readonly venvPath: string;
    /** The install of this config's packages, which the service is switched to. */
    readonly installPath: string;
    /** The snapshot directory vLLM loads. */
    readonly snapshotPath: string;
    /** The directory for TIKTOKEN_ENCODINGS_BASE. */
    readonly tiktokenDir: string;
    /** The OpenAI-compatible base URL, once /health and /v1/models answered. */
    readonly endpoint: string;
}

/** What a piece's scripts are rendered from besides the config. */
export interface ScriptInputs<N extends keyof Given> {
    /** The VRAM plan for this card: known only after the look, so the look never needs the scripts. */
    readonly plan: ServingPlan;
    /** apiKeyId of the API key, or null: the key itself only ever travels in a secret environment. */
    readonly apiKeyId: string | null;
    /** The outputs of earlier pieces that the piece `needs`, and only those. */
    readonly given: Pick<Given, N>;
}

/** The stack's secrets, for a piece's secret environment (never its scripts). */
export interface Secrets {
    readonly apiKey: string | null;
    readonly hfToken: string | null;
}

/**
 * The component a piece is declared under. A HostState's URN holds the types of the components above
 * it and its own name, and stacks already converged hold these: another grouping would make a preview
 * of an upgraded checkout delete every piece and create it again (the venv and the model included).
 */
export interface PieceGroup {
    readonly type: string;
    /** After the workstation's name: `${workstation}-${name}`. */
    readonly name: string;
}

const groups = {
    cuda: { type: "vllm-workstation:index:CudaEnvironment", name: "cuda" },
    python: { type: "vllm-workstation:index:PythonEnvironment", name: "python" },
    model: { type: "vllm-workstation:index:ModelCache", name: "model" },
    service: { type: "vllm-workstation:index:VllmService", name: "vllm" },
    container: { type: "vllm-workstation:index:DockerVllm", name: "docker" },
} as const satisfies Record<string, PieceGroup>;

/** One piece on the box, as data: everything the look and the Workstation know of it. */
export interface DeclaredPiece<N extends keyof Given = keyof Given> {
    /** Its name (what the look keys what it saw by), what it is, its probe and the paths it claims. */
    readonly piece: Piece;
    readonly group: PieceGroup;
    /** Its HostState's name after the group's: `${workstation}-${group.name}-${role}`. */
    readonly role: string;
    /** Pieces, by name, that must converge before it besides those whose outputs it needs. */
    readonly after: readonly string[];
    /** The outputs of earlier pieces its scripts read; it waits for each. */
    readonly needs: readonly N[];
    /** apply, expected and remove (the probe is the piece's: the look runs it before anything is declared). */
    readonly scripts: (inputs: ScriptInputs<N>) => PieceScripts;
    /** What its steps need and no script or state may show in plain text (index credentials, tokens, the key). */
    readonly secretEnv?: (secrets: Secrets) => Record<string, string>;
    /** What it gives later pieces and the workstation, each once it has converged. */
    readonly gives: Partial<Given>;
}

/** Checks `needs` against what `scripts` reads, at compile time. */
function declare<N extends keyof Given>(d: DeclaredPiece<N>): DeclaredPiece {
    return d;
}

/**
 * Every piece a Workstation with this config declares on the box, in the order they converge. A pure
 * function of the config and the lock: the program looks at these pieces before anything else is known.
 */
export function declarePieces(config: WorkstationConfig, lockText: string | null): DeclaredPiece[] {
    const c = config;
    const docker = c.runtime === "docker";
    // The docker runtime's vLLM is in its image: its venv holds only what downloads the model, locked on the box.
    const lock = docker ? null : lockText;
    const py = pythonPieces(c.python, lock, c.runtime);
    const indexes = () => indexEnv(c.python);
    const key = (s: Secrets): Record<string, string> => (s.apiKey === null ? {} : { VLLM_WS_API_KEY: s.apiKey });
    const model = modelLayout(c.model);
    // The docker runtime's CUDA is in its image: no toolkit environment on the host.
    const cuda: DeclaredPiece[] = docker
        ? []
        : [declare({ piece: cudaPiece(c.cuda), group: groups.cuda, role: "files", after: [], needs: [], scripts: () => cudaScripts(c.cuda), gives: {} })];
    const served = docker
        ? declare({
              piece: containerPiece(c),
              group: groups.container,
              role: "container",
              after: [],
              needs: ["snapshotPath", "tiktokenDir"],
              scripts: ({ plan, apiKeyId, given }) => containerScripts({ config: c, plan, snapshotPath: given.snapshotPath, tiktokenDir: given.tiktokenDir, apiKeyId }),
              secretEnv: key,
              // Docker publishes the port on the configured address, "localhost" as loopback.
              gives: { endpoint: endpointUrl({ ...c, server: { ...c.server, host: publishAddress(c.server.host) } }) },
          })
        : declare({
              piece: servicePiece(c),
              group: groups.service,
              role: "unit",
              // The unit loads the CUDA environment's file; the venv link it switches is the packages'.
              after: ["cuda", "uv", "packages"],
              needs: ["installPath", "snapshotPath", "tiktokenDir"],
              scripts: ({ plan, apiKeyId, given }) => serviceScripts({ config: c, plan, ...given, apiKeyId, runsOn: serviceRunsOn(c, lock) }),
              secretEnv: key,
              gives: { endpoint: endpointUrl(c) },
          });
    return [
        ...cuda,
        declare({ piece: py.uv, group: groups.python, role: "uv", after: cuda.map((p) => p.piece.name), needs: [], scripts: () => uvScripts(c.python), secretEnv: indexes, gives: {} }),
        declare({
            piece: py.packages,
            group: groups.python,
            role: "packages",
            after: [py.uv.name],
            needs: [],
            scripts: () => packageScripts(c.python, lock, c.runtime),
            secretEnv: indexes,
            gives: { venvPath: c.python.venvPath, installPath: installPath(c.python, lock, c.runtime) },
        }),
        declare({
            piece: modelPiece(c.model),
            group: groups.model,
            role: "files",
            after: [],
            // The download runs with the venv's huggingface_hub.
            needs: ["venvPath"],
            scripts: ({ given }) => modelScripts(c.model, given.venvPath),
            secretEnv: (s) => ({ ...modelEnv(c.model), ...(s.hfToken === null ? {} : { HF_TOKEN: s.hfToken }) }),
            gives: { snapshotPath: model.snapshot, tiktokenDir: model.tiktokenDir },
        }),
        served,
    ];
}

/** Every piece a Workstation with this config declares on the box, for the program to look at first. */
export function workstationPieces(config: WorkstationConfig, lockText: string | null): Piece[] {
    return declarePieces(config, lockText).map((d) => d.piece);
}

/**
 * Ids of what the vLLM service runs on, from each upstream piece's expected state: they change exactly
 * when a converge changes that piece on disk (another CUDA environment, another package set, another
 * model revision or encoding), and the service restarts on such a change (ServiceInputs.runsOn).
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
        // The id reveals nothing of the key; left secret, it would hide every script that names it in diffs.
        const keyId = args.apiKey === null ? pulumi.output(null) : pulumi.unsecret(args.apiKey.apply(apiKeyId));
        const secrets: pulumi.Output<Secrets> = pulumi.all([args.apiKey, args.hfToken]).apply(([apiKey, hfToken]) => ({ apiKey, hfToken }));
        const components = new Map<string, GroupComponent>();
        const states = new Map<string, HostState>();
        const given: { -readonly [K in keyof Given]?: pulumi.Output<Given[K]> } = {};
        const outputs = new Map<GroupComponent, Record<string, pulumi.Output<string>>>();
        // One HostState per declared piece, in the list's order: each finds the outputs it needs and the
        // pieces it comes after among those declared before it. Its scripts wait for the outputs it needs,
        // which carry the dependency on the pieces that give them.
        for (const d of declarePieces(c, args.lockText)) {
            const piece = d.piece.name;
            if (states.has(piece)) fail(`two pieces named ${piece}: what the look saw is kept by name`);
            const group = components.get(d.group.name) ?? new GroupComponent(d.group.type, `${name}-${d.group.name}`, { parent: this });
            components.set(d.group.name, group);
            const needed = d.needs.map((n) => given[n] ?? fail(`the piece ${piece} needs ${n}, which no piece before it gives`));
            const scripts = pulumi.all([keyId, ...needed]).apply(([id, ...values]) =>
                d.scripts({ plan: args.plan, apiKeyId: id, given: Object.fromEntries(d.needs.map((n, i) => [n, values[i]])) as unknown as Given }),
            );
            const after = d.after.map((n) => states.get(n) ?? fail(`the piece ${piece} comes after ${n}, which is not declared before it`));
            const state = pieceState(
                `${name}-${d.group.name}-${d.role}`,
                d.piece,
                scripts,
                { connection: args.connection, observed: args.observed, secretEnv: d.secretEnv === undefined ? undefined : secrets.apply(d.secretEnv) },
                { parent: group, dependsOn: after },
            );
            states.set(piece, state);
            for (const [k, v] of Object.entries(d.gives) as [keyof Given, string][]) {
                given[k] = ready(state, v);
                outputs.set(group, { ...outputs.get(group), [k]: given[k] });
            }
        }
        for (const group of components.values()) group.done(outputs.get(group) ?? {});
        const endpoint = given.endpoint ?? fail("no piece gives the endpoint");
        this.endpoint = endpoint;
        this.model = pulumi.output(`${c.model.repo}@${c.model.revision}`);
        this.servedModelName = pulumi.output(servedModelName(c));
        this.vllmFlags = pulumi.output(vllmFlags(c, args.plan));
        this.venvPath = given.venvPath ?? fail("no piece gives the venv");
        this.exampleRequest = endpoint.apply((url) => exampleRequest(url, servedModelName(c), args.apiKey !== null));
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

/** The component of a PieceGroup: it only holds its pieces' HostStates, under the type existing stacks hold. */
class GroupComponent extends pulumi.ComponentResource {
    constructor(type: string, name: string, opts: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
    }

    /** What its pieces give, so the state shows them under the component too. */
    done(outputs: Record<string, pulumi.Output<string>>): void {
        this.registerOutputs(outputs);
    }
}

function fail(message: string): never {
    throw new Error(message);
}

export function exampleRequest(endpoint: string, model: string, withKey: boolean): string {
    const body = JSON.stringify({ model, messages: [{ role: "user", content: "Say hello in one sentence." }] });
    const auth = withKey ? ` -H "Authorization: Bearer $VLLM_API_KEY"` : "";
    // Quoted: an IPv6 endpoint's brackets are a glob pattern to the shell it is pasted into.
    return `curl -s ${q(`${endpoint}/chat/completions`)} -H "Content-Type: application/json"${auth} -d ${q(body)}`;
}
