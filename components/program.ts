// The stack's program: parse the config, look at the workstation, plan for its card, and only then
// declare resources. Every way this can fail (bad config, a Turing card, systemd off in WSL, too little
// disk) fails here, before anything on the box changes.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";
import { ConfigError, parseConfig, WorkstationConfig } from "./config/schema";
import type { Connection } from "./host/connection";
import { AUTO_OPTIONS, PLANNER_CONSTANTS, plan, PlanInput, PlanResult } from "./plan/planner";
import { Check, runChecks } from "./preflight/checks";
import { Facts, gatherFacts, parseProbeOutput, wslKind } from "./preflight/facts";
import { loadStackConfig, SECRET_STAND_IN, stackFileLayer, withTeamLayer } from "./config/stackFiles";
import type { ServingPlan } from "./pieces/vllmService";
import { has, servedVllmVersion } from "./plan/vllmVersion";
import { Claim, Observed, observeAfter, Piece } from "./pieces/observe";
import { Workstation, workstationPieces } from "./workstation";
import { dockerChecks, dockerPreflightProbe } from "./pieces/dockerRuntime";
import { describe } from "./host/connection";

export function connectionFor(target: WorkstationConfig["target"]): Connection {
    return target.kind === "local" ? { kind: "local" } : { ...target };
}

/**
 * The planner's input for the stack. The card's *free* memory is left out on purpose: once vLLM runs it
 * holds most of the card, so planning from free memory would shrink the plan on every second `up` and
 * restart the service for nothing. The stack plans from the card's size less the desktop's usual share,
 * which is the same on every run; `npm run doctor` shows the plan for the memory free right now.
 */
export function planInput(config: WorkstationConfig, facts: Facts): PlanInput {
    const card = facts.gpus?.[0] ?? null;
    const gpu = card && {
        name: card.name,
        memoryTotalMiB: card.memoryTotalMiB,
        memoryFreeMiB: card.memoryTotalMiB - PLANNER_CONSTANTS.displayReserveMiB,
        computeCap: card.computeCap,
    };
    return { gpu, options: { ...AUTO_OPTIONS, ...config.gpu }, wsl: wslKind(facts.procVersion) === "wsl2" };
}

export function servingPlan(result: PlanResult & { ok: true }): ServingPlan {
    const p = result.plan;
    return {
        gpuMemoryUtilization: p.gpuMemoryUtilization,
        cpuOffloadGb: p.cpuOffloadGb,
        maxModelLen: p.maxModelLen,
        maxNumSeqs: p.maxNumSeqs,
        maxNumBatchedTokens: p.maxNumBatchedTokens,
        enforceEager: p.enforceEager,
        attentionBackend: p.attentionBackend,
        kvCacheDtype: p.kvCacheDtype,
        requiresPinnedMemory: p.requiresPinnedMemory,
    };
}

export function formatChecks(checks: Check[]): string {
    return checks.map((c) => `  - [${c.id}] ${c.message}${c.fix ? `\n    fix: ${c.fix}` : ""}`).join("\n");
}

/** The program's one look at the workstation: where, and the script. */
export interface Look {
    readonly conn: Connection;
    /** The preflight's probe (what the checks and the planner read). */
    readonly first: string;
    /** Every piece's probe (what each HostState's diff compares with what it should see: observe.ts). */
    readonly pieces: readonly Piece[];
    /** The connection and the whole script: two looks with the same key see the same thing. */
    readonly key: string;
}

/** Every path the pieces take, once each (the first piece to name a path decides how it is checked). */
export function claimsOf(pieces: readonly Piece[]): Claim[] {
    const seen = new Map<string, Claim>();
    for (const c of pieces.flatMap((p) => p.claims ?? [])) if (!seen.has(c.path)) seen.set(c.path, c);
    return [...seen.values()];
}

