// A piece of workstation state that Pulumi can converge, read back and remove.
//
// @pulumi/command's Command has no Read (pulumi-command issue 432), so drift on the box (an edited unit
// file, a stopped service, a deleted model file) would never show in `pulumi preview`. HostState is a
// resource of the project's own provider (tools/provider) whose probe is cheap and whose diff compares
// what the probe saw with what it should see: the program runs every probe before it declares the
// pieces (observe.ts) and hands each what it saw, so every preview probes; `pulumi refresh` runs them
// through read.
import * as pulumi from "@pulumi/pulumi";
import type { Connection } from "./connection";
import type { HostStateInputs, HostStateOutputs } from "./provider";
import type { Observed, Piece } from "../pieces/observe";

/** Its provider's package: the plugin pulumi-resource-hoststate (tools/provider), which scripts/toolchain.sh builds into tools/provider/bin, where Pulumi.yaml's `plugins:` points the engine. */
export const HOSTSTATE_TYPE = "hoststate:index:HostState";

/**
 * What HostState was registered as before it had a provider of its own: a Node dynamic resource. The
 * alias carries a workstation converged then over to the new type with a diff, not a replacement, which
 * would make every piece again and then remove the old ones, model and venv included.
 */
export const DYNAMIC_TYPE = "pulumi-nodejs:dynamic:Resource";

export type HostStateArgs = { [K in keyof HostStateInputs]: pulumi.Input<HostStateInputs[K]> };

export class HostState extends pulumi.CustomResource {
    /** What the probe printed at the last up or refresh (after a converge: after it). */
    declare public readonly observed: pulumi.Output<string>;

    constructor(name: string, args: HostStateArgs, opts?: pulumi.CustomResourceOptions) {
        // secretEnv is stored only as a Pulumi secret (encrypted) among the inputs; the provider drops it
        // from the outputs.
        const secretEnv = args.secretEnv === undefined ? undefined : pulumi.secret(args.secretEnv);
        // `observed` is always among the props: that makes it an output too (what the provider returns).
        super(HOSTSTATE_TYPE, name, { ...args, secretEnv, observed: args.observed }, { ...opts, aliases: [...(opts?.aliases ?? []), { type: DYNAMIC_TYPE }] });
    }
}

/**
 * `value` once `state` is converged: the output resolves only after the resource's create or update
 * returned (its health check included), and carries the dependency to whatever consumes it. It hangs
 * on the URN rather than on `observed`, because an update makes `observed` unknown during preview, and
 * that unknown would spread into every consumer's inputs and show them all as changing.
 */
export function ready<T>(state: HostState, value: T): pulumi.Output<T> {
    return state.urn.apply(() => value);
}

/** The scripts of a piece whose text waits on other pieces' outputs (a snapshot path, a key's id). */
export interface PieceScripts {
    readonly apply: string;
    readonly expected: string;
    readonly remove: string;
}

/**
 * The HostState of `piece`: its probe and what the program saw of it this run, with apply, expected and
 * remove from `scripts`.
 */
export function pieceState(
    name: string,
    piece: Piece,
    scripts: pulumi.Output<PieceScripts>,
    args: { readonly connection: Connection; readonly observed: Observed | null; readonly secretEnv?: pulumi.Input<Record<string, string>> },
    opts: pulumi.CustomResourceOptions,
): HostState {
    return new HostState(
        name,
        {
            connection: args.connection,
            what: piece.what,
            apply: scripts.apply((s) => s.apply),
            probe: piece.probe,
            observed: args.observed?.get(piece.name),
            expected: scripts.apply((s) => s.expected),
            remove: scripts.apply((s) => s.remove),
            secretEnv: args.secretEnv,
        },
        opts,
    );
}

export type { Connection, HostStateOutputs };
