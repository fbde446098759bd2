// npm run fleet -- preview|up [STACK...] [--concurrency N] [--look-timeout SECONDS] [--cwd DIR]
//
// Runs `preview` or `up` on every stack of the project (or the stacks named) at once, at most N at a
// time, and prints one table: each workstation, whether it answered, its card and plan, the vLLM and
// model revision on it, the pieces that drifted (preview) or changed (up), and the result. Each stack's
// progress goes to stderr, every line prefixed with its name; the table goes to stdout.
// Exit status: 0 when every workstation is converged, 2 when a preview found drift and none failed,
// 1 when any failed or could not be reached (or the command line is wrong).
//
// Every stack runs as `npm run preview` / `npm run up` runs it (scripts/stack.ts): the program's one look
// at the workstation starts before the engine does. Here it also reads the installed vLLM release, and
// the table is filled from that same look, so each workstation is reached once for the look. A
// workstation that cannot be reached fails its look within ssh's connect timeout (components/host.ts),
// one that answers and then hangs within --look-timeout; neither starts an engine, its result shows at
// once, and its slot goes to the next stack after one read of its state in the backend.
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { EngineEvent, LocalWorkspace, OpType, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { parseConfig, WorkstationConfig } from "../components/config/schema";
import { containerPiece } from "../components/pieces/dockerRuntime";
import { describe, UnreachableError } from "../components/host/connection";
import { modelPiece } from "../components/pieces/model";
import { servesPath } from "../components/pieces/vllmService";
import { Observed, observeAfter, Piece } from "../components/pieces/observe";
import { plan, PlanResult } from "../components/plan/planner";
import { parseProbeOutput } from "../components/preflight/facts";
import { connectionFor, EarlyLook, Look, lockTextFor, lookFor, planInput, workstationProgram } from "../components/program";
import { q, asset } from "../components/host/shell";
import { SECRET_STAND_IN, stackFileLayer, withTeamLayer } from "../components/config/stackFiles";
import { servedVllmVersion } from "../components/plan/vllmVersion";
import { engineEnv, inProcess, openStack, projectRoot } from "./engine";

export type FleetOp = "preview" | "up";

export interface FleetArgs {
    readonly op: FleetOp;
    /** Empty: every stack of the project. */
    readonly stacks: readonly string[];
    readonly concurrency: number;
    /** How long the look at one workstation may take before the fleet gives up on it. */
    readonly lookTimeoutSeconds: number;
    /** The project directory (Pulumi.yaml and the stack files); null: this checkout. */
    readonly cwd: string | null;
}

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_LOOK_TIMEOUT_SECONDS = 120;
export const USAGE = `usage: fleet preview|up [STACK...] [--concurrency N (1-64, default ${DEFAULT_CONCURRENCY})] [--look-timeout SECONDS (default ${DEFAULT_LOOK_TIMEOUT_SECONDS})] [--cwd DIR]`;

export class UsageError extends Error {}

/** Pulumi's own grammar for a stack name: it also becomes part of a file name (Pulumi.<stack>.yaml). */
const STACK_NAME = /^[A-Za-z0-9_.-]{1,100}$/;

export function parseFleetArgs(argv: readonly string[]): FleetArgs {
    const [op, ...rest] = argv;
    if (op !== "preview" && op !== "up") throw new UsageError(op === undefined ? "preview or up is missing" : `unknown command ${JSON.stringify(op)}: preview or up`);
    const stacks: string[] = [];
    let concurrency = DEFAULT_CONCURRENCY;
    let lookTimeoutSeconds = DEFAULT_LOOK_TIMEOUT_SECONDS;
    let cwd: string | null = null;
    for (let i = 0; i < rest.length; i++) {
        const arg = rest[i];
        const value = (): string => {
            const v = rest[++i];
            if (v === undefined) throw new UsageError(`${arg} needs a value`);
            return v;
        };
        if (arg === "--concurrency") {
            const v = value();
            if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 64) throw new UsageError(`--concurrency ${JSON.stringify(v)} is not a whole number from 1 to 64`);
            concurrency = Number(v);
        } else if (arg === "--look-timeout") {
            const v = value();
            if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 3600) throw new UsageError(`--look-timeout ${JSON.stringify(v)} is not a whole number of seconds from 1 to 3600`);
            lookTimeoutSeconds = Number(v);
        } else if (arg === "--cwd") {
            cwd = value();
        } else if (arg.startsWith("-")) {
            throw new UsageError(`unknown option ${JSON.stringify(arg)}`);
        } else if (!STACK_NAME.test(arg) || arg === "." || arg === "..") {
            throw new UsageError(`stack name ${JSON.stringify(arg)} is not a stack name (letters, digits, '_', '.', '-')`);
        } else if (!stacks.includes(arg)) {
            stacks.push(arg);
        }
    }
    return { op, stacks, concurrency, lookTimeoutSeconds, cwd };
}