/** The look for a config: a pure function of it, so it can be made before the engine runs the program. */
export function lookFor(config: WorkstationConfig, lockText: string | null): Look {
    const conn = connectionFor(config.target);
    // The docker runtime's preflight (engine, NVIDIA runtime, image) rides along as one more probe.
    const pieces = [...workstationPieces(config, lockText), ...(config.runtime === "docker" ? [dockerPreflightProbe(config)] : [])];
    const first = gatherFacts({ modelDir: config.model.cacheDir, venvDir: config.python.venvPath, cudaHome: config.cuda.home, wslLibDir: config.cuda.wslLibDir, claims: claimsOf(pieces) });
    return { conn, first, pieces, key: JSON.stringify({ conn, first, probes: pieces.map((p) => p.probe) }) };
}

type Seen = Awaited<ReturnType<typeof observeAfter>>;

/** The look, started ahead of the program (lookingAhead): its key, and what it saw. */
export interface EarlyLook {
    readonly key: string;
    readonly seen: Promise<Seen>;
}

const runLook = (look: Look): Promise<Seen> => observeAfter(look.conn, "look at the workstation (preflight)", look.first, look.pieces);

/**
 * One round trip to the workstation: the preflight's probe, then every piece's. An early look with the
 * same key is this look, started sooner; if it failed, the look runs again here, so what fails is
 * reported as the program's own look would report it.
 */
async function lookAtWorkstation(look: Look, early: EarlyLook | null): Promise<{ facts: Facts; observed: Observed }> {
    const { first, observed } = await (early !== null && early.key === look.key ? early.seen.catch(() => runLook(look)) : runLook(look));
    const parsed = parseProbeOutput(first);
    if (!parsed.ok) throw new pulumi.RunError(`the preflight probe's output could not be read:\n${parsed.errors.join("\n")}`);
    return { facts: parsed.facts, observed };
}

/** The project's root: the program runs from dist/components. */
const projectRoot = path.resolve(__dirname, "..", "..");

/**
 * python.lockFile's text, or null to lock on the box. The file must be one of the project's: its path,
 * relative to the project's root, is resolved with every symlink followed, and a file that ends up
 * outside the project (an admin's private file) is refused, naming the option, before it is read.
 */
