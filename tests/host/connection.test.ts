import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Connection, describe, hostKeyMismatch, hostKeyRefused, renderStdin, run, runOrThrow, shellArgv } from "../../components/host/connection";
import { asset, ownershipLibrary } from "../../components/host/shell";
import { tempDir } from "../helpers/tempDir";

const local: Connection = { kind: "local" };

function ssh(over: Partial<Extract<Connection, { kind: "ssh" }>> = {}): Extract<Connection, { kind: "ssh" }> {
    return { kind: "ssh", host: "box.example", port: 22, user: "root", privateKeyPath: null, hostKey: null, ...over };
}

/** The value that follows `-o` for an option name, e.g. optionValue(argv, "StrictHostKeyChecking"). */
function optionValue(argv: string[], name: string): string | undefined {
    for (let i = 0; i < argv.length - 1; i++) {
        if (argv[i] === "-o" && argv[i + 1].startsWith(`${name}=`)) return argv[i + 1].slice(name.length + 1);
    }
    return undefined;
}

test("describe() names this machine for local and user@host:port for ssh", (t) => {
    t.is(describe(local), "this machine");
    t.is(describe(ssh({ user: "admin", host: "10.0.0.5", port: 2222 })), "admin@10.0.0.5:2222");
});

test("renderStdin() reads the rest at once, then starts with strict mode and the ownership functions, exports the env sorted by name, and ends with the script", (t) => {
    const text = renderStdin("echo hi", { ZED: "z", ALPHA: "a" });
    t.is(text, `${asset("from_memory.sh")}set -euo pipefail\n${ownershipLibrary()}\nexport ALPHA='a'\nexport ZED='z'\necho hi\n`);
    t.true(asset("from_memory.sh").endsWith('\neval "$(cat)"\n'));
});

test("renderStdin()'s script runs whole, its exit status is bash's, and a command in it that reads stdin gets nothing of the script", (t) => {
    const r = spawnSync("bash", ["-s"], { input: renderStdin("read -r line || echo \"stdin at its end\"\necho after\nexit 3\necho not reached"), encoding: "utf8" });
    t.is(r.status, 3, r.stderr);
    t.is(r.stdout, "stdin at its end\nafter\n");
});

test("renderStdin() exports values with spaces, quotes, $ and newlines so bash sees them unchanged", (t) => {
    const env = {
        SPACES: "a value with   spaces",
        SINGLE: "it's a 'quoted' thing",
        DOUBLE: 'say "hi"',
        DOLLAR: "$HOME ${PATH} $(echo pwned) `echo pwned`",
        NEWLINE: "line one\nline two",
        BACKSLASH: "C:\\Users\\x\\",
    };
    const script = Object.keys(env)
        .map((k) => `printf '%s\\0' "$${k}"`)
        .join("\n");
    const r = spawnSync("bash", ["-s"], { input: renderStdin(script, env), encoding: "utf8" });
    t.is(r.status, 0, r.stderr);
    t.deepEqual(r.stdout.split("\0").slice(0, -1), Object.values(env));
});

test("renderStdin() with no env still runs the script under set -euo pipefail", (t) => {
    const r = spawnSync("bash", ["-s"], { input: renderStdin("false\necho not reached"), encoding: "utf8" });
    t.is(r.status, 1);
    t.is(r.stdout, "");
});

test("shellArgv() runs a plain root shell locally when we are root", (t) => {
    t.is(process.getuid?.(), 0, "these tests run as root");
    t.deepEqual(shellArgv(local, os.tmpdir()), ["bash", "-s"]);
});

test("shellArgv() with a host key checks it strictly against a known_hosts file in the scratch dir, in [host]:port form", (t) => {
    const scratch = tempDir(t, "host");
    const argv = shellArgv(ssh({ host: "10.1.2.3", port: 2222, hostKey: "  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE  " }), scratch);
    t.is(argv[0], "ssh");
    t.is(optionValue(argv, "StrictHostKeyChecking"), "yes");
    const file = optionValue(argv, "UserKnownHostsFile");
    t.is(file, path.join(scratch, "known_hosts"));
    t.is(fs.readFileSync(file!, "utf8"), "[10.1.2.3]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAKE\n");
    t.is(fs.statSync(file!).mode & 0o777, 0o600);
    t.deepEqual(argv.slice(argv.indexOf("-p"), argv.indexOf("-p") + 2), ["-p", "2222"]);
    t.is(optionValue(argv, "BatchMode"), "yes");
});

test("shellArgv() writes the bare host name into known_hosts on port 22", (t) => {
    const scratch = tempDir(t, "host");
    const argv = shellArgv(ssh({ host: "box.example", port: 22, hostKey: "ssh-ed25519 AAAAKEY" }), scratch);
    t.is(fs.readFileSync(optionValue(argv, "UserKnownHostsFile")!, "utf8"), "box.example ssh-ed25519 AAAAKEY\n");
});