// --- what a row holds, and the table ------------------------------------------------------------------

export type FleetResult = "converged" | "drifted" | "failed" | "unreachable";

export interface FleetRow {
    readonly stack: string;
    /** Where the stack points (user@host:port, "this machine"); null when its config could not be read. */
    readonly target: string | null;
    /** Whether the look at the workstation got an answer; null when none was tried. */
    readonly reachable: boolean | null;
    readonly card: string | null;
    readonly plan: string | null;
    readonly vllm: string | null;
    readonly model: string | null;
    /** The pieces a preview would change, or an up changed. */
    readonly pieces: readonly string[];
    readonly result: FleetResult;
    /** Why it failed or was not reached: the first line of the error. */
    readonly reason: string | null;
    /** card, plan and model come from the stack's outputs at its last up (the workstation was not reached). */
    readonly lastKnown: boolean;
}

/** 0: all converged; 2: a preview found drift and nothing failed; 1: anything failed or was unreachable. */
export function exitCode(rows: readonly FleetRow[]): 0 | 1 | 2 {
    if (rows.some((r) => r.result === "failed" || r.result === "unreachable")) return 1;
    if (rows.some((r) => r.result === "drifted")) return 2;
    return 0;
}

const REASON_WIDTH = 100;

function resultCell(r: Pick<FleetRow, "result" | "reason">): string {
    if (r.reason === null || r.result === "unreachable") return r.result;
    const reason = r.reason.length > REASON_WIDTH ? `${r.reason.slice(0, REASON_WIDTH - 3)}...` : r.reason;
    return `${r.result}: ${reason}`;
}

/** The table, one row per stack in the order given, columns padded to their widest cell. */
export function renderTable(op: FleetOp, rows: readonly FleetRow[]): string {
    const mark = (v: string | null, r: FleetRow) => (v === null ? "-" : r.lastKnown ? `${v}*` : v);
    const header = ["WORKSTATION", "REACHABLE", "CARD", "PLAN", "VLLM", "MODEL", op === "preview" ? "DRIFTED" : "CHANGED", "RESULT"];
    // Cells carry text from the workstations (a card's name, a package's folder, an error): no control
    // character of theirs reaches the admin's terminal, where an escape sequence would act.
    const body = rows.map((r) => [
        r.target === null ? r.stack : `${r.stack} (${r.target})`,
        r.reachable === null ? "-" : r.reachable ? "yes" : "no",
        mark(r.card, r),
        mark(r.plan, r),
        mark(r.vllm, r),
        mark(r.model, r),
        r.pieces.length === 0 ? "-" : r.pieces.join(","),
        resultCell(r),
    ].map(printable));
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
    const out = [line(header), ...body.map(line)];
    if (rows.some((r) => r.lastKnown)) out.push("", "* as of the stack's last up: the workstation was not reached");
    return out.join("\n") + "\n";
}

// --- cells ---------------------------------------------------------------------------------------------