export function lockTextFor(config: WorkstationConfig, root = projectRoot): string | null {
    const lockFile = config.python.lockFile;
    if (lockFile === null) return null;
    const refuse = (why: string) => new ConfigError([`python.lockFile: ${JSON.stringify(lockFile)} ${why}`]);
    const realRoot = fs.realpathSync(root);
    let real: string;
    try {
        real = fs.realpathSync(path.resolve(realRoot, lockFile));
    } catch (e) {
        throw refuse(`cannot be read in the project ${realRoot}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (!real.startsWith(realRoot + path.sep)) {
        throw refuse(`resolves to ${real}, outside the project ${realRoot}: the lock must be a file of the project (a symlink out of it is refused)`);
    }
    if (!fs.statSync(real).isFile()) throw refuse(`is not a file (${real})`);
    return fs.readFileSync(real, "utf8");
}

/**
 * The checks for the runtime: runChecks' (which leave out systemd and the CUDA toolkit for the docker
 * runtime), and for the docker runtime an engine with the NVIDIA runtime and the image.
 */
export function runtimeChecks(config: WorkstationConfig, look: Look, observed: Observed, checks: Check[]): Check[] {
    if (config.runtime !== "docker") return checks;
    const engine = dockerPreflightProbe(config).name;
    return [...checks, ...dockerChecks(config, observed.get(engine) ?? "", describe(look.conn))];
}

/**
 * Everything before the first resource: parse, look, plan, check. Any failure here is a refusal with a
 * message for the person at the keyboard, and nothing has been declared yet.
 */
async function prepare(early: EarlyLook | null) {
    const stack = loadStackConfig();
    const { config } = stack;
    const lockText = lockTextFor(config);
    const look = lookFor(config, lockText);
    const { facts, observed } = await lookAtWorkstation(look, early);
    const result = plan(planInput(config, facts));
    const served = servedVllmVersion(config);
    const checks = runtimeChecks(
        config,
        look,
        observed,
        runChecks(facts, result, { wslPinSwitch: has(served, "wslPinMemorySwitch"), vllmVersion: served, runtime: config.runtime, serverHost: config.server.host, claims: claimsOf(look.pieces) }),
    );
    const errors = checks.filter((c) => c.level === "error");
    for (const w of checks.filter((c) => c.level === "warning")) pulumi.log.warn(`[${w.id}] ${w.message}${w.fix ? ` Fix: ${w.fix}` : ""}`);
    if (errors.length > 0 || !result.ok) {
        throw new Error(`the workstation is not ready (nothing was changed):\n${formatChecks(errors)}`);
    }
    return { stack, config, conn: look.conn, result, lockText, observed };
}

/**
 * The program for one `up` or `preview`, with its look at the workstation already started: about half
 * a second of each run is the CLI starting before it runs the program, as long as the look's SSH round
 * trip, so the look starts now, from the stack file as it is on disk (Pulumi.<stack>.yaml in workDir).
 * The program uses what it saw only if its own look, from the config the engine hands it, is the same
 * script on the same connection; otherwise it looks again. A stack file that cannot be read or parsed
 * starts nothing: the program then reports it as it always does.
 */
export function lookingAhead(workDir: string, stack: string): () => Promise<Record<string, pulumi.Output<unknown>>> {
    const look = guessLook(workDir, stack);
    let early: EarlyLook | null = null;
    if (look !== null) {
        const seen = runLook(look);
        seen.catch(() => undefined); // a run the engine refuses (a held lock) never asks for it
        early = { key: look.key, seen };
    }
    return () => workstationProgram({ early });
}

/** The look the program will make, from the project and stack files in workDir (this machine's layer over the team's); null if they do not read or parse. */
export function guessLook(workDir: string, stack: string): Look | null {
    try {
        const doc = yaml.load(fs.readFileSync(path.join(workDir, "Pulumi.yaml"), "utf8")) as { name?: unknown; stackConfigDir?: unknown };
        const project = String(doc.name);
        const stackDir = typeof doc.stackConfigDir === "string" ? path.join(workDir, doc.stackConfigDir) : workDir;
        const machine = stackFileLayer(fs.readFileSync(path.join(stackDir, `Pulumi.${stack}.yaml`), "utf8"), project, SECRET_STAND_IN).raw;
        const config = { ...parseConfig(withTeamLayer(machine, project, stack)), apiKey: null, hfToken: null };
        return lookFor(config, lockTextFor(config));
    } catch {
        return null;
    }
}

export async function workstationProgram(opts: { early?: EarlyLook | null } = {}): Promise<Record<string, pulumi.Output<unknown>>> {
    // A refusal must fail the program, not just log: a program that returns normally tells the engine it
    // declared everything, and the engine then deletes every resource the refused run left undeclared
    // (on a converged workstation: all of them). A RunError fails the run with its message alone, no
    // stack trace, and the engine deletes nothing.
    const { stack, config, conn, result, lockText, observed } = await prepare(opts.early ?? null).catch((e: unknown) => {
        throw e instanceof pulumi.RunError ? e : new pulumi.RunError(e instanceof Error ? e.message : String(e));
    });
    const ws = new Workstation("workstation", { config, connection: conn, plan: servingPlan(result), lockText, apiKey: stack.apiKey, hfToken: stack.hfToken, observed });
    return {
        endpoint: ws.endpoint,
        model: ws.model,
        servedModelName: ws.servedModelName,
        vllmFlags: ws.vllmFlags,
        venvPath: ws.venvPath,
        exampleRequest: ws.exampleRequest,
        gpu: pulumi.output(result.plan.gpu),
    };
}
