// The rig the upgrade tests of the systemd runtime run on: startRig's box, package index and Hub double,
// with the default wheelhouse (the vllm doubles 0.11.0, 0.11.2 and 0.11.1+broken, which exits at
// `vllm serve`; flashinfer 0.3.1), the test stack on 0.11.0 with a health check of 60 s, and what these
// tests read of the service on the box: the version that answers, the venv link, the install it runs.
import { installPath } from "../../components/pieces/python";
import { parseConfig } from "../../components/config/schema";
import type { HfEndpointOptions, PackageIndexOptions } from "../infra/servers/index";
import type { Box } from "./box";
import { changesLookingAhead, Rig, startRig, upLookingAhead } from "./rig";
import type { TestStack } from "./stack";
import type { boxStackConfig } from "./workstation";

/** The stack's venv path (python.venvPath's default): a link to the install in service. */
export const venv = "/opt/vllm-workstation/venv";

export interface UpgradeRigOptions {
    /** Names the box and the test stack. */
    readonly name: string;
    /** Laid over { wheelhouse: {} } (the default wheelhouse): e.g. logRequests. */
    readonly index?: PackageIndexOptions;
    /** The Hub double's options: e.g. more commits of the model's repository. */
    readonly hub?: HfEndpointOptions;
}

export interface UpgradeRig extends Pick<Rig<Box>, "box" | "index" | "hub" | "port" | "stop"> {
    /** The test stack, made on the rig once. */
    readonly ts: TestStack;
    /** The config the test stack was made with. */
    readonly stackConfig: ReturnType<typeof boxStackConfig>;
    /** `up` as npm run up runs it (upLookingAhead). */
    up(t: { log: (...a: unknown[]) => void }, opts?: { expectNoChanges?: boolean }): ReturnType<typeof upLookingAhead>;
    /** What a plain preview would change, `same` left out (changesLookingAhead). */
    changes(): Promise<Record<string, number>>;
    /** The install of the packages `vllmVersion` asks for, as the stack names it. */
    installOf(vllmVersion: string): string;
    /** The version the vLLM on the service's port reports. */
    servedVersion(): Promise<string>;
    /** Where the venv path links to. */
    link(): Promise<string>;
    /** The install the running vLLM came from: the interpreter its script's shebang names, first on its command line. */
    servedFrom(): Promise<string>;
}

export async function startUpgradeRig(opts: UpgradeRigOptions): Promise<UpgradeRig> {
    const rig = await startRig({ name: opts.name, index: { wheelhouse: {}, ...opts.index }, hub: opts.hub });
    const { box, port } = rig;
    const base = rig.config();
    const stackConfig = { ...base, python: { ...base.python, vllmVersion: "0.11.0", flashinferVersion: "0.3.1" }, server: { port, healthTimeoutSeconds: 60 } };
    let ts: TestStack;
    try {
        ts = await rig.stack({ config: stackConfig });
    } catch (e) {
        await rig.stop();
        throw e;
    }
    return {
        box,
        index: rig.index,
        hub: rig.hub,
        port,
        ts,
        stackConfig,
        stop: rig.stop,
        up: (t, o = {}) => upLookingAhead(ts, t, o),
        changes: () => changesLookingAhead(ts),
        installOf: (vllmVersion) => installPath(parseConfig({ model: { revision: stackConfig.model.revision }, python: { ...stackConfig.python, vllmVersion } }).python, null),
        servedVersion: async () => ((await (await fetch(`http://127.0.0.1:${port}/version`)).json()) as { version: string }).version,
        link: async () => (await box.sh(`readlink ${venv}`)).trim(),
        servedFrom: async () =>
            (await box.sh(`tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value vllm-workstation)/cmdline | head -n 1`)).trim().replace(/\/bin\/python[0-9.]*$/, ""),
    };
}
