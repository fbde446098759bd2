// Throwaway workstation boxes for integration tests: a Debian rootfs booted with systemd as PID 1
// (tests/infra/box.sh), reachable as dev@127.0.0.1:<port> with a per-box ed25519 key, looking like WSL2
// Ubuntu where the product looks. Needs root on the host.
//
//     const box = await startBox({ name: "converge" });
//     try { await box.sh("systemctl is-system-running"); } finally { await box.stop(); }
//
// Every box started here is stopped when the process (or ava worker) exits, and boxes whose owning
// process died without stopping them (SIGKILL, a crashed runner) are reaped by the next startBox.
import { execFile, execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { isMainThread } from "worker_threads";

export interface ExecResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface ExecOptions {
    /** Written to the command's stdin. */
    readonly input?: string;
    /** Default 10 minutes. */
    readonly timeoutMs?: number;
}

export interface Box {
    /** The box's state directory; the box's / is `root` inside it. */
    readonly dir: string;
    readonly root: string;
    readonly name: string;
    readonly host: "127.0.0.1";
    readonly port: number;
    readonly user: "dev";
    /** Mode 0600, owned by root, outside the box's rootfs. */
    readonly privateKeyPath: string;
    readonly privateKey: string;
    /** Host pid of the box's systemd; changes on reboot. */
    pid(): number;
    /** `bash -lc cmd` inside the box as root (nsenter), never throws on a non-zero exit. */
    exec(cmd: string, opts?: ExecOptions): Promise<ExecResult>;
    /** Like exec but throws on a non-zero exit; resolves to stdout. */
    sh(cmd: string, opts?: ExecOptions): Promise<string>;
    /** `cmd` as dev over ssh (so through sshd, PAM and dev's login shell), never throws on a non-zero exit. */
    ssh(cmd: string, opts?: ExecOptions): Promise<ExecResult>;
    /** Clean poweroff and boot again on the same files and port. */
    reboot(): Promise<void>;
    /** Poweroff, kill leftovers, unmount and remove `dir`. Idempotent. */
    stop(): Promise<void>;
}

export interface StartOptions {
    /** Default: a free loopback port. */
    readonly port?: number;
    /** Prefix of the box's directory and its hostname. Default "box". */
    readonly name?: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

function findRepoRoot(): string {
    // Compiled to dist/tests/helpers, run from tests/helpers by ts tooling: walk up to the script.
    for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
        if (fs.existsSync(path.join(d, "tests", "infra", "box.sh"))) return d;
    }
    throw new Error(`tests/infra/box.sh not found above ${__dirname}`);
}

export const repoRoot = findRepoRoot();
export const boxScript = path.join(repoRoot, "tests", "infra", "box.sh");

export function cacheDir(): string {
    return process.env.VLLM_WS_CACHE ?? path.join(os.homedir(), ".cache", "vllm-workstation");
}

export function boxesDir(): string {
    return path.join(cacheDir(), "boxes");
}

export class CommandError extends Error {
    constructor(readonly command: string, readonly result: ExecResult) {
        super(
            `command failed with exit code ${result.code}: ${command}\n` +
                `--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`,
        );
    }
}

function tail(s: string, max = 4000): string {
    return s.length > max ? `...${s.slice(-max)}` : s;
}

function run(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
        const child = execFile(
            file,
            args,
            { maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, encoding: "utf8" },
            (err, stdout, stderr) => {
                let code = 0;
                if (err) {
                    const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
                    if (typeof e.code === "number") code = e.code;
                    else {
                        code = e.killed ? 124 : 127;
                        stderr += `\n${e.message}`;
                    }
                }
                resolve({ code, stdout, stderr });
            },
        );
        // Without input, stdin must still close, or ssh and bash -l wait on it forever. A command that
        // exits before it reads its stdin makes that write fail (EPIPE): its result says what happened.
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(opts.input ?? "");
    });
}

async function script(args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    return run("bash", [boxScript, ...args], opts);
}

async function scriptOrThrow(args: readonly string[], opts?: ExecOptions): Promise<string> {
    const r = await script(args, opts);
    if (r.code !== 0) throw new CommandError(`box.sh ${args.join(" ")}`, r);
    return r.stdout;
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const addr = srv.address();
            srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
        });
    });
}

// --- cleanup -----------------------------------------------------------------------------------------

const live = new Set<string>();

function stopSync(dir: string): void {
    try {
        execFileSync("bash", [boxScript, "stop", dir], { stdio: ["ignore", "ignore", "inherit"], timeout: 120_000 });
    } catch {
        // Best effort at exit; the next startBox reaps what is left (owner pid gone).
    }
    live.delete(dir);
}

