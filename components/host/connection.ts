// Runs shell scripts on the workstation, locally or over SSH. The program uses it, and so does each of
// HostState's provider steps (host/provider.ts, a Node process of its own), so it must stay free of
// Pulumi program state.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { asset, ownershipLibrary, q } from "./shell";

/** How the provider reaches the workstation. Plain data: it is stored in the state of every resource. */
export type Connection =
    | { readonly kind: "local" }
    | {
          readonly kind: "ssh";
          readonly host: string;
          readonly port: number;
          readonly user: string;
          /** Private key file on the machine that runs Pulumi; null leaves the choice to ssh (agent, ~/.ssh). */
          readonly privateKeyPath: string | null;
          /** The host's public key ("ssh-ed25519 AAAA..."); null trusts the key on first use. */
          readonly hostKey: string | null;
      };

export interface RunResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface RunOptions {
    /** Exported before the script runs; sent on stdin, so values never show in a process list. */
    readonly env?: Readonly<Record<string, string>>;
    /** Receives stderr as it arrives: scripts report progress there. */
    readonly onProgress?: (line: string) => void;
    /** Aborting it kills the shell (or ssh): for a caller that stops waiting. */
    readonly signal?: AbortSignal;
}

/** Where a connection points, in the words an error message needs. */
export function describe(conn: Connection): string {
    return conn.kind === "local" ? "this machine" : `${conn.user}@${conn.host}:${conn.port}`;
}

