// Runs a rendered script on this machine as HostState's steps run it on the box (host/connection.ts renderStdin:
// strict mode and the ownership functions first), with the ownership record in a temp dir of this test
// process instead of /var/lib, so unit tests never touch the test machine's own record.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderStdin } from "../../components/host/connection";

export interface Ran {
    code: number | null;
    stdout: string;
    stderr: string;
}

let record: string | null = null;

/** This test process's ownership record (VLLM_WS_RECORD), removed when the process exits. */
export function testRecord(): string {
    if (record === null) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-record-"));
        process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
        record = path.join(dir, "record");
    }
    return record;
}

export function runScript(script: string, env: NodeJS.ProcessEnv = {}): Ran {
    const r = spawnSync("bash", ["-s"], { input: renderStdin(script), encoding: "utf8", env: { ...process.env, VLLM_WS_RECORD: testRecord(), ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like runScript(), without blocking the event loop (a test HTTP server in this process must answer). */
export function runScriptAsync(script: string, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
    return new Promise((resolve) => {
        const child = spawn("bash", ["-s"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, VLLM_WS_RECORD: testRecord(), ...env } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("close", (code) => resolve({ code, stdout, stderr }));
        child.stdin.end(renderStdin(script));
    });
}

/** "ok" when bash parses the script (`bash -n`), else what bash says. */
export function syntaxOk(script: string): string {
    const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
    return r.status === 0 ? "ok" : r.stderr;
}

/** The bodies of the quoted heredocs ending with `marker` (the Python a script runs). */
export function heredocs(script: string, marker = "VLLM_WS_PY"): string[] {
    const out: string[] = [];
    let cur: string[] | null = null;
    for (const line of script.split("\n")) {
        if (cur === null) {
            if (line.includes(`<<'${marker}'`)) cur = [];
        } else if (line === marker) {
            out.push(cur.join("\n"));
            cur = null;
        } else cur.push(line);
    }
    return out;
}

/** "ok" when python3 parses the source, else what it says. */
export function pythonParses(source: string): string {
    const r = spawnSync("python3", ["-c", "import ast,sys; ast.parse(sys.stdin.read())"], { input: source, encoding: "utf8" });
    return r.status === 0 ? "ok" : r.stderr;
}