let hooked = false;
function hookExit(): void {
    if (hooked) return;
    hooked = true;
    // 'exit' also fires when an ava worker thread ends; only synchronous work runs there.
    process.on("exit", () => {
        for (const dir of [...live]) stopSync(dir);
    });
    if (isMainThread) {
        for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
            const onSignal = (): void => {
                for (const dir of [...live]) stopSync(dir);
                process.removeListener(sig, onSignal);
                process.kill(process.pid, sig);
            };
            process.on(sig, onSignal);
        }
    }
}

function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Stops boxes whose owning test process is gone. */
export async function reapOrphans(): Promise<string[]> {
    const reaped: string[] = [];
    let entries: string[] = [];
    try {
        entries = fs.readdirSync(boxesDir());
    } catch {
        return reaped;
    }
    for (const e of entries) {
        const dir = path.join(boxesDir(), e);
        if (live.has(dir)) continue;
        let owner: string;
        try {
            owner = fs.readFileSync(path.join(dir, "owner"), "utf8");
        } catch {
            continue; // Not started by this helper (a box started by hand with box.sh): not ours to reap.
        }
        const [pid, start] = owner.trim().split(" ");
        if (pidAlive(Number(pid)) && processStartOr(Number(pid)) === start) continue;
        await script(["stop", dir]);
        reaped.push(dir);
    }
    return reaped;
}

function processStartOr(pid: number): string | undefined {
    try {
        return processStart(pid);
    } catch {
        return undefined;
    }
}

function processStart(pid: number): string {
    // Field 22 of /proc/PID/stat; the comm field (2) may hold spaces, so split after its ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

// --- boxes -------------------------------------------------------------------------------------------

/** Builds the cached rootfs if needed (minutes, once) and returns the tarball's path. */
export async function ensureRootfs(): Promise<string> {
    return (await scriptOrThrow(["rootfs"])).trim();
}

export async function startBox(opts: StartOptions = {}): Promise<Box> {
    hookExit();
    await reapOrphans();
    const name = (opts.name ?? "box").replace(/[^a-zA-Z0-9-]/g, "-").slice(0, 40);
    const dir = path.join(boxesDir(), `${name}-${crypto.randomBytes(4).toString("hex")}`);
    const port = opts.port ?? (await freePort());
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "owner"), `${process.pid} ${processStart(process.pid)}\n`);
    live.add(dir);
    try {
        await scriptOrThrow(["start", dir, String(port)]);
    } catch (e) {
        await script(["stop", dir]);
        live.delete(dir);
        throw e;
    }
    const privateKeyPath = path.join(dir, "id_ed25519");
    const privateKey = fs.readFileSync(privateKeyPath, "utf8");
    let stopped = false;

    const exec = (cmd: string, o?: ExecOptions): Promise<ExecResult> =>
        script(["exec", dir, "--", "bash", "-lc", cmd], o);
    const box: Box = {
        dir,
        root: path.join(dir, "root"),
        name: path.basename(dir),
        host: "127.0.0.1",
        port,
        user: "dev",
        privateKeyPath,
        privateKey,
        pid: () => Number(fs.readFileSync(path.join(dir, "pid"), "utf8")),
        exec,
        async sh(cmd, o) {
            const r = await exec(cmd, o);
            if (r.code !== 0) throw new CommandError(cmd, r);
            return r.stdout;
        },
        ssh: (cmd, o) => script(["ssh", dir, "--", cmd], o),
        async reboot() {
            if (stopped) throw new Error(`box ${dir} is stopped`);
            await scriptOrThrow(["reboot", dir]);
        },
        async stop() {
            if (stopped) return;
            await scriptOrThrow(["stop", dir]);
            stopped = true;
            live.delete(dir);
        },
    };
    return box;
}

/** Mounts at or under `dir` and processes whose root or cwd lies there; both empty once a box is gone. */
export function leftovers(dir: string): { mounts: string[]; pids: number[] } {
    const real = path.resolve(dir);
    const under = (p: string): boolean => p === real || p.startsWith(real + "/");
    const mounts = fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " "))
        .filter((m) => m && under(m));
    const pids: number[] = [];
    for (const e of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(e)) continue;
        for (const link of ["root", "cwd"]) {
            try {
                if (under(fs.readlinkSync(`/proc/${e}/${link}`).replace(/ \(deleted\)$/, ""))) {
                    pids.push(Number(e));
                    break;
                }
            } catch {
                // Gone meanwhile, or a kernel thread.
            }
        }
    }
    return { mounts, pids };
}