test("shellArgv() without a host key trusts on first use and records it in ~/.ssh/known_hosts", (t) => {
    const scratch = tempDir(t, "host");
    const argv = shellArgv(ssh({ hostKey: null }), scratch);
    t.is(optionValue(argv, "StrictHostKeyChecking"), "accept-new");
    t.is(optionValue(argv, "UserKnownHostsFile"), path.join(os.homedir(), ".ssh", "known_hosts"));
    t.deepEqual(fs.readdirSync(scratch), [], "nothing is written to the scratch dir");
});

test("shellArgv() with a private key passes -i and IdentitiesOnly=yes; without one it passes neither", (t) => {
    const withKey = shellArgv(ssh({ privateKeyPath: "/home/me/.ssh/id_ed25519" }), os.tmpdir());
    t.is(withKey[withKey.indexOf("-i") + 1], "/home/me/.ssh/id_ed25519");
    t.is(optionValue(withKey, "IdentitiesOnly"), "yes");
    const without = shellArgv(ssh({ privateKeyPath: null }), os.tmpdir());
    t.false(without.includes("-i"));
    t.is(optionValue(without, "IdentitiesOnly"), undefined);
});

test("shellArgv() runs `bash -s` as root and `sudo -n bash -s` for any other user, after user@host", (t) => {
    const asRoot = shellArgv(ssh({ user: "root", host: "h" }), os.tmpdir());
    t.deepEqual(asRoot.slice(-2), ["root@h", "bash -s"]);
    const asAdmin = shellArgv(ssh({ user: "admin", host: "h" }), os.tmpdir());
    t.deepEqual(asAdmin.slice(-2), ["admin@h", "sudo -n bash -s"]);
});

test("run() on this machine returns stdout and the exit code, and streams stderr lines to onProgress", async (t) => {
    const lines: string[] = [];
    const r = await run(local, `echo out1\necho "step one" >&2\nprintf 'step two\\n\\nstep three' >&2\necho out2\nexit 3`, {
        onProgress: (l) => lines.push(l),
    });
    t.is(r.code, 3);
    t.is(r.stdout, "out1\nout2\n");
    t.is(r.stderr, "step one\nstep two\n\nstep three");
    // Complete lines only; blank lines are dropped; an unterminated last line is not reported.
    t.deepEqual(lines, ["step one", "step two"]);
});

test("run() hands the env to the script without putting it on the command line", async (t) => {
    const secret = "s3cr3t with 'quotes' and $dollar";
    const r = await run(local, `printf '%s' "$TOKEN"\ntr '\\0' ' ' </proc/$$/cmdline`, { env: { TOKEN: secret } });
    t.is(r.code, 0, r.stderr);
    t.true(r.stdout.startsWith(secret));
    t.false(r.stdout.slice(secret.length).includes("s3cr3t"), "the value is not in the shell's argv");
});

test("run() stops at the first failing command (set -euo pipefail)", async (t) => {
    const r = await run(local, "echo before\nfalse | true\necho after");
    t.is(r.code, 1);
    t.is(r.stdout, "before\n");
});

