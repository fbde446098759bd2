// Drives the real Pulumi engine for a project directory without a Pulumi Cloud account.
//
// The program runs in this Node process and the CLI reaches it with `--client` (the Automation API's
// inline programs). That is how the project runs where only the CLI could be built from source: the
// Node.js language host's Go module cannot be fetched here, and an official Pulumi install, which has
// one, runs the same program with plain `pulumi up`.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, Stack, PulumiFn } from "@pulumi/pulumi/automation";

export const projectRoot = path.resolve(__dirname, "..", "..");

/** ~/.cache/vllm-workstation, or VLLM_WS_CACHE. */
export function cacheDir(): string {
    return process.env.VLLM_WS_CACHE ?? path.join(os.homedir(), ".cache", "vllm-workstation");
}

export interface EngineOptions {
    /** Stack name; the config comes from Pulumi.<stack>.yaml in workDir. */
    readonly stack: string;
    readonly program: PulumiFn;
    /** Holds Pulumi.yaml and the stack files. Default: the project root. */
    readonly workDir?: string;
    /** Local file backend directory. Default: PULUMI_BACKEND_URL, else <cache>/state. */
    readonly stateDir?: string;
    /** Extra environment for the CLI (and so for the providers it starts). */
    readonly env?: Readonly<Record<string, string>>;
}

/**
 * The passphrase that encrypts this backend's secrets. A user's own PULUMI_CONFIG_PASSPHRASE or
 * PULUMI_CONFIG_PASSPHRASE_FILE wins; otherwise one is generated once, readable only by its owner,
 * so nothing prompts when run non-interactively.
 */
export function passphraseEnv(stateDir: string): Record<string, string> {
    if (process.env.PULUMI_CONFIG_PASSPHRASE !== undefined) return {};
    if (process.env.PULUMI_CONFIG_PASSPHRASE_FILE) return {};
    const file = path.join(stateDir, ".passphrase");
    if (!fs.existsSync(file)) {
        fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
        const tmp = `${file}.${process.pid}`;
        fs.writeFileSync(tmp, crypto.randomBytes(24).toString("base64url") + "\n", { mode: 0o600 });
        fs.renameSync(tmp, file);
    }
    return { PULUMI_CONFIG_PASSPHRASE_FILE: file };
}

export function backendEnv(stateDir?: string): Record<string, string> {
    if (!stateDir && process.env.PULUMI_BACKEND_URL) return {};
    const dir = stateDir ?? path.join(cacheDir(), "state");
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return { PULUMI_BACKEND_URL: `file://${dir}`, ...passphraseEnv(dir) };
}

/**
 * The program as this process runs it. A program that throws (the stack's refusals do: bad config, an
 * unfit machine) fails the run, and the engine reports its message. But the SDK's root Stack resource
 * wraps the program's promise in an Output whose isKnown and isSecret promises nobody awaits, and they
 * reject with the same error after the Automation API has taken its own rejection handler away: in
 * this process (a test worker, npm run up) that is an unhandled rejection, which crashes Node or
 * fails a test file. The official language host runs a program in a process of its own and exits.
 */
export function inProcess(program: PulumiFn): PulumiFn {
    return async () => {
        try {
            return await program();
        } catch (e) {
            const root = pulumi.runtime.getStackResource() as unknown as { outputs?: { isKnown?: Promise<unknown>; isSecret?: Promise<unknown> } } | undefined;
            for (const p of [root?.outputs?.isKnown, root?.outputs?.isSecret]) p?.catch(() => undefined);
            throw e;
        }
    };
}

/** The environment every CLI run of a stack gets: the backend, the passphrase and the engine's settings. */
export function engineEnv(opts: Pick<EngineOptions, "stateDir" | "env">): Record<string, string> {
    return {
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        // Where this machine's stack file (.stacks/) lost its passphrase salt (deleted, a fresh clone on
        // the same backend), the engine takes it from the backend's state instead of making a new one.
        PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER: "true",
        // Node's on-disk compile cache, which this process fills when it exits: it cuts about a third of
        // loading @pulumi/pulumi in this process, and of every HostState step's Node process
        // (scripts/toolchain.sh sets it too).
        NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? path.join(cacheDir(), "node-compile-cache"),
        ...backendEnv(opts.stateDir),
        ...opts.env,
    };
}

export async function openStack(opts: EngineOptions): Promise<Stack> {
    const workDir = opts.workDir ?? projectRoot;
    const program = inProcess(opts.program);
    const envVars = engineEnv(opts);
    const ws = await LocalWorkspace.create({ workDir, program, envVars });
    const projectName = (await ws.projectSettings()).name;
    return LocalWorkspace.createOrSelectStack({ stackName: opts.stack, projectName, program }, { workDir, envVars });
}
