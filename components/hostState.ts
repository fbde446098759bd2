// A piece of workstation state that Pulumi can converge, read back and remove.
//
// @pulumi/command's Command has no Read (pulumi-command issue 432), so drift on the box (an edited unit
// file, a stopped service, a deleted model file) would never show in `pulumi preview`. HostState is a
// dynamic resource whose read runs a cheap probe on the box and whose diff compares what the probe saw
// with what it should see; with `refresh: always` (Pulumi.yaml) every preview probes.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Connection } from "./host";
import type { HostStateInputs, HostStateOutputs } from "./hostStateProvider";

// The engine serializes the provider's functions into the state and runs them in another process. They
// load the implementation by absolute path, so only this string is captured, not the module graph.
const impl = path.join(__dirname, "hostStateProvider.js");

const provider: pulumi.dynamic.ResourceProvider = {
    create: (inputs) => require(impl).create(inputs),
    read: (id, props) => require(impl).read(id, props),
    diff: (_id, olds, news) => require(impl).diff(olds, news),
    update: (id, olds, news) => require(impl).update(id, olds, news),
    delete: (id, props) => require(impl).remove(id, props),
};

export type HostStateArgs = { [K in keyof HostStateInputs]: pulumi.Input<HostStateInputs[K]> };

export class HostState extends pulumi.dynamic.Resource {
    /** What the probe printed at the last up or refresh. */
    declare public readonly observed: pulumi.Output<string>;

    constructor(name: string, args: HostStateArgs, opts?: pulumi.CustomResourceOptions) {
        // secretEnv is stored only as a Pulumi secret (encrypted) among the inputs; the provider drops it
        // from the outputs.
        const secretEnv = args.secretEnv === undefined ? undefined : pulumi.secret(args.secretEnv);
        super(provider, name, { ...args, secretEnv, observed: undefined }, opts);
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

export type { Connection, HostStateOutputs };