/** The text with each control character (C0, DEL, C1) shown as `?`. */
export function printable(text: string): string {
    return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

/** "NVIDIA GeForce RTX 4090", 24564 MiB -> "RTX 4090 24 GiB". */
export function cardCell(gpu: { readonly name: string; readonly memoryTotalMiB: number } | null | undefined): string {
    if (!gpu) return "no GPU";
    const name = gpu.name.replace(/^NVIDIA\s+/, "").replace(/^GeForce\s+/, "");
    return `${name} ${Math.round(gpu.memoryTotalMiB / 1024)} GiB`;
}

export interface PlanShape {
    readonly tier: string | null;
    readonly maxModelLen: number;
    readonly maxNumSeqs: number;
    readonly cpuOffloadGb: number;
    readonly enforceEager: boolean;
}

/** "24gb: 32k ctx, 32 seqs" (+ ", offload 5 GiB", ", eager"). */
export function planCell(p: PlanShape): string {
    const ctx = p.maxModelLen % 1024 === 0 ? `${p.maxModelLen / 1024}k` : String(p.maxModelLen);
    const parts = [`${ctx} ctx`, `${p.maxNumSeqs} seqs`];
    if (p.cpuOffloadGb > 0) parts.push(`offload ${p.cpuOffloadGb} GiB`);
    if (p.enforceEager) parts.push("eager");
    return `${p.tier === null ? "" : `${p.tier}: `}${parts.join(", ")}`;
}

export function planResultCell(config: WorkstationConfig, result: PlanResult): string {
    if (!result.ok) return "refused";
    const p = result.plan;
    return planCell({ tier: config.gpu.tier, maxModelLen: p.maxModelLen, maxNumSeqs: p.maxNumSeqs, cpuOffloadGb: p.cpuOffloadGb, enforceEager: p.enforceEager });
}

/** The plan as the stack's `vllmFlags` output has it (its last up). */
export function planFromFlags(flags: Record<string, unknown> | undefined): string | null {
    if (!flags || typeof flags["max-model-len"] !== "number" || typeof flags["max-num-seqs"] !== "number") return null;
    return planCell({
        tier: null,
        maxModelLen: flags["max-model-len"],
        maxNumSeqs: flags["max-num-seqs"],
        cpuOffloadGb: typeof flags["cpu-offload-gb"] === "number" ? flags["cpu-offload-gb"] : 0,
        enforceEager: flags["enforce-eager"] === true,
    });
}

const short = (rev: string) => (/^[0-9a-f]{40}$/.test(rev) ? rev.slice(0, 12) : rev);

/**
 * What is on the box against what the stack wants: the one value when they agree; otherwise what a
 * preview (or a failed up) found and what it wants, or what a finished up replaced.
 */
export function installedCell(found: string, wanted: string, op: FleetOp, ok: boolean): string {
    if (found === wanted) return found;
    return op === "up" && ok ? `${found} -> ${wanted}` : `${found} (wants ${wanted})`;
}

/** The revision the model piece's probe found verified on the box (components/assets/model_probe.py): "none" when there is none. */
export function modelFound(observed: string | undefined): string {
    const m = /^model=(\S+)/m.exec(observed ?? "");
    return m === null || m[1] === "missing" ? "none" : m[1];
}

/** The model revision the service serves (installed_vllm.sh, from its serves file): after a rolled-back switch, the one before. */
export function servedRevision(observed: string | undefined): string | null {
    const m = /^served-revision=([0-9a-f]{40})$/m.exec(observed ?? "");
    return m === null ? null : m[1];
}

/** The vLLM release installed_vllm.sh found in the venv. */
export function vllmFound(observed: string | undefined): string {
    const m = /^vllm=(\S+)/m.exec(observed ?? "");
    return m === null ? "none" : m[1];
}

/** The docker runtime's vLLM: the wanted image's release when the container runs it (dockerRuntime.ts's probe). */
export function containerVllmFound(observed: string | undefined, config: WorkstationConfig): string {
    const text = observed ?? "";
    if (/^container=absent$/m.test(text) || text === "") return "none";
    return new RegExp(`^image=${config.dockerImage.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m").test(text) ? servedVllmVersion(config) : "another image";
}

// --- the look ------------------------------------------------------------------------------------------

/** One more read-only probe in the look: the vLLM release in the venv, which no piece's probe prints. */
export function installedVllmPiece(venvPath: string, serves: string = servesPath): Piece {
    return { name: "installed-vllm", what: `the vLLM release in ${venvPath}`, probe: `set -- ${q(venvPath)} ${q(serves)}\n${asset("installed_vllm.sh")}` };
}

export interface FleetLook {
    readonly config: WorkstationConfig;
    /** The program's own look (its key decides whether the program takes what this one saw). */
    readonly look: Look;
    /** The look's pieces and the fleet's own probes after them. */
    readonly pieces: readonly Piece[];
}

/**
 * The stack's config as the program will read it (the stack file, this machine's layer over the team's:
 * what program.ts's guessLook reads) and the program's look for it, with the fleet's probe added.
 */
export function fleetLook(workDir: string, stack: string): FleetLook {
    const doc = yaml.load(fs.readFileSync(path.join(workDir, "Pulumi.yaml"), "utf8")) as { name?: unknown; stackConfigDir?: unknown };
    const project = String(doc.name);
    const stackDir = typeof doc.stackConfigDir === "string" ? path.join(workDir, doc.stackConfigDir) : workDir;
    // Until the engine makes this machine's layer (at the stack's first run), it has no config of its own.
    const machineFile = path.join(stackDir, `Pulumi.${stack}.yaml`);
    const machine = stackFileLayer(fs.existsSync(machineFile) ? fs.readFileSync(machineFile, "utf8") : "", project, SECRET_STAND_IN).raw;
    const config: WorkstationConfig = { ...parseConfig(withTeamLayer(machine, project, stack)), apiKey: null, hfToken: null };
    const look = lookFor(config, lockTextFor(config));
    return { config, look, pieces: config.runtime === "systemd" ? [...look.pieces, installedVllmPiece(config.python.venvPath)] : look.pieces };
}

type Seen = { readonly first: string; readonly observed: Observed };

// --- engine events -------------------------------------------------------------------------------------

const CHANGING: ReadonlySet<OpType> = new Set<OpType>(["create", "update", "delete", "replace", "create-replacement", "delete-replaced", "import", "import-replacement"]);

/** "urn:pulumi:s::p::...$hoststate:index:HostState::workstation-python-packages" -> "python-packages". */
export function pieceName(urn: string): string {
    return (urn.split("::").pop() ?? urn).replace(/^workstation-/, "");
}

/** What a run's events say: the pieces it changes (or would), and its errors. */
export class StepLog {
    private readonly changing = new Set<string>();
    private readonly errors: string[] = [];

    readonly onEvent = (e: EngineEvent): void => {
        const m = e.resourcePreEvent?.metadata;
        // Pieces only: not the stack, its providers or the components that group the pieces.
        // (The engine's JSON leaves `custom` out when it is false.)
        if (m && CHANGING.has(m.op) && m.type !== "pulumi:pulumi:Stack" && !m.type.startsWith("pulumi:providers:") && (m.new ?? m.old)?.custom === true) {
            this.changing.add(pieceName(m.urn));
        }
        const d = e.diagnosticEvent;
        if (d && d.severity === "error" && d.message.trim() !== "") this.errors.push(d.message);
    };

    pieces(): string[] {
        return [...this.changing].sort();
    }

    /** The first error that says something of its own (not the engine's "update failed"), on one line without its fixes. */
    reason(): string | null {
        const own = this.errors.find((m) => !/^\s*((update|preview) failed|One or more errors occurred)/i.test(m)) ?? this.errors[0];
        return own === undefined ? null : oneLine(own);
    }
}

/** A multi-line message (a list of problems, each with its fix) as one line: the problems, without the fixes. */
export function oneLine(message: string): string {
    return message
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("fix:"))
        .map((l) => l.replace(/^- /, ""))
        .reduce((acc, l) => (acc === "" ? l : acc.endsWith(":") ? `${acc} ${l}` : `${acc}; ${l}`), "");
}

// --- running -------------------------------------------------------------------------------------------

/** Runs fn on every item, at most `limit` at once; results in the items' order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
    const results = new Array<R>(items.length);
    let next = 0;
    const worker = async () => {
        while (next < items.length) {
            const i = next++;
            results[i] = await fn(items[i]);
        }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    return results;
}

/** Turns a stream of text into whole lines for `say`; flush() hands on a last line without a newline. */
function lineSplitter(say: (line: string) => void): { write: (s: string) => void; flush: () => void } {
    let partial = "";
    return {
        write(s) {
            const lines = (partial + s).split(/\r?\n/);
            partial = lines.pop() ?? "";
            for (const l of lines) if (l.trim() !== "") say(l);
        },
        flush() {
            if (partial.trim() !== "") say(partial);
            partial = "";
        },
    };
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "unknown error";

/** A failed CLI run's own words: its first `error:` line (the Automation API's error starts with the exit code). */
export function engineError(e: unknown): string {
    const stderr = (e as { commandResult?: { stderr?: string } }).commandResult?.stderr ?? "";
    const line = stderr.split("\n").map((l) => l.trim()).find((l) => l.startsWith("error:"));
    return line !== undefined ? line.replace(/^error:\s*/, "") : firstLine(e);
}

export interface FleetContext {
    readonly workDir: string;
    /** The backend's directory; undefined: npm run up's (PULUMI_BACKEND_URL, else the cache's). */
    readonly stateDir?: string;
    readonly lookTimeoutSeconds: number;
    /** One line of a stack's progress. */
    readonly progress: (stack: string, line: string) => void;
}

/**
 * What the stack's outputs said at its last up (card, plan, model), read from the backend without
 * reaching the workstation: what the table shows of one it cannot reach. The export leaves secrets
 * encrypted; none of these outputs is one.
 */
async function lastKnown(opened: Promise<Stack>): Promise<Pick<FleetRow, "card" | "plan" | "model" | "lastKnown">> {
    try {
        const exported = await (await opened).exportStack();
        const root = (exported.deployment?.resources ?? []).find((r: { type?: string }) => r.type === "pulumi:pulumi:Stack");
        return lastKnownCells(root?.outputs ?? {});
    } catch {
        return { card: null, plan: null, model: null, lastKnown: false };
    }
}

export function lastKnownCells(outputs: Record<string, unknown>): Pick<FleetRow, "card" | "plan" | "model" | "lastKnown"> {
    const gpu = outputs.gpu as { name?: unknown; memoryTotalMiB?: unknown } | undefined;
    const card = gpu && typeof gpu.name === "string" && typeof gpu.memoryTotalMiB === "number" ? cardCell({ name: gpu.name, memoryTotalMiB: gpu.memoryTotalMiB }) : null;
    const planText = planFromFlags(outputs.vllmFlags as Record<string, unknown> | undefined);
    const model = typeof outputs.model === "string" && outputs.model.includes("@") ? short(outputs.model.slice(outputs.model.lastIndexOf("@") + 1)) : null;
    return { card, plan: planText, model, lastKnown: card !== null || planText !== null || model !== null };
}

/** The look did not finish in time: the workstation answered SSH (its connect timeout is ssh's), then hung. */
export class LookTimeout extends Error {
    override name = "LookTimeout";
}

/**
 * What `look` resolves to, or a LookTimeout after `seconds`, when its ssh (or shell) is killed. ssh
 * bounds only the connection (ConnectTimeout, ServerAlive in components/host.ts); a workstation that
 * accepts it and then hangs (an nvidia-smi that never returns, a stuck disk) would hold its slot and
 * the table forever, and leave its ssh behind when the fleet exits.
 */
export async function withDeadline<T>(look: (signal: AbortSignal) => Promise<T>, seconds: number, where: string): Promise<T> {
    const stop = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
            reject(new LookTimeout(`no answer from the workstation ${where} within ${seconds} s: the look at it (nvidia-smi, the disks, each piece's probe) did not finish; check the machine, or give it longer with --look-timeout`));
            stop.abort();
        }, seconds * 1000);
    });
    const seen = look(stop.signal);
    seen.catch(() => undefined); // after the deadline, its rejection (the kill) is nobody's news
    try {
        return await Promise.race([seen, deadline]);
    } finally {
        clearTimeout(timer);
    }
}

