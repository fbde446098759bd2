// The rig a workstation integration test runs on: the throwaway box with the GPU doubles, the package
// index and the Hub double, started together, and the test stack made on them, all gone with one stop().
import type { PulumiFn } from "@pulumi/pulumi/automation";
import { lookingAhead, workstationProgram } from "../../components/program";
import { HfEndpoint, HfEndpointOptions, PackageIndex, PackageIndexOptions, startHfEndpoint, startPackageIndex } from "../infra/servers";
import { Box, startBox } from "./box";
import { testStack, TestStack } from "./stack";
import { boxStackConfig, installGpuDoubles, wheelhouse } from "./workstation";

export interface RigOptions {
    /** Names the box (its directory and hostname) and the test stack (its directory under .work/). */
    readonly name: string;
    /** false: no box (a test whose workstation is this machine); the index and the Hub only. Default true. */
    readonly box?: boolean;
    /** The card the box's nvidia-smi double reports: a fixture in tests/fixtures/nvidia-smi. Default "rtx4090". */
    readonly card?: string;
    /** Laid over { wheelhouse } (the lifecycle tests' wheelhouse, tests/helpers/workstation.ts). */
    readonly index?: PackageIndexOptions;
    readonly hub?: HfEndpointOptions;
    /** The service's port. Default: one in 18000-18999, below the ephemeral range outgoing connections take. */
    readonly port?: number;
}

export interface RigStackOptions {
    /** Default rig.config(): boxStackConfig on this rig's box, index, Hub and port. */
    readonly config?: Record<string, unknown>;
    /** Default workstationProgram. */
    readonly program?: PulumiFn;
    /** More environment for the engine (testStack's env). */
    readonly env?: Record<string, string>;
}

export interface RigStopOptions {
    /**
     * Runs before the destroy, inside its best-effort try: what must go first for the destroy to work
     * (stack.cancel() after a killed run left the lock, a program a test left on the service's port).
     */
    readonly beforeDestroy?: (ts: TestStack) => Promise<unknown>;
    /** false: a test destroyed the stack itself; it is only removed. Default true. */
    readonly destroy?: boolean;
}

export interface Rig<B extends Box | undefined = Box> {
    readonly box: B;
    readonly index: PackageIndex;
    readonly hub: HfEndpoint;
    readonly port: number;
    /** The stack the last stack() made (the one stop() destroys); undefined before the first. */
    readonly ts: TestStack | undefined;
    /** boxStackConfig(box, index, hub, port): the lifecycle tests' stack config on this rig. */
    config(): ReturnType<typeof boxStackConfig>;
    /** Makes the rig's test stack, named as the rig; one made before is removed (not destroyed) first. */
    stack(opts?: RigStackOptions): Promise<TestStack>;
    /** Destroys the rig's stack (best effort: the box goes away anyway), removes it, stops the box and the servers. */
    stop(opts?: RigStopOptions): Promise<void>;
}

/**
 * Starts the box, the package index and the Hub double at once, installs the GPU doubles on the box,
 * and picks the service's port. Whatever started is stopped again when any part fails.
 *
 *     let rig: Rig;
 *     let ts: TestStack;
 *     test.before(async () => {
 *         rig = await startRig({ name: "upgrade", hub: { rateLimitBytesPerSec: 1 << 20 } });
 *         ts = await rig.stack(); // or rig.stack({ config: { ...rig.config(), gpu: { tier: "12gb" } } })
 *     });
 *     test.after.always(() => rig?.stop());
 *
 * A test's own needs: `index` and `hub` take the servers' options (basicAuth, token, a rate limit, more
 * repositories), `card` another nvidia-smi fixture, `port` a port of its own, `box: false` no box (the
 * workstation is this machine); rig.stack({ config, env, program }) another config, environment or
 * program; rig.stop({ beforeDestroy }) what must go before the destroy, rig.stop({ destroy: false }) a
 * stack a test destroyed itself. up and preview as npm runs them: upLookingAhead and changesLookingAhead
 * (below). A stack of its own beside the rig's (a refused config, a second user) a test makes
 * with testStack and removes itself.
 */
export function startRig(opts: RigOptions & { box: false }): Promise<Rig<undefined>>;
export function startRig(opts: RigOptions & { box?: true }): Promise<Rig<Box>>;
export async function startRig(opts: RigOptions): Promise<Rig<Box | undefined>> {
    const [b, i, h] = await Promise.allSettled([
        opts.box === false ? Promise.resolve(undefined) : startBox({ name: opts.name }),
        startPackageIndex({ wheelhouse, ...opts.index }),
        startHfEndpoint(opts.hub),
    ]);
    const stopStarted = () => Promise.all([b, i, h].map((p) => (p.status === "fulfilled" ? p.value?.stop() : undefined))).catch(() => undefined);
    if (b.status === "rejected" || i.status === "rejected" || h.status === "rejected") {
        await stopStarted();
        throw [b, i, h].flatMap((p) => (p.status === "rejected" ? [p.reason] : []))[0];
    }
    const [box, index, hub] = [b.value, i.value, h.value];
    try {
        if (box) await installGpuDoubles(box, opts.card ?? "rtx4090");
    } catch (e) {
        await stopStarted();
        throw e;
    }
    const port = opts.port ?? 18000 + Math.floor(Math.random() * 1000);
    let ts: TestStack | undefined;
    const config = () => {
        if (!box) throw new Error(`rig ${opts.name} has no box: its stack needs a config of its own`);
        return boxStackConfig(box, index, hub, port);
    };
    return {
        box,
        index,
        hub,
        port,
        get ts() {
            return ts;
        },
        config,
        stack: async (s = {}) => {
            ts?.remove();
            ts = undefined;
            ts = await testStack({ name: opts.name, program: s.program ?? workstationProgram, config: s.config ?? config(), env: s.env });
            return ts;
        },
        stop: async (s = {}) => {
            if (ts && s.destroy !== false) {
                try {
                    await s.beforeDestroy?.(ts);
                    await ts.stack.destroy({ onOutput: ts.onOutput });
                } catch {
                    // the box goes away anyway; a test of destroy reports destroy's own failures
                }
            }
            ts?.remove();
            await Promise.all([box?.stop(), index.stop(), hub.stop()]);
        },
    };
}

// As npm run up and preview run them: the look at the box started from the stack file before the CLI
// (program.ts, lookingAhead), so drift is seen by that early look.

/** `up` on the test stack as npm run up runs it; on a failure the engine's last output goes to the test's log. */
export async function upLookingAhead(ts: TestStack, t: { log: (...a: unknown[]) => void }, opts: { expectNoChanges?: boolean } = {}) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput, ...opts, program: lookingAhead(ts.dir, "test") });
    } catch (e) {
        t.log(ts.output.join("").slice(-6000));
        throw e;
    }
}

/** What a plain preview, as npm run preview runs it, would change (`same` left out): {} when the workstation is converged. */
export async function changesLookingAhead(ts: TestStack): Promise<Record<string, number>> {
    const pv = await ts.stack.preview({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") });
    return Object.fromEntries(Object.entries(pv.changeSummary).filter(([k]) => k !== "same"));
}
