// The stack's program: parse the config, look at the workstation, plan for its card, and only then
// declare resources. Every way this can fail (bad config, a Turing card, systemd off in WSL, too little
// disk) fails here, before anything on the box changes.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config";
import type { Connection } from "./host";
import { AUTO_OPTIONS, PLANNER_CONSTANTS, plan, PlanInput, PlanResult } from "./planner";
import { Check, Facts, gatherFacts, parseProbeOutput, runChecks, wslKind } from "./preflight";
import { loadStackConfig } from "./stackConfig";
import type { ServingPlan } from "./vllmService";
import { has } from "./vllmVersion";
import { Observed, observeAfter, Piece } from "./observe";
import { Workstation, workstationPieces } from "./workstation";

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

/**
 * One round trip to the workstation: the preflight's probe (what the checks and the planner read), then
 * every piece's probe (what each HostState's diff compares with what it should see: observe.ts).
 */
async function lookAtWorkstation(config: WorkstationConfig, conn: Connection, pieces: readonly Piece[]): Promise<{ facts: Facts; observed: Observed }> {
    const script = gatherFacts({ modelDir: config.model.cacheDir, venvDir: config.python.venvPath, cudaHome: config.cuda.home, wslLibDir: config.cuda.wslLibDir });
    const { first, observed } = await observeAfter(conn, "look at the workstation (preflight)", script, pieces);
    const parsed = parseProbeOutput(first);
    if (!parsed.ok) throw new pulumi.RunError(`the preflight probe's output could not be read:\n${parsed.errors.join("\n")}`);
    return { facts: parsed.facts, observed };
}

/**
 * Everything before the first resource: parse, look, plan, check. Any failure here is a refusal with a
 * message for the person at the keyboard, and nothing has been declared yet.
 */
async function prepare() {
    const stack = loadStackConfig();
    const { config } = stack;
    const conn = connectionFor(config.target);
    const lockText = config.python.lockFile === null ? null : fs.readFileSync(path.resolve(__dirname, "..", "..", config.python.lockFile), "utf8");
    const { facts, observed } = await lookAtWorkstation(config, conn, workstationPieces(config, lockText));
    const result = plan(planInput(config, facts));
    const checks = runChecks(facts, result, { wslPinSwitch: has(config.python.vllmVersion, "wslPinMemorySwitch") });
    const errors = checks.filter((c) => c.level === "error");
    for (const w of checks.filter((c) => c.level === "warning")) pulumi.log.warn(`[${w.id}] ${w.message}${w.fix ? ` Fix: ${w.fix}` : ""}`);
    if (errors.length > 0 || !result.ok) {
        throw new Error(`the workstation is not ready (nothing was changed):\n${formatChecks(errors)}`);
    }
    return { stack, config, conn, result, lockText, observed };
}

export async function workstationProgram(): Promise<Record<string, pulumi.Output<unknown>>> {
    // A refusal must fail the program, not just log: a program that returns normally tells the engine it
    // declared everything, and the engine then deletes every resource the refused run left undeclared
    // (on a converged workstation: all of them). A RunError fails the run with its message alone, no
    // stack trace, and the engine deletes nothing.
    const { stack, config, conn, result, lockText, observed } = await prepare().catch((e: unknown) => {
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
