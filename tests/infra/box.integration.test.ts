// Smoke test of the throwaway workstation box the integration tests converge against.
import test from "ava";
import * as fs from "fs";
import { ensureRootfs, leftovers, startBox } from "../helpers/box";

const NVIDIA_QUERY =
    "nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv,noheader,nounits";

test.before("the cached rootfs exists (built on first use)", async (t) => {
    t.timeout(30 * 60 * 1000);
    await ensureRootfs();
});

test("a started box runs systemd as PID 1, answers over ssh as dev, and leaves nothing behind when stopped", async (t) => {
    t.timeout(5 * 60 * 1000);
    const box = await startBox({ name: "smoke" });
    try {
        t.regex(await box.sh("systemctl is-system-running"), /^(running|degraded)\n$/);
        t.is((await box.sh("cat /proc/1/comm")).trim(), "systemd");
        t.is((await box.sh("readlink /proc/1/exe")).trim(), "/usr/lib/systemd/systemd");

        const who = await box.ssh("whoami && id -u && sudo -n id -un");
        t.is(who.code, 0, who.stderr);
        t.deepEqual(who.stdout.trim().split("\n"), ["dev", "1000", "root"]);

        t.is(await box.sh("cat >/root/in && cat /root/in", { input: "via stdin\n" }), "via stdin\n");
        const failed = await box.exec("echo out; echo err >&2; exit 3");
        t.deepEqual(failed, { code: 3, stdout: "out\n", stderr: "err\n" });

        t.is(await box.sh("cat /etc/wsl.conf"), "[boot]\nsystemd=true\n");
        t.true(fs.existsSync(`${box.root}/usr/lib/wsl/lib/libcuda.so.1`));
        t.is((await box.ssh(`/usr/lib/wsl/lib/${NVIDIA_QUERY}`)).stdout, "0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 581.57\n");
        t.regex(await box.sh("cat /proc/sys/kernel/osrelease"), /microsoft-standard-WSL2/);

        // sshd must listen on loopback only: the box shares the host's network namespace.
        const listen = await box.sh(`ss -Hltn 'sport = :${box.port}' | awk '{print $4}'`);
        t.is(listen, `127.0.0.1:${box.port}\n`);
        t.is((fs.statSync(box.privateKeyPath).mode & 0o777).toString(8), "600");
    } finally {
        await box.stop();
    }
    t.deepEqual(leftovers(box.dir), { mounts: [], pids: [] });
    t.false(fs.existsSync(box.dir));
});

test("a rebooted box comes back with its files and an enabled service running again", async (t) => {
    t.timeout(5 * 60 * 1000);
    const box = await startBox({ name: "reboot" });
    try {
        await box.sh(
            "printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n' " +
                ">/etc/systemd/system/canary.service && systemctl daemon-reload && systemctl enable --now canary",
        );
        await box.ssh("echo kept >~/marker");
        const pidBefore = box.pid();
        const invocationBefore = await box.sh("systemctl show -p InvocationID --value canary");
        await box.reboot();
        t.not(box.pid(), pidBefore);
        t.is((await box.sh("systemctl is-active canary")).trim(), "active");
        t.not(await box.sh("systemctl show -p InvocationID --value canary"), invocationBefore);
        t.is((await box.ssh("cat ~/marker")).stdout, "kept\n");
        t.is((await box.ssh("whoami")).stdout, "dev\n");
    } finally {
        await box.stop();
    }
    t.deepEqual(leftovers(box.dir), { mounts: [], pids: [] });
});

test("stopping a box whose systemd was killed still cleans up", async (t) => {
    t.timeout(5 * 60 * 1000);
    const box = await startBox({ name: "killed" });
    process.kill(box.pid(), "SIGKILL");
    await box.stop();
    await box.stop();
    t.deepEqual(leftovers(box.dir), { mounts: [], pids: [] });
    t.false(fs.existsSync(box.dir));
});
