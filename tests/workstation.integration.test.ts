// The workstation stack's lifecycle on the throwaway box, through the real engine over SSH: converge from
// nothing, a no-op second up, drift of every kind in a plain preview, a tier switch, and destroy.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test, { ExecutionContext } from "ava";
import type { Box } from "./helpers/box";
import { changesLookingAhead, Rig, startRig, upLookingAhead } from "./helpers/rig";
import type { TestStack } from "./helpers/stack";
import { boxSnapshot, serviceRecord, StandinRecord } from "./helpers/workstation";

let rig: Rig;
let box: Box;
let ts: TestStack;
let port: number;
let before: string;

const venv = "/opt/vllm-workstation/venv";

test.before(async () => {
    rig = await startRig({ name: "workstation" });
    ({ box, port } = rig);
    before = await boxSnapshot(box);
    ts = await rig.stack();
});

test.after.always(() => rig?.stop());

// Every up and preview runs as npm run up and preview run it.
const up = (t: ExecutionContext, opts?: { expectNoChanges?: boolean }) => upLookingAhead(ts, t, opts);
const changed = () => changesLookingAhead(ts);

test.serial("pulumi up from nothing converges the box and the endpoint answers only after the health check", async (t) => {
    const r = await up(t);
    t.is(r.summary.result, "succeeded");
    t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);
    t.is(r.outputs.servedModelName.value, "gpt-oss-20b");
    t.is(r.outputs.venvPath.value, venv);
    const models = (await (await fetch(`${r.outputs.endpoint.value}/models`)).json()) as { data: Array<{ id: string }> };
    t.deepEqual(models.data.map((m) => m.id), ["gpt-oss-20b"]);
    t.regex(ts.output.join(""), /waiting for http:\/\/127\.0\.0\.1:\d+\/health/, "progress shows in the up output");
});

test.serial("the service runs vllm serve with the 24gb tier's flags and the CUDA environment", async (t) => {
    const rec: StandinRecord = await serviceRecord(box);
    t.is(rec.argv[1], "serve");
    t.regex(rec.argv[2], new RegExp(`/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/snapshots/${rig.hub.commitSha}$`));
    t.is(rec.flags["max-model-len"], "32768");
    t.is(rec.flags["served-model-name"], "gpt-oss-20b");
    t.is(rec.flags["host"], "127.0.0.1");
    t.false("cpu-offload-gb" in rec.flags);
    t.false("enforce-eager" in rec.flags);
    t.is(rec.env.CUDA_HOME, "/usr/local/cuda");
    t.true(rec.env.PATH.startsWith("/usr/local/cuda/bin:"));
    t.true(rec.env.LD_LIBRARY_PATH.startsWith("/usr/lib/wsl/lib:"));
    t.is(rec.env.HF_HUB_OFFLINE, "1");
    t.is(rec.flags["attention-backend"], "TRITON_ATTN", "0.24 takes the backend as a flag");
    t.false("VLLM_ATTENTION_BACKEND" in rec.env);
    t.false("VLLM_WSL2_ENABLE_PIN_MEMORY" in rec.env, "nothing is offloaded");
    t.regex(rec.env.TIKTOKEN_ENCODINGS_BASE, /-tiktoken$/);
    t.is(rec.user, "vllm");
});

test.serial("login shells get the CUDA environment from /etc/profile.d", async (t) => {
    const r = await box.ssh(`bash -lc 'echo $CUDA_HOME; echo $PATH; echo $LD_LIBRARY_PATH'`);
    const [home, path, ld] = r.stdout.trim().split("\n");
    t.is(home, "/usr/local/cuda");
    t.true(path.startsWith("/usr/local/cuda/bin:"));
    t.true(ld.startsWith("/usr/lib/wsl/lib:"));
});

test.serial("the installed packages are the locked set, with hashes", async (t) => {
    const lock = await box.sh(`cat ${venv}/requirements.lock`);
    t.regex(lock, /^vllm==0\.24\.0 \\$/m);
    t.regex(lock, /--hash=sha256:[0-9a-f]{64}/);
    const freeze = await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python`);
    t.regex(freeze, /^vllm==0\.24\.0$/m);
    t.regex(freeze, /^flashinfer-python==0\.6\.12$/m);
});

// The service runs as vllm under ProtectSystem=strict: it cannot write __pycache__ into the venv, so
// without the install's .pyc files every start would compile vllm, torch and transformers again.
test.serial("the venv is compiled to bytecode at install, since the service user cannot write to it", async (t) => {
    const site = (await box.sh(`${venv}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'`)).trim();
    // Every module, not only those something imported (a root process writes its own imports' .pyc).
    for (const pkg of ["vllm", "huggingface_hub"]) {
        const count = async (glob: string) => Number((await box.sh(`find ${site}/${pkg} -name '${glob}' | wc -l`)).trim());
        const [py, pyc] = [await count("*.py"), await count("*.pyc")];
        t.true(py > 0 && pyc >= py, `${pkg}: ${pyc} .pyc files for ${py} .py files`);
    }
    t.is((await box.exec(`runuser -u vllm -- test -w ${site}/vllm`)).code, 1, "the service user cannot write the venv");
});

