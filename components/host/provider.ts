// The box half of HostState's provider: the steps that touch the workstation. The provider
// (tools/provider, pulumi-resource-hoststate) answers Check and Diff itself and runs each of these as
// `node host/provider.js <create|read|update|delete>`, the request as JSON on stdin and the reply as
// JSON on stdout; progress goes to stderr, which the provider shows beside the resource. It imports
// nothing from the program side, so a step loads in tens of milliseconds.
import { Connection, describe, runOrThrow, UnreachableError } from "./connection";
import { scrub } from "../config/urls";

/**
 * The exit status of an apply that changed the piece, found the change unhealthy and put the piece back
 * as it was (the vLLM service's switch): the step fails, and its state stays the old one.
 */
export const ROLLED_BACK_EXIT = 75;

/** Inputs of one HostState, as the provider receives them. */
export interface HostStateInputs {
    readonly connection: Connection;
    /** What the resource is, for messages ("the vLLM service"). */
    readonly what: string;
    /** Converges the piece; safe to run again. */
    readonly apply: string;
    /** Prints the piece's observed state on stdout; cheap, because every preview runs it. */
    readonly probe: string;
    /** What probe prints once apply has run. */
    readonly expected: string;
    /** Removes exactly what apply made. */
    readonly remove: string;
    /** Extra environment for apply only (a token, say); never written to state. */
    readonly secretEnv?: Readonly<Record<string, string>>;
    /**
     * What the probe printed when the program looked at the box in this run (observe.ts); diff compares
     * it with expected. Absent (a program that does not look, state from before): the last refresh's.
     */
    readonly observed?: string;
}

export interface HostStateOutputs extends Omit<HostStateInputs, "secretEnv"> {
    /** What probe printed at the last create, update or refresh. */
    readonly observed: string;
}

/** Progress bars (tqdm, uv) redraw many times a second; one line every few seconds is enough to read. */
export function throttled(emit: (line: string) => void, everyMs = 3000, now: () => number = Date.now): (line: string) => void {
    let last = -Infinity;
    return (line) => {
        const bar = /\d+%\|/.test(line);
        if (bar && !/100%\|/.test(line) && now() - last < everyMs) return;
        if (bar) last = now();
        emit(line);
    };
}

function progress(what: string, secretEnv: Readonly<Record<string, string>> = {}): (line: string) => void {
    // The engine shows a provider's stderr lines in the `pulumi up` output: never a secret among them.
    return throttled((line) => console.error(`[${what}] ${scrub(line, secretEnv)}`));
}

async function probe(inputs: HostStateInputs): Promise<string> {
    return (await runOrThrow(inputs.connection, `check ${inputs.what}`, inputs.probe)).trim();
}

/**
 * A step that failed after its script ran on the box: what it may have made there is recorded in
 * `outs` (the inputs, remove script included, and what the probe saw after the failure), so the engine
 * keeps the resource with the error instead of forgetting it: the next `up` runs it again, and
 * `destroy` runs its remove.
 */
export class PartialFailure extends Error {
    override name = "PartialFailure";
    constructor(
        message: string,
        readonly id: string,
        readonly outs: HostStateOutputs,
    ) {
        super(message);
    }
}

async function converge(id: string, inputs: HostStateInputs, olds?: HostStateOutputs): Promise<HostStateOutputs> {
    const { secretEnv, ...stored } = inputs;
    const secrets = secretEnv ?? {};
    try {
        await runOrThrow(inputs.connection, `set up ${inputs.what}`, inputs.apply, { env: secrets, onProgress: progress(inputs.what, secrets) });
    } catch (e) {
        const message = scrub(e instanceof Error ? e.message : String(e), secrets);
        // Not reached: the script never ran, there is nothing to record.
        if (e instanceof UnreachableError) throw new Error(message);
        // Rolled back: the box is as the last converge left it, so the state stays the old one (and a
        // preview still shows the wanted change), with what the probe sees now.
        if (olds !== undefined && message.includes(`(exit ${ROLLED_BACK_EXIT}):`)) {
            const seen = await probe(olds).catch((p: unknown) => `(not probed after the failure: ${scrub(p instanceof Error ? p.message : String(p), secrets)})`);
            throw new PartialFailure(message, id, { ...olds, observed: seen });
        }
        const observed = await probe(inputs).catch((p: unknown) => `(not probed after the failure: ${scrub(p instanceof Error ? p.message : String(p), secrets)})`);
        throw new PartialFailure(message, id, { ...stored, observed });
    }
    const observed = await probe(inputs).catch((p: unknown) => {
        throw new PartialFailure(scrub(p instanceof Error ? p.message : String(p), secrets), id, { ...stored, observed: "(not probed after setup)" });
    });
    if (observed !== inputs.expected.trim()) {
        throw new PartialFailure(
            `${inputs.what} on ${describe(inputs.connection)} did not reach the expected state after setup.\n` +
                scrub(`expected: ${inputs.expected.trim()}\nobserved: ${observed}`, secrets),
            id,
            { ...stored, observed },
        );
    }
    return { ...stored, observed };
}

export async function create(inputs: HostStateInputs): Promise<{ id: string; outs: HostStateOutputs }> {
    return { id: inputs.what, outs: await converge(inputs.what, inputs) };
}

export async function read(id: string, props: HostStateOutputs): Promise<{ id: string; props: HostStateOutputs }> {
    return { id, props: { ...props, observed: await probe(props) } };
}

export async function update(id: string, olds: HostStateOutputs, news: HostStateInputs): Promise<{ outs: HostStateOutputs }> {
    return { outs: await converge(id, news, olds) };
}

export async function remove(_id: string, props: HostStateOutputs): Promise<void> {
    try {
        await runOrThrow(props.connection, `remove ${props.what}`, props.remove, { onProgress: progress(props.what) });
    } catch (e) {
        throw new Error(scrub(e instanceof Error ? e.message : String(e)));
    }
}

/** One step as the provider asks for it: what `node host/provider.js <op>` does with its stdin. */
export async function step(op: string, req: Record<string, unknown>): Promise<unknown> {
    const r = req as { id: string; inputs: HostStateInputs; props: HostStateOutputs; olds: HostStateOutputs; news: HostStateInputs };
    switch (op) {
        case "create":
            return create(r.inputs);
        case "read":
            return read(r.id, r.props);
        case "update":
            return update(r.id, r.olds, r.news);
        case "delete":
            return remove(r.id, r.props).then(() => ({}));
        default:
            throw new Error(`unknown step ${JSON.stringify(op)}: expected create, read, update or delete`);
    }
}

/**
 * What `node host/provider.js <op>` prints: `{result}`, or `{error}`, with `partial: {id, outs}`
 * when the step failed after it touched the box (the provider hands that to the engine as the
 * resource's partial state).
 */
export async function reply(op: string, req: Record<string, unknown>): Promise<{ result: unknown } | { error: string; partial?: { id: string; outs: HostStateOutputs } }> {
    return step(op, req).then(
        (result) => ({ result }),
        (e: unknown) =>
            e instanceof PartialFailure ? { error: e.message, partial: { id: e.id, outs: e.outs } } : { error: scrub(e instanceof Error ? e.message : String(e)) },
    );
}

async function main(op: string): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const out = await reply(op, JSON.parse(Buffer.concat(chunks).toString("utf8")));
    process.stdout.write(JSON.stringify(out));
    process.exitCode = "error" in out ? 1 : 0;
}

if (require.main === module) void main(process.argv[2] ?? "");
