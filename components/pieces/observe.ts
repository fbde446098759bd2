// What the program sees of every piece of the workstation before it declares them: each HostState's
// probe, all in one round trip to the box. The program hands each HostState what its probe printed, and
// HostState's diff compares that with what the probe should print, so `pulumi preview` shows drift
// without an up-front refresh. A refresh is a deployment of its own (its own provider process,
// one SSH connection per piece), and made every preview several times slower (see docs/benchmarks.md).
import { Connection, describe, RunOptions, runOrThrow } from "../host/connection";
import { fillFragment, q } from "../host/shell";

/** One piece to look at: its name, what it is (for messages) and its probe (HostState's `probe`). */
export interface Piece {
    /** Unique among the workstation's pieces: what the look saw of it is kept under this name. */
    readonly name: string;
    readonly what: string;
    readonly probe: string;
    /** The paths its apply takes (and its remove may delete): the preflight checks each is free or the stack's. */
    readonly claims?: readonly Claim[];
}

/** A path a piece takes: a directory it makes (or fills), or a file it writes among other people's. */
export interface Claim {
    readonly path: string;
    readonly kind: "dir" | "file";
    /** For a file: the sha256 of what the stack writes (an identical file is taken as is); null: unknown here. */
    readonly sha256: string | null;
    /** The option that decides the path, for the refusal's fix ("python.venvPath"); null for a fixed path. */
    readonly option: string | null;
}

/** What each piece's probe printed, trimmed, by the piece's name. */
export type Observed = ReadonlyMap<string, string>;

const start = (i: number) => `@@vllm-workstation probe ${i}@@`;
const endPrefix = (i: number) => `@@vllm-workstation probe ${i} end rc=`;

/**
 * One script running every probe in a bash of its own (components/pieces/assets/probe_batch.sh), so one probe's
 * failure or `exit` cannot stop the others; each output is fenced by marker lines.
 */
export function renderProbeBatch(pieces: readonly Piece[]): string {
    const names = pieces.map((p) => p.name);
    const twice = names.filter((n, i) => names.indexOf(n) !== i);
    if (twice.length > 0) throw new Error(`two pieces named ${JSON.stringify(twice[0])}: what the look saw is kept by name`);
    return pieces
        .map((p, i) => fillFragment("probe_batch.sh", { START: q(start(i)), PROBE: q(p.probe), END: q(endPrefix(i)) }))
        .join("\n");
}

/** Splits the batch's output back into each probe's; a probe that failed is an error naming its piece. */
export function parseProbeBatch(pieces: readonly Piece[], out: string, where = "the workstation"): Observed {
    const lines = out.split("\n");
    const seen = new Map<string, string>();
    let at = 0;
    pieces.forEach((p, i) => {
        const from = lines.indexOf(start(i), at);
        const to = from < 0 ? -1 : lines.findIndex((l, k) => k > from && l.startsWith(endPrefix(i)));
        if (to < 0) throw new Error(`the probes' output from ${where} is cut off at ${p.what} (probe ${i} of ${pieces.length}); run the command again`);
        const rc = lines[to].slice(endPrefix(i).length, -2);
        if (rc !== "0") throw new Error(`check ${p.what} failed on ${where} (exit ${rc}):\n${lines.slice(from + 1, to).join("\n").trim()}`);
        seen.set(p.name, lines.slice(from + 1, to).join("\n").trim());
        at = to + 1;
    });
    return seen;
}

/**
 * Runs `first`, another read-only script (the program's preflight), then every piece's probe, all in one
 * round trip to the workstation; resolves to what `first` printed and what each probe printed.
 */
export async function observeAfter(
    conn: Connection,
    what: string,
    first: string,
    pieces: readonly Piece[],
    opts: Pick<RunOptions, "signal"> = {},
): Promise<{ first: string; observed: Observed }> {
    const out = await runOrThrow(conn, what, pieces.length === 0 ? first : `${first}\n${renderProbeBatch(pieces)}`, opts);
    if (pieces.length === 0) return { first: out, observed: new Map() };
    const lines = out.split("\n");
    const at = lines.indexOf(start(0));
    return { first: at < 0 ? out : lines.slice(0, at).join("\n"), observed: parseProbeBatch(pieces, out, describe(conn)) };
}

/** Runs every piece's probe on the workstation in one go. */
export async function observe(conn: Connection, pieces: readonly Piece[]): Promise<Observed> {
    if (pieces.length === 0) return new Map();
    return (await observeAfter(conn, "check every piece of the workstation", "", pieces)).observed;
}