test.serial("a second pulumi up changes nothing", async (t) => {
    const r = await up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(r.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
});

const drifts: Array<[string, string]> = [
    ["the unit file is edited", "sed -i 's/^Restart=on-failure/Restart=no/' /etc/systemd/system/vllm-workstation.service && systemctl daemon-reload"],
    ["the service is stopped", "systemctl stop vllm-workstation"],
    ["the service is disabled", "systemctl disable vllm-workstation"],
    ["a package is removed from the venv", `${venv}-tools/uv pip uninstall --python ${venv}/bin/python six packaging 2>&1 || true`],
    ["the shell environment file is removed", "rm /etc/profile.d/vllm-workstation-cuda.sh"],
    ["a model file is deleted", `rm "$(readlink -f /var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/snapshots/*/config.json)"`],
    ["a model file is corrupted in place", `f=$(readlink -f /var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/snapshots/*/model-00000-of-00001.safetensors 2>/dev/null || ls -d /var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b/blobs/* | head -n1); printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null`],
];

for (const [what, cmd] of drifts) {
    test.serial(`a plain preview shows drift when ${what}, and up repairs it`, async (t) => {
        await box.sh(cmd);
        const c = await changed();
        t.is(c.update, 1, JSON.stringify(c));
        await up(t);
        t.deepEqual(await changed(), {});
        const health = await fetch(`http://127.0.0.1:${port}/health`);
        t.is(health.status, 200);
    });
}

const mainPid = async () => (await box.sh("systemctl show -p MainPID --value vllm-workstation")).trim();

// The unit runs as server.user: a user deleted by hand once went unseen until the next start failed (217/USER).
test.serial("a plain preview shows drift when the service user is deleted by hand, and up makes it again and restarts the service as it", async (t) => {
    const pid = await mainPid();
    await box.sh("userdel -f vllm");
    t.is((await box.exec("id vllm")).code, 1);
    const c = await changed();
    t.deepEqual(c, { update: 1 });
    await up(t);
    t.deepEqual(await changed(), {});
    t.is((await box.exec("id vllm")).code, 0);
    t.not(await mainPid(), pid, "the process of the deleted user was replaced");
    t.is((await serviceRecord(box)).user, "vllm");
    t.is((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    // A restart now works: the unit's user exists.
    await box.sh("systemctl restart vllm-workstation");
    t.is((await box.sh("systemctl is-active vllm-workstation || true")).trim(), "active");
});

// The service's files do not change with the CUDA environment or the packages; the process it runs does.
test.serial("a changed CUDA environment restarts the running service, which then has it", async (t) => {
    const pid = await mainPid();
    await ts.stack.setConfig("cuda.home", { value: "/usr/local/cuda-12.8" }, true);
    const r = await up(t);
    const { same, ...changes } = r.summary.resourceChanges ?? {};
    t.deepEqual(changes, { update: 2 }, "the CUDA environment and the service");
    t.true((same ?? 0) > 5);
    t.not(await mainPid(), pid);
    const rec = await serviceRecord(box);
    t.is(rec.env.CUDA_HOME, "/usr/local/cuda-12.8");
    t.true(rec.env.PATH.startsWith("/usr/local/cuda-12.8/bin:"));
    t.deepEqual(await changed(), {});
});

test.serial("a changed package set restarts the running service on the new packages", async (t) => {
    const pid = await mainPid();
    await ts.stack.setConfig("python.flashinferVersion", { value: "0.3.1" }, true);
    const r = await up(t);
    const { same, ...changes } = r.summary.resourceChanges ?? {};
    t.deepEqual(changes, { update: 2 }, "the packages and the service");
    t.true((same ?? 0) > 5);
    t.regex(await box.sh(`${venv}-tools/uv pip freeze --python ${venv}/bin/python`), /^flashinfer-python==0\.3\.1$/m);
    const newPid = await mainPid();
    t.not(newPid, pid);
    // The running process started after the install: its start time is later than the new package's files.
    const started = Number((await box.sh(`stat -c %Y /proc/${newPid}`)).trim());
    const installed = Number((await box.sh(`stat -c %Y "$(${venv}/bin/python -c 'import flashinfer, os; print(os.path.dirname(flashinfer.__file__))')"`)).trim());
    t.true(started >= installed, `process ${started}, package ${installed}`);
    t.deepEqual(await changed(), {});
});

test.serial("switching from the 24gb tier to the 12gb tier updates only the service and restarts it", async (t) => {
    const pid = await mainPid();
    await ts.stack.setConfig("gpu.tier", { value: "12gb" }, true);
    const r = await up(t);
    const { same, ...changes } = r.summary.resourceChanges ?? {};
    t.deepEqual(changes, { update: 1 });
    t.true((same ?? 0) > 5);
    t.true(ts.output.join("").includes("workstation-vllm-unit"), "the update is the vLLM unit");
    const newPid = (await box.sh("systemctl show -p MainPID --value vllm-workstation")).trim();
    t.not(newPid, pid);
    const rec = await serviceRecord(box);
    t.truthy(rec.flags["cpu-offload-gb"]);
    t.true("enforce-eager" in rec.flags);
    t.true(Number(rec.flags["max-model-len"]) <= 8192);
    t.is(rec.env.VLLM_WSL2_ENABLE_PIN_MEMORY, "1", "the box looks like WSL2, where offload needs pinned memory");
});

test.serial("pulumi destroy removes the service, venv, environment and model: the box is as before up", async (t) => {
    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    t.is((await box.exec("systemctl cat vllm-workstation")).code !== 0, true);
    t.is((await box.exec(`test -e ${venv}`)).code, 1);
    t.is((await box.exec("id vllm")).code, 1);
    t.is(await boxSnapshot(box), before);
});