/** One stack: the look, then (if it answered) the engine. Never throws: a failure is a row. */
export async function runStack(stack: string, op: FleetOp, ctx: FleetContext): Promise<FleetRow> {
    const t0 = Date.now();
    const say = (line: string) => ctx.progress(stack, line);
    const sayDone = (row: Pick<FleetRow, "result" | "reason">) => say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${resultCell(row)}`);
    const done = (row: FleetRow): FleetRow => {
        sayDone(row);
        return row;
    };
    say(`${op} started`);
    let fl: FleetLook | null = null;
    try {
        fl = fleetLook(ctx.workDir, stack);
    } catch (e) {
        // The engine reads the config itself and reports what is wrong with it, as npm run preview would.
        say(`the stack file could not be read ahead of the engine (${firstLine(e)}); the program looks at the workstation itself`);
    }
    const target = fl === null ? null : describe(connectionFor(fl.config.target));
    const opened = openStack({ stack, program: workstationProgram, workDir: ctx.workDir, stateDir: ctx.stateDir });
    opened.catch(() => undefined); // awaited below, or not at all when the look fails
    let seen: Seen | null = null;
    if (fl !== null) {
        try {
            const { look, pieces } = fl;
            seen = await withDeadline((signal) => observeAfter(look.conn, "look at the workstation (preflight)", look.first, pieces, { signal }), ctx.lookTimeoutSeconds, target ?? stack);
        } catch (e) {
            const message = e instanceof Error ? e.message : String(e);
            for (const l of message.split("\n")) say(l);
            const unreachable = e instanceof UnreachableError || e instanceof LookTimeout;
            const outcome = { result: unreachable ? ("unreachable" as const) : ("failed" as const), reason: firstLine(e) };
            // Its result is known now; the table's cells from the stack's outputs follow without the box.
            sayDone(outcome);
            return {
                stack,
                target,
                reachable: unreachable || /^host key mismatch/.test(message) ? false : true,
                vllm: null,
                pieces: [],
                ...outcome,
                ...(unreachable ? await lastKnown(opened) : { card: null, plan: null, model: null, lastKnown: false }),
            };
        }
    }

    const early: EarlyLook | null = fl !== null && seen !== null ? { key: fl.look.key, seen: Promise.resolve(seen) } : null;
    const program: PulumiFn = inProcess(() => workstationProgram({ early }));
    const log = new StepLog();
    const out = lineSplitter(say);
    let failure: string | null = null;
    let changes = 0;
    try {
        const s = await opened;
        if (op === "preview") {
            const r = await s.preview({ onOutput: out.write, onEvent: log.onEvent, program });
            changes = Object.entries(r.changeSummary).filter(([k]) => k !== "same").reduce((n, [, v]) => n + (v ?? 0), 0);
        } else {
            await s.up({ onOutput: out.write, onEvent: log.onEvent, program });
        }
    } catch (e) {
        failure = log.reason() ?? engineError(e);
    }
    out.flush();

    const pieces = log.pieces();
    const unreachable = seen === null && failure !== null && /cannot reach the workstation/.test(failure);
    const result: FleetResult = failure !== null ? (unreachable ? "unreachable" : "failed") : op === "preview" && changes > 0 ? "drifted" : "converged";
    const row: FleetRow = { stack, target, reachable: seen !== null ? true : unreachable ? false : null, card: null, plan: null, vllm: null, model: null, pieces, result, reason: failure, lastKnown: false };
    if (fl === null || seen === null) return done(row);

    const { config } = fl;
    const facts = parseProbeOutput(seen.first);
    const card = facts.ok ? facts.facts.gpus?.[0] ?? null : null;
    const ok = failure === null;
    // The revision in service where the service says (a rolled-back switch serves the one before), else the one verified.
    const served = config.runtime === "systemd" ? servedRevision(seen.observed.get(installedVllmPiece(config.python.venvPath).name)) : null;
    const model = installedCell(short(served ?? modelFound(seen.observed.get(modelPiece(config.model).name))), short(config.model.revision), op, ok);
    const vllmSeen =
        config.runtime === "systemd" ? vllmFound(seen.observed.get(installedVllmPiece(config.python.venvPath).name)) : containerVllmFound(seen.observed.get(containerPiece(config).name), config);
    return done({
        ...row,
        card: facts.ok ? cardCell(card) : null,
        plan: facts.ok ? planResultCell(config, plan(planInput(config, facts.facts))) : null,
        vllm: installedCell(vllmSeen, servedVllmVersion(config), op, ok),
        model,
    });
}

/** The project's stacks: the stack files in its directory (the team's and this machine's) and the stacks in the backend. */
export async function projectStacks(workDir: string, stateDir?: string): Promise<string[]> {
    const names = new Set<string>();
    const fromDir = (dir: string) => {
        if (!fs.existsSync(dir)) return;
        for (const f of fs.readdirSync(dir)) {
            const m = /^Pulumi\.(.+)\.yaml$/.exec(f);
            if (m && STACK_NAME.test(m[1])) names.add(m[1]);
        }
    };
    fromDir(workDir);
    const doc = yaml.load(fs.readFileSync(path.join(workDir, "Pulumi.yaml"), "utf8")) as { stackConfigDir?: unknown };
    if (typeof doc.stackConfigDir === "string") fromDir(path.join(workDir, doc.stackConfigDir));
    const ws = await LocalWorkspace.create({ workDir, envVars: engineEnv({ stateDir }) });
    for (const s of await ws.listStacks()) names.add(s.name.split("/").pop() ?? s.name);
    return [...names].sort();
}

export async function fleet(args: FleetArgs, io: { stdout: (s: string) => void; stderr: (s: string) => void }, opts: { stateDir?: string } = {}): Promise<number> {
    const workDir = path.resolve(args.cwd ?? projectRoot);
    if (!fs.existsSync(path.join(workDir, "Pulumi.yaml"))) throw new UsageError(`--cwd ${JSON.stringify(args.cwd)}: no Pulumi.yaml in ${workDir}`);
    const known = await projectStacks(workDir, opts.stateDir);
    const unknown = args.stacks.filter((s) => !known.includes(s));
    // A misspelt name would otherwise become a new, empty stack in the backend.
    if (unknown.length > 0) throw new UsageError(`no stack ${unknown.map((s) => JSON.stringify(s)).join(", ")} in this project; its stacks: ${known.join(", ") || "none"}`);
    const stacks = args.stacks.length > 0 ? args.stacks : known;
    if (stacks.length === 0) throw new UsageError(`no stacks in this project (${workDir}): no Pulumi.<stack>.yaml and none in the backend`);
    const width = Math.max(...stacks.map((s) => s.length));
    const progress = (stack: string, line: string) => io.stderr(`[${stack.padEnd(width)}] ${line}\n`);
    io.stderr(`${args.op} of ${stacks.length} stack${stacks.length === 1 ? "" : "s"} (${stacks.join(", ")}), ${Math.min(args.concurrency, stacks.length)} at a time\n`);
    const rows = await pool(stacks, args.concurrency, (s) => runStack(s, args.op, { workDir, stateDir: opts.stateDir, lookTimeoutSeconds: args.lookTimeoutSeconds, progress }));
    io.stdout(renderTable(args.op, rows));
    return exitCode(rows);
}

if (require.main === module) {
    let args: FleetArgs;
    try {
        args = parseFleetArgs(process.argv.slice(2));
    } catch (e) {
        console.error(`${(e as Error).message}\n${USAGE}`);
        process.exit(1);
    }
    fleet(args, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }).then(
        (code) => process.exit(code),
        (e: Error) => {
            console.error(e instanceof UsageError ? `${e.message}\n${USAGE}` : e.message);
            process.exit(1);
        },
    );
}
