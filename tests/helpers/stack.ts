// A throwaway Pulumi project directory for a test: its own Pulumi.yaml, stack file and file backend,
// nested in the repo, so the providers the engine starts there find the repo's dist/ and node_modules.
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import type { LocalWorkspace, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { openStack, projectRoot } from "../../scripts/engine";
import type { Box } from "./box";

export interface TestStack {
    readonly dir: string;
    readonly stack: Stack;
    /** Every line the engine printed, for assertions on what a user sees. */
    readonly output: string[];
    readonly onOutput: (s: string) => void;
    remove(): void;
}

export async function testStack(opts: {
    name: string;
    program: PulumiFn;
    /** Stack config (the `config:` map of Pulumi.<stack>.yaml), keys without the project prefix. */
    config?: Record<string, unknown>;
    project?: string;
    /** Default "test". */
    stackName?: string;
    env?: Record<string, string>;
    /** As the project's Pulumi.yaml: the stack file (here holding `config`) goes there, and the program lays it over the checkout's tracked Pulumi.<stackName>.yaml. */
    stackConfigDir?: string;
}): Promise<TestStack> {
    const stackName = opts.stackName ?? "test";
    const project = opts.project ?? "vllm-workstation";
    const dir = path.join(projectRoot, ".work", `${opts.name}-${crypto.randomBytes(4).toString("hex")}`);
    fs.mkdirSync(dir, { recursive: true });
    // HostState's provider as the project's Pulumi.yaml finds it: this checkout's build, not the plugin cache.
    const plugins = `plugins:\n  providers:\n    - name: hoststate\n      path: ${JSON.stringify(path.join(projectRoot, "tools", "provider", "bin"))}\n`;
    const stackDir = opts.stackConfigDir === undefined ? "" : `stackConfigDir: ${JSON.stringify(opts.stackConfigDir)}\n`;
    fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: ${project}\nruntime: nodejs\n${stackDir}${plugins}`);
    const cfg = Object.entries(opts.config ?? {})
        .map(([k, v]) => `  ${project}:${k}: ${JSON.stringify(v)}`)
        .join("\n");
    fs.mkdirSync(path.join(dir, opts.stackConfigDir ?? ""), { recursive: true });
    fs.writeFileSync(path.join(dir, opts.stackConfigDir ?? "", `Pulumi.${stackName}.yaml`), `config:\n${cfg}\n`);
    const stack = await openStack({
        stack: stackName,
        program: opts.program,
        workDir: dir,
        stateDir: path.join(dir, "state"),
        env: { PULUMI_CONFIG_PASSPHRASE: "test-only-passphrase", ...opts.env },
    });
    const output: string[] = [];
    return {
        dir,
        stack,
        output,
        onOutput: (s) => output.push(s),
        remove: () => fs.rmSync(dir, { recursive: true, force: true }),
    };
}

/** How the stack reaches a test box: over its sshd, as the admin's SSH target would. */
export function sshTarget(box: Box) {
    const hostKey = fs.readFileSync(path.join(box.root, "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").split(" ").slice(0, 2).join(" ");
    return { kind: "ssh" as const, host: box.host, port: box.port, user: box.user, privateKeyPath: box.privateKeyPath, hostKey };
}

/**
 * `pulumi stack export` as a user or a backup job runs it: without --show-secrets. (The Automation API's
 * exportStack always passes --show-secrets, so its JSON holds every secret decrypted, by design.)
 */
export function plainExport(ts: TestStack): Promise<string> {
    const env = { ...process.env, ...(ts.stack.workspace as LocalWorkspace).envVars };
    return new Promise((resolve, reject) =>
        execFile("pulumi", ["stack", "export", "--stack", ts.stack.name, "--non-interactive"], { cwd: ts.dir, env, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
            err ? reject(new Error(`pulumi stack export: ${err.message}\n${stderr}`)) : resolve(stdout),
        ),
    );
}

/** Every regular file under `dir` (a test stack's directory, its state), decompressed where gzipped, as text. */
export function readTree(dir: string): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...readTree(p));
        else if (e.isFile()) {
            const raw = fs.readFileSync(p);
            out.push([p, (p.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("latin1")]);
        }
    }
    return out;
}