function knownHostsFor(conn: Extract<Connection, { kind: "ssh" }>, dir: string): string[] {
    if (conn.hostKey === null) {
        const file = path.join(os.homedir(), ".ssh", "known_hosts");
        // ssh does not make ~/.ssh: without it, accept-new records nothing and trusts every key, every time.
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        return ["-o", "StrictHostKeyChecking=accept-new", "-o", `UserKnownHostsFile=${file}`];
    }
    const file = path.join(dir, "known_hosts");
    const name = conn.port === 22 ? conn.host : `[${conn.host}]:${conn.port}`;
    fs.writeFileSync(file, `${name} ${conn.hostKey.trim()}\n`, { mode: 0o600 });
    return ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${file}`];
}

/** The argv that runs a root shell reading its script from stdin. */
export function shellArgv(conn: Connection, scratch: string): string[] {
    // Everything the stack manages is system-wide (/opt, /etc, systemd), so scripts run as root.
    if (conn.kind === "local") {
        return process.getuid?.() === 0 ? ["bash", "-s"] : ["sudo", "-n", "bash", "-s"];
    }
    const argv = [
        "ssh",
        "-p", String(conn.port),
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        "-o", "ServerAliveInterval=15",
        "-o", "LogLevel=ERROR",
        ...knownHostsFor(conn, scratch),
    ];
    if (conn.privateKeyPath !== null) argv.push("-i", conn.privateKeyPath, "-o", "IdentitiesOnly=yes");
    argv.push(`${conn.user}@${conn.host}`, conn.user === "root" ? "bash -s" : "sudo -n bash -s");
    return argv;
}

/**
 * The text sent on stdin: strict mode, the ownership functions (components/pieces/assets/own.sh) every script
 * may call, the exports, then the script. Its first lines (components/pieces/assets/from_memory.sh) hand
 * the rest to one `cat` and run it from memory: `bash -s` reads a pipe or socket one byte at a time (so
 * as not to take what a command might read), and the 30 KB of the service's step cost it 20 to 40 ms
 * that way; a command in the script that reads stdin finds it at its end.
 */
export function renderStdin(script: string, env: Readonly<Record<string, string>> = {}): string {
    const exports = Object.keys(env)
        .sort()
        .map((k) => `export ${k}=${q(env[k])}`)
        .join("\n");
    return `${asset("from_memory.sh")}set -euo pipefail\n${ownershipLibrary()}\n${exports}\n${script}\n`;
}

export async function run(conn: Connection, script: string, opts: RunOptions = {}): Promise<RunResult> {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-"));
    try {
        const [cmd, ...args] = shellArgv(conn, scratch);
        return await new Promise<RunResult>((resolve, reject) => {
            const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], signal: opts.signal });
            let stdout = "";
            let stderr = "";
            let partial = "";
            child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
            child.stderr.on("data", (d: Buffer) => {
                const text = d.toString();
                stderr += text;
                if (!opts.onProgress) return;
                const lines = (partial + text).split(/\r|\n/);
                partial = lines.pop() ?? "";
                for (const line of lines) if (line.trim()) opts.onProgress(line);
            });
            child.on("error", (err) => reject(err.name === "AbortError" ? err : new Error(`cannot start ${cmd} to reach ${describe(conn)}: ${err.message}`)));
            child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
            child.stdin.on("error", () => undefined); // a refused connection closes stdin early; "close" reports it
            child.stdin.end(renderStdin(script, opts.env));
        });
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

/** The workstation could not be reached: the script never ran, so nothing on the box changed. */
export class UnreachableError extends Error {
    override name = "UnreachableError";
}

/** Runs a script and turns a failure into an error that says where, what and what to do next. */
export async function runOrThrow(conn: Connection, what: string, script: string, opts: RunOptions = {}): Promise<string> {
    const r = await run(conn, script, opts);
    if (r.code === 0) return r.stdout;
    if (conn.kind === "ssh" && r.code === 255 && hostKeyRefused(r.stderr)) throw new Error(hostKeyMismatch(conn, what, r.stderr));
    if (conn.kind === "ssh" && r.code === 255) {
        throw new UnreachableError(
            `cannot reach the workstation ${describe(conn)} over SSH while trying to ${what}: ${r.stderr.trim()}\n` +
                `Check that the machine is on and sshd listens on port ${conn.port}, then run pulumi up again; ` +
                `nothing on the workstation was changed by this step.`,
        );
    }
    const tail = r.stderr.trim().split("\n").slice(-15).join("\n");
    throw new Error(`${what} failed on ${describe(conn)} (exit ${r.code}):\n${tail}`);
}

/** ssh's words when the host's key is not the one it was told to expect (ssh 8 to 10, LogLevel=ERROR). */
export function hostKeyRefused(stderr: string): boolean {
    return /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key is known for .* you have requested strict checking/i.test(stderr);
}

/**
 * What to say when ssh refused the workstation's host key: the machine answered, so "is it on" is the
 * wrong question. Either it has new keys (reinstalled, sshd's keys regenerated, another machine at that
 * address) or something in between is answering in its place; only the machine itself can tell.
 */
export function hostKeyMismatch(conn: Extract<Connection, { kind: "ssh" }>, what: string, stderr: string): string {
    const offered = stderr.match(/SHA256:[A-Za-z0-9+/]{43}/)?.[0];
    const name = conn.port === 22 ? conn.host : `[${conn.host}]:${conn.port}`;
    const expected =
        conn.hostKey === null
            ? `the key recorded for ${name} in ${path.join(os.homedir(), ".ssh", "known_hosts")} at the first connection (target.hostKey is not set)`
            : `target.hostKey (${conn.hostKey.trim().split(/\s+/)[0]})`;
    const fix =
        conn.hostKey === null
            ? `remove the old entry with \`ssh-keygen -R '${name}'\` and run pulumi up again (or pin the key in target.hostKey)`
            : `put that key in target.hostKey (the contents of /etc/ssh/ssh_host_ed25519_key.pub on the workstation, without the comment) and run pulumi up again`;
    return (
        `host key mismatch: the workstation ${describe(conn)} answered with an SSH host key that is not ${expected}, ` +
        `so ssh refused to connect while trying to ${what}${offered ? `; it offered ${offered}` : ""}.\n` +
        `Was the workstation reinstalled, or its sshd given new keys, or does the address now lead to another machine? ` +
        `Check on the workstation itself: \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` prints its key's fingerprint. ` +
        `If it matches what was offered, ${fix}. If it does not, something else is answering at ${conn.host}:${conn.port}: do not go on. ` +
        `Nothing on the workstation was changed by this step.`
    );
}
