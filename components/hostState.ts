// A piece of workstation state that Pulumi can converge, read back and remove.
//
// @pulumi/command's Command has no Read (pulumi-command issue 432), so drift on the box (an edited unit
// file, a stopped service, a deleted model file) would never show in `pulumi preview`. HostState is a
// dynamic resource whose probe is cheap and whose diff compares what the probe saw with what it should
// see: the program runs every probe before it declares the pieces (observe.ts) and hands each what it
// saw, so every preview probes; `pulumi refresh` runs them through read.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { Connection } from "./host";
import type { HostStateInputs, HostStateOutputs } from "./hostStateProvider";

/**
 * The provider as the engine stores it in each resource's `__provider` and runs it in its
 * dynamic-provider process: a CommonJS module whose `handler()` returns the provider. Written out
 * rather than made by pulumi.dynamic.Resource's closure serializer, which costs about 0.4 s of every
 * `up` and `preview` (it opens a V8 inspector session to walk the closure) for what is the same text on
 * every run. It loads the implementation by absolute path, so the module graph stays out of the state.
 */
export function providerModule(implPath: string): string {
    const impl = JSON.stringify(implPath);
    return [
        `const impl = ${impl};`,
        `exports.handler = () => ({`,
        `    create: (inputs) => require(impl).create(inputs),`,
        `    read: (id, props) => require(impl).read(id, props),`,
        `    diff: (_id, olds, news) => require(impl).diff(olds, news),`,
        `    update: (id, olds, news) => require(impl).update(id, olds, news),`,
        `    delete: (id, props) => require(impl).remove(id, props),`,
        `});`,
        ``,
    ].join("\n");
}

const provider = providerModule(path.join(__dirname, "hostStateProvider.js"));

export type HostStateArgs = { [K in keyof HostStateInputs]: pulumi.Input<HostStateInputs[K]> };

/** A dynamic resource (what pulumi.dynamic.Resource registers), with the provider module above. */
export class HostState extends pulumi.CustomResource {
    /** What the probe printed at the last up or refresh (after a converge: after it). */
    declare public readonly observed: pulumi.Output<string>;

    constructor(name: string, args: HostStateArgs, opts?: pulumi.CustomResourceOptions) {
        // secretEnv is stored only as a Pulumi secret (encrypted) among the inputs; the provider drops it
        // from the outputs.
        const secretEnv = args.secretEnv === undefined ? undefined : pulumi.secret(args.secretEnv);
        // `observed` is always among the props: that makes it an output too (what the provider returns).
        super("pulumi-nodejs:dynamic:Resource", name, { ...args, secretEnv, observed: args.observed, __provider: provider }, opts);
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
