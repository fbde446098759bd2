// The provider half of HostState (see hostState.ts). It runs in the engine's dynamic-provider process,
// which loads this file by path, so it imports nothing from the program side.
import type * as pulumi from "@pulumi/pulumi";
import { Connection, describe, runOrThrow } from "./host";

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

// Inputs whose change means the piece must be converged again; secretEnv is not among them on purpose:
// a rotated token must not re-download a model.
const tracked = ["connection", "apply", "probe", "expected", "remove"] as const;

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

function progress(what: string): (line: string) => void {
    // The engine shows a provider's stderr lines in the `pulumi up` output.
    return throttled((line) => console.error(`[${what}] ${line}`));
}

async function probe(inputs: HostStateInputs): Promise<string> {
    return (await runOrThrow(inputs.connection, `check ${inputs.what}`, inputs.probe)).trim();
}

async function converge(inputs: HostStateInputs): Promise<HostStateOutputs> {
    const { secretEnv, ...stored } = inputs;
    await runOrThrow(inputs.connection, `set up ${inputs.what}`, inputs.apply, {
        env: secretEnv ?? {},
        onProgress: progress(inputs.what),
    });
    const observed = await probe(inputs);
    if (observed !== inputs.expected.trim()) {
        throw new Error(
            `${inputs.what} on ${describe(inputs.connection)} did not reach the expected state after setup.\n` +
                `expected: ${inputs.expected.trim()}\nobserved: ${observed}`,
        );
    }
    return { ...stored, observed };
}

export async function create(inputs: HostStateInputs): Promise<pulumi.dynamic.CreateResult<HostStateOutputs>> {
    return { id: inputs.what, outs: await converge(inputs) };
}

export async function read(id: string, props: HostStateOutputs): Promise<pulumi.dynamic.ReadResult<HostStateOutputs>> {
    return { id, props: { ...props, observed: await probe(props) } };
}

/**
 * Drift is an observed state that differs from the expected one; a changed script is a change too. The
 * observed state is what the program saw in this run, else what the last refresh or converge saw.
 */
export function diff(olds: HostStateOutputs, news: HostStateInputs): pulumi.dynamic.DiffResult {
    const changed = tracked.filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
    const drifted = (news.observed ?? olds.observed).trim() !== news.expected.trim();
    return { changes: changed.length > 0 || drifted };
}

export async function update(_id: string, _olds: HostStateOutputs, news: HostStateInputs): Promise<pulumi.dynamic.UpdateResult<HostStateOutputs>> {
    return { outs: await converge(news) };
}

export async function remove(_id: string, props: HostStateOutputs): Promise<void> {
    await runOrThrow(props.connection, `remove ${props.what}`, props.remove, { onProgress: progress(props.what) });
}