test.serial("run() removes its scratch directory afterwards", async (t) => {
    const own = tempDir(t, "host");
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = own;
    try {
        t.is(os.tmpdir(), own);
        const r = await run(local, "echo ok");
        t.is(r.stdout, "ok\n");
        t.deepEqual(fs.readdirSync(own), []);
    } finally {
        if (saved === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = saved;
        fs.rmSync(own, { recursive: true, force: true });
    }
});

test("runOrThrow() returns stdout when the script succeeds", async (t) => {
    t.is(await runOrThrow(local, "say hi", "echo hi"), "hi\n");
});

test("runOrThrow() names the step, the place and the exit code, with the tail of stderr, when a script fails", async (t) => {
    const script = `for i in $(seq 1 20); do echo "err $i" >&2; done\nexit 7`;
    const err = await t.throwsAsync(runOrThrow(local, "install the widget", script));
    t.true(err!.message.startsWith("install the widget failed on this machine (exit 7):\n"));
    const tail = err!.message.split("\n").slice(1);
    t.is(tail.length, 15);
    t.is(tail[0], "err 6");
    t.is(tail[14], "err 20");
});

test("run() over ssh to a closed port fails fast with ssh's exit code 255", async (t) => {
    const started = Date.now();
    const r = await run(ssh({ host: "127.0.0.1", port: 1 }), "echo unreachable");
    t.is(r.code, 255);
    t.is(r.stdout, "");
    t.regex(r.stderr, /port 1|refused/i);
    t.true(Date.now() - started < 15_000);
});

test("runOrThrow() turns an unreachable ssh host into a message naming user@host:port and what to do", async (t) => {
    const conn = ssh({ host: "127.0.0.1", port: 1, user: "admin" });
    const err = await t.throwsAsync(runOrThrow(conn, "check the vLLM service", "echo unreachable"));
    t.true(err!.message.startsWith("cannot reach the workstation admin@127.0.0.1:1 over SSH while trying to check the vLLM service: "));
    t.true(err!.message.includes("sshd listens on port 1"));
    t.true(err!.message.includes("then run pulumi up again"));
    t.true(err!.message.includes("nothing on the workstation was changed"));
});

test("run() reports a command that cannot start as an error naming the destination", async (t) => {
    const savedPath = process.env.PATH;
    // With a PATH that holds nothing, ssh cannot be found. spawn() copies the environment synchronously,
    // so PATH is restored before any other test gets to run.
    process.env.PATH = "/nonexistent";
    let p: Promise<unknown>;
    try {
        p = run(ssh({ host: "10.9.9.9", port: 2200, user: "u" }), "true");
    } finally {
        process.env.PATH = savedPath;
    }
    const err = await t.throwsAsync(p);
    t.regex(err!.message, /^cannot start ssh to reach u@10\.9\.9\.9:2200: /);
});

// What OpenSSH prints (LogLevel=ERROR) when the host's key is not the recorded or pinned one.
const changedKeyStderr = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:Qx3mW0pN2m1nKcK7gq1Zl0rX6cVdQy8hJv1xQeT0a9E.
Please contact your system administrator.
Add correct host key in /tmp/vllm-ws-x/known_hosts to get rid of this message.
Offending ED25519 key in /tmp/vllm-ws-x/known_hosts:1
Host key for [10.0.0.5]:2222 has changed and you have requested strict checking.
Host key verification failed.
`;
const noKeyOfTypeStderr = "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.\nHost key verification failed.\n";

test("hostKeyRefused() tells ssh's host key refusals from a machine that cannot be reached", (t) => {
    t.true(hostKeyRefused(changedKeyStderr));
    t.true(hostKeyRefused(noKeyOfTypeStderr));
    t.false(hostKeyRefused("ssh: connect to host 10.0.0.5 port 2222: Connection refused\n"));
    t.false(hostKeyRefused("ssh: connect to host 10.0.0.5 port 2222: Connection timed out\n"));
    t.false(hostKeyRefused("dev@10.0.0.5: Permission denied (publickey).\n"));
});

test("a pinned host key that does not match is reported as a mismatch naming target.hostKey, the offered fingerprint and what to check", (t) => {
    const m = hostKeyMismatch(ssh({ host: "10.0.0.5", port: 2222, user: "admin", hostKey: "ssh-ed25519 AAAAC3Nza" }), "check the vLLM service", changedKeyStderr);
    t.true(m.startsWith("host key mismatch: the workstation admin@10.0.0.5:2222 answered with an SSH host key that is not target.hostKey (ssh-ed25519), so ssh refused to connect while trying to check the vLLM service; it offered SHA256:Qx3mW0pN2m1nKcK7gq1Zl0rX6cVdQy8hJv1xQeT0a9E."), m);
    t.true(m.includes("Was the workstation reinstalled"));
    t.true(m.includes("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"));
    t.true(m.includes("put that key in target.hostKey"));
    t.true(m.includes("something else is answering at 10.0.0.5:2222: do not go on"));
    t.false(m.includes("sshd listens"));
});

test("a changed key recorded on first use is reported as a mismatch with the known_hosts file and the command that forgets it", (t) => {
    const m = hostKeyMismatch(ssh({ host: "ws.lan", port: 22, hostKey: null }), "check the vLLM service", noKeyOfTypeStderr);
    t.true(m.includes(`not the key recorded for ws.lan in ${path.join(os.homedir(), ".ssh", "known_hosts")} at the first connection (target.hostKey is not set)`), m);
    t.true(m.includes("ssh-keygen -R 'ws.lan'"));
    t.false(m.includes("it offered"), "no fingerprint when ssh printed none");
});

test("runOrThrow() turns ssh's host key refusal into the mismatch message, not the unreachable one", async (t) => {
    // A stand-in for ssh on PATH that refuses as OpenSSH does (exit 255): no sshd is needed for the wording.
    const bin = tempDir(t, "host");
    fs.writeFileSync(path.join(bin, "ssh"), `#!/bin/sh\ncat >/dev/null\nprintf '%s' '${changedKeyStderr.replace(/'/g, "")}' >&2\nexit 255\n`, { mode: 0o755 });
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved}`;
    let p: Promise<string>;
    try {
        p = runOrThrow(ssh({ host: "10.0.0.5", port: 2222, hostKey: "ssh-ed25519 AAAA" }), "check the vLLM service", "true");
    } finally {
        process.env.PATH = saved;
    }
    const err = await t.throwsAsync(p);
    t.true(err!.message.startsWith("host key mismatch: the workstation root@10.0.0.5:2222 "), err!.message);
});
