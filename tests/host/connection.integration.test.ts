// Reaching a workstation over SSH when its host key is not the one expected, on the throwaway box:
// ssh's refusal is a host key mismatch with what to check, never "is the machine on".
import test from "ava";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runOrThrow } from "../../components/host/connection";
import { Box, startBox } from "../helpers/box";
import { sshTarget } from "../helpers/stack";

let box: Box;

test.before(async () => {
    box = await startBox({ name: "hostkey" });
});

test.after.always(async () => {
    await box?.stop();
});

/** The fingerprint of the box's ed25519 host key, as `ssh-keygen -lf` prints it on the workstation. */
async function fingerprint(): Promise<string> {
    return (await box.sh("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")).split(" ")[1];
}

/** As a reinstall does: sshd gets new host keys. */
async function newHostKeys(): Promise<void> {
    await box.sh("rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh");
}

test.serial("with the workstation's own host key, a script runs over SSH", async (t) => {
    t.is(await runOrThrow(sshTarget(box), "say hello", "echo hello"), "hello\n");
});

test.serial("a workstation whose host key changed (reinstalled) is reported as a host key mismatch naming target.hostKey, and nothing runs", async (t) => {
    const pinned = sshTarget(box);
    await newHostKeys();
    const offered = await fingerprint();
    const err = await t.throwsAsync(runOrThrow(pinned, "check the vLLM service", "touch /tmp/vllm-ws-was-run"));
    const m = err!.message;
    t.true(m.startsWith(`host key mismatch: the workstation dev@127.0.0.1:${box.port} answered with an SSH host key that is not target.hostKey (ssh-ed25519)`), m);
    t.true(m.includes("while trying to check the vLLM service"), m);
    t.true(m.includes(`it offered ${offered}`), m);
    t.true(m.includes("reinstalled"), m);
    t.true(m.includes("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"), m);
    t.true(m.includes("put that key in target.hostKey"), m);
    t.true(m.includes("Nothing on the workstation was changed"), m);
    t.false(m.includes("sshd listens"), "not the message for a machine that is off");
    t.is((await box.exec("test -e /tmp/vllm-ws-was-run")).code, 1, "the script never ran");
    // The new key, put in target.hostKey, works.
    t.is(await runOrThrow(sshTarget(box), "say hello", "echo hello"), "hello\n");
});

test.serial("trusting on first use, a key that changed since is a mismatch that says how to forget the recorded one", async (t) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-home-"));
    const saved = process.env.HOME;
    process.env.HOME = home;
    t.teardown(() => {
        process.env.HOME = saved;
        fs.rmSync(home, { recursive: true, force: true });
    });
    const tofu = { ...sshTarget(box), hostKey: null };
    t.false(fs.existsSync(path.join(home, ".ssh")), "a home without ~/.ssh");
    t.is(await runOrThrow(tofu, "say hello", "echo hello"), "hello\n", "the first connection records the key");
    // ssh may hash the names it records (HashKnownHosts); ssh-keygen -F finds either form.
    const found = execFileSync("ssh-keygen", ["-F", `[127.0.0.1]:${box.port}`, "-f", path.join(home, ".ssh", "known_hosts")], { encoding: "utf8" });
    t.regex(found, / ssh-ed25519 /);
    await newHostKeys();
    const err = await t.throwsAsync(runOrThrow(tofu, "check the vLLM service", "echo hello"));
    const m = err!.message;
    t.true(m.startsWith(`host key mismatch: the workstation dev@127.0.0.1:${box.port} answered with an SSH host key that is not the key recorded for [127.0.0.1]:${box.port} in ${path.join(home, ".ssh", "known_hosts")}`), m);
    t.true(m.includes(`it offered ${await fingerprint()}`), m);
    t.true(m.includes(`ssh-keygen -R '[127.0.0.1]:${box.port}'`), m);
    t.false(m.includes("sshd listens"));
});
