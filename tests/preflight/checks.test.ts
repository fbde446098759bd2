import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GpuRecord } from "../../components/plan/gpu";
import { PlanResult, plan } from "../../components/plan/planner";
import { healthy, NVCC_128, RTX4090, WSL2 } from "../helpers/facts";
import {
    DISK_NEEDS,
    Level,
    checkComputeCapability,
    checkDisk,
    checkGpu,
    checkHostMemory,
    checkLibcuda,
    checkNvcc,
    checkPinnedMemory,
    checkPlan,
    checkSystemd,
    checkWsl,
    runChecks,
} from "../../components/preflight/checks";
import { Facts, WslKind, formatProbeOutput, gatherFacts, kernelVersion, parseNvccVersion, parseProbeOutput, wslConfEnablesSystemd, wslKind } from "../../components/preflight/facts";

const WSL2_OLD = "Linux version 4.19.104-microsoft-standard (oe-user@oe-host) (gcc version 8.2.0 (GCC)) #1 SMP Wed Feb 19 06:37:35 UTC 2020\n";
const WSL1 = "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc version 5.4.0 (GCC) ) #1237-Microsoft Sat Sep 11 14:32:00 PST 2021\n";
const NATIVE = "Linux version 6.8.0-48-generic (buildd@lcy02-amd64-010) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0) #48-Ubuntu SMP\n";

const RTX3060: GpuRecord = { index: 0, name: "NVIDIA GeForce RTX 3060", memoryTotalMiB: 12288, memoryFreeMiB: 11863, computeCap: "8.6", driverVersion: "576.02" };
const RTX5090: GpuRecord = { index: 0, name: "NVIDIA GeForce RTX 5090", memoryTotalMiB: 32607, memoryFreeMiB: 31842, computeCap: "12.0", driverVersion: "576.88" };
const T4: GpuRecord = { index: 0, name: "Tesla T4", memoryTotalMiB: 15360, memoryFreeMiB: 14913, computeCap: "7.5", driverVersion: "550.54.15" };

const planFor = (f: Facts): PlanResult => plan({ gpu: f.gpus?.[0] ?? null, wsl: wslKind(f.procVersion) === "wsl2" });

// Readings

const kinds: Array<[string, string | null, WslKind]> = [
    ["a WSL2 kernel", WSL2, "wsl2"],
    ["an early WSL2 kernel without the -WSL2 suffix", WSL2_OLD, "wsl2"],
    ["WSL1", WSL1, "wsl1"],
    ["a native kernel", NATIVE, "none"],
    ["an unreadable /proc/version", null, "none"],
];
for (const [what, text, kind] of kinds) {
    test(`reads ${what} as ${kind}`, (t) => t.is(wslKind(text), kind));
}

test("reads the kernel version from /proc/version", (t) => {
    t.deepEqual(kernelVersion(WSL2), [5, 15, 167]);
    t.deepEqual(kernelVersion(WSL2_OLD), [4, 19, 104]);
    t.is(kernelVersion("garbage"), null);
});

const confs: Array<[string, string | null, boolean]> = [
    ["a missing wsl.conf", null, false],
    ["[boot] systemd=true", "[boot]\nsystemd=true\n", true],
    ["spaces, case and CRLF", "[Boot]\r\n  SystemD = True  \r\n", true],
    ["systemd=false", "[boot]\nsystemd=false\n", false],
    ["systemd=true in another section", "[network]\nsystemd=true\n", false],
    ["a commented-out line", "[boot]\n# systemd=true\n", false],
    ["the last assignment", "[boot]\nsystemd=true\nsystemd=false\n", false],
];
for (const [what, text, on] of confs) {
    test(`reads ${what} in wsl.conf as systemd ${on ? "on" : "off"}`, (t) => t.is(wslConfEnablesSystemd(text), on));
}

test("reads the release from nvcc --version", (t) => {
    t.deepEqual(parseNvccVersion(NVCC_128), { major: 12, minor: 8 });
    t.is(parseNvccVersion("bash: nvcc: command not found"), null);
});

// The probe script

test("probes with the shared nvidia-smi query and the configured paths, quoted", (t) => {
    const script = gatherFacts({ modelDir: "/srv/it's models", cudaHome: "/opt/cuda-12.8" });
    t.true(script.includes("--query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv,noheader,nounits"));
    t.true(script.includes(`disk model '/srv/it'\\''s models'`));
    t.true(script.includes("disk venv '/opt/vllm-workstation/venv'"));
    t.true(script.includes("nvcc='/opt/cuda-12.8/bin/nvcc'"));
    t.true(script.includes("'/usr/lib/wsl/lib'/libcuda.so.1"));
    t.true(script.trimEnd().endsWith("emit end 1"));
});

test("writes a probe that bash parses", (t) => {
    const r = spawnSync("bash", ["-n"], { input: gatherFacts(), encoding: "utf8" });
    t.is(r.status, 0, r.stderr);
});

function fakeBin(dir: string, name: string, body: string): void {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

test("runs the probe on this machine and parses what it prints, with nvidia-smi and nvcc faked", (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "probe-"));
    fs.mkdirSync(path.join(dir, "cuda", "bin"), { recursive: true });
    fakeBin(dir, "nvidia-smi", "echo '0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02'");
    fakeBin(path.join(dir, "cuda", "bin"), "nvcc", `printf '%s' '${NVCC_128}'`);
    const script = gatherFacts({ modelDir: path.join(dir, "models", "hf"), venvDir: path.join(dir, "venv"), cudaHome: path.join(dir, "cuda") });
    fs.mkdirSync(path.join(dir, "venv"));
    fs.writeFileSync(path.join(dir, "venv", "file"), "x".repeat(5000));
    const r = spawnSync("bash", ["-s"], { input: script, encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    t.is(r.status, 0, r.stderr);
    const parsed = parseProbeOutput(r.stdout);
    if (!parsed.ok) return t.fail(parsed.errors.join("\n"));
    const f = parsed.facts;
    t.deepEqual(f.gpus, [RTX4090]);
    t.is(parseNvccVersion(f.nvccVersion)?.minor, 8);
    t.true((f.memTotalKiB ?? 0) > 0);
    t.true(f.procVersion?.startsWith("Linux version") ?? false);
    t.deepEqual(f.disks.map((d) => d.role), ["model", "venv"]);
    t.true(f.disks.every((d) => d.freeBytes !== null && d.freeBytes > 0 && d.device !== null));
    t.is(f.disks[0].usedBytes, 0, "a directory that does not exist yet holds nothing");
    t.true(f.disks[1].usedBytes >= 5000);
    t.is(f.disks[0].device, f.disks[1].device);
});

test("reports nvidia-smi as missing when the probe cannot find it", (t) => {
    // The WSL library directory is pointed at an empty one, and PATH holds only the basics.
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "nosmi-"));
    const r = spawnSync("bash", ["-s"], { input: gatherFacts({ wslLibDir: empty, cudaHome: empty }), encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
    const parsed = parseProbeOutput(r.stdout);
    if (!parsed.ok) return t.fail(parsed.errors.join("\n"));
    t.false(parsed.facts.libcudaPresent);
    if (fs.existsSync("/usr/bin/nvidia-smi") || fs.existsSync("/bin/nvidia-smi")) return t.pass("this machine has nvidia-smi");
    t.is(parsed.facts.gpus, null);
    return t.is(parsed.facts.nvidiaSmiError, "nvidia-smi not found");
});

// The parser

test("parses what formatProbeOutput writes back into the same facts", (t) => {
    t.deepEqual(parseProbeOutput(formatProbeOutput(healthy)), { ok: true, facts: healthy });
    const bare: Facts = { ...healthy, gpus: null, nvidiaSmiError: "nvidia-smi not found", wslConf: null, nvccVersion: null, memTotalKiB: null, pid1Comm: null, disks: [] };
    t.deepEqual(parseProbeOutput(formatProbeOutput(bare)), { ok: true, facts: bare });
});

test("rejects output without end=1 as cut off", (t) => {
    const text = formatProbeOutput(healthy).replace("end=1\n", "");
    t.deepEqual(parseProbeOutput(text), { ok: false, errors: ["end=1 is missing: the probe was cut off"] });
});

test("rejects output that is not the probe's", (t) => {
    const r = parseProbeOutput("hello\n");
    t.deepEqual(r, {
        ok: false,
        errors: ['line 1 "hello": not key=value', "probe=1 is missing: this is not the output of gatherFacts()", "end=1 is missing: the probe was cut off"],
    });
});

test("rejects a value that should be base64 but is not", (t) => {
    const r = parseProbeOutput("probe=1\nproc_version=not base64!\nend=1\n");
    t.deepEqual(r, { ok: false, errors: ['proc_version: "not base64!" is not base64'] });
});

test("rejects a memory size that is not a number", (t) => {
    const r = parseProbeOutput("probe=1\nmem_total_kib=lots\nend=1\n");
    t.deepEqual(r, { ok: false, errors: ['mem_total_kib: "lots" is not a whole number'] });
});

test("ignores keys a newer probe may add", (t) => {
    const r = parseProbeOutput(formatProbeOutput(healthy).replace("end=1", "gpu_power_watts=450\nend=1"));
    t.true(r.ok);
});

test("keeps nvidia-smi's own error line when it fails", (t) => {
    const msg = Buffer.from("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n").toString("base64");
    const r = parseProbeOutput(`probe=1\nnvidia_smi_rc=9\nnvidia_smi=${msg}\nend=1\n`);
    if (!r.ok) return t.fail(r.errors.join("\n"));
    t.is(r.facts.gpus, null);
    t.is(r.facts.nvidiaSmiError, "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.");
});

test("keeps the CSV parser's quote of a malformed nvidia-smi line", (t) => {
    const csv = Buffer.from("0, NVIDIA GeForce RTX 4090, [N/A], 23975, 8.9, 576.02\n").toString("base64");
    const r = parseProbeOutput(`probe=1\nnvidia_smi_rc=0\nnvidia_smi=${csv}\nend=1\n`);
    if (!r.ok) return t.fail(r.errors.join("\n"));
    t.is(r.facts.gpus, null);
    t.regex(r.facts.nvidiaSmiError ?? "", /memory\.total "\[N\/A\]"/);
});

// Checks, one test per branch

test("passes every check on a healthy WSL2 box with a 24 GB card", (t) => {
    const checks = runChecks(healthy, planFor(healthy));
    t.deepEqual(
        checks.map((c) => [c.id, c.level]),
        [
            ["gpu", "ok"],
            ["compute-capability", "ok"],
            ["vram-plan", "ok"],
            ["wsl", "ok"],
            ["systemd", "ok"],
            ["libcuda", "ok"],
            ["nvcc", "ok"],
            ["host-memory", "ok"],
            ["disk-model-venv", "ok"],
            // Not visible from inside WSL, so it always asks to be checked on Windows.
            ["wsl-lifecycle", "warning"],
        ],
    );
    t.true(checks.filter((c) => c.level === "ok").every((c) => c.fix === null));
});

test("the systemd runtime's checks: the card, the plan, WSL, systemd, libcuda, nvcc, memory, disk, the driver, WSL's lifecycle", (t) => {
    t.deepEqual(
        runChecks(healthy, planFor(healthy), { runtime: "systemd", vllmVersion: "0.11.0" }).map((c) => c.id),
        ["gpu", "compute-capability", "vram-plan", "wsl", "systemd", "libcuda", "nvcc", "host-memory", "disk-model-venv", "driver", "wsl-lifecycle"],
    );
});

test("the docker runtime's checks leave out systemd and nvcc: the engine runs the container and its image brings the CUDA toolkit", (t) => {
    // Facts on which both would fail: no systemd as PID 1, no nvcc.
    const f: Facts = { ...healthy, pid1Comm: "init", wslConf: null, nvccVersion: null };
    const checks = runChecks(f, planFor(f), { runtime: "docker", vllmVersion: "0.11.0" });
    t.deepEqual(
        checks.map((c) => c.id),
        ["gpu", "compute-capability", "vram-plan", "wsl", "libcuda", "host-memory", "disk-model-venv", "driver", "wsl-lifecycle"],
    );
    t.deepEqual(
        checks.filter((c) => c.level === "error"),
        [],
    );
    t.true(
        runChecks(f, planFor(f), { runtime: "systemd", vllmVersion: "0.11.0" }).some((c) => c.id === "systemd" && c.level === "error"),
        "the same facts fail the systemd runtime",
    );
    t.regex(checks.find((c) => c.id === "wsl-lifecycle")?.fix ?? "", /the Docker engine then starts and restarts the container/, "WSL's lifecycle fix follows the runtime");
});

test("fails the gpu check when nvidia-smi is missing, pointing WSL2 at the Windows driver", (t) => {
    const c = checkGpu({ ...healthy, gpus: null, nvidiaSmiError: "nvidia-smi not found" });
    t.is(c.level, "error");
    t.is(c.message, "no GPU: nvidia-smi not found");
    t.regex(c.fix ?? "", /NVIDIA driver on Windows.*never install a Linux NVIDIA driver inside WSL/);
});

test("fails the gpu check when nvidia-smi lists no GPU", (t) => {
    const c = checkGpu({ ...healthy, procVersion: NATIVE, gpus: [] });
    t.like(c, { level: "error", message: "nvidia-smi lists no GPU" });
});

test("passes the gpu check with GPU 0, noting the ones it ignores", (t) => {
    const c = checkGpu({ ...healthy, gpus: [RTX4090, { ...RTX3060, index: 1 }] });
    t.is(c.level, "ok");
    t.regex(c.message, /^GPU 0: NVIDIA GeForce RTX 4090, 24564 MiB \(23975 MiB free\), compute 8\.9, driver 576\.02 \(1 more ignored/);
});

test("fails the compute-capability check on a T4", (t) => {
    const c = checkComputeCapability({ ...healthy, gpus: [T4] });
    t.is(c?.level, "error");
    t.regex(c?.message ?? "", /^"Tesla T4" has compute capability 7\.5 \(sm_75\)/);
});

test("skips the compute-capability check without a GPU", (t) => {
    t.is(checkComputeCapability({ ...healthy, gpus: null }), null);
});

test("turns planner errors into one vram-plan error", (t) => {
    const c = checkPlan({ ok: false, errors: ["gpu.maxModelLen: 1 is bad", "gpu.maxNumSeqs: 0 is bad"] });
    t.like(c, { id: "vram-plan", level: "error", message: "gpu.maxModelLen: 1 is bad\ngpu.maxNumSeqs: 0 is bad" });
});

test("leaves an unsupported card to the compute-capability check instead of repeating it", (t) => {
    const f = { ...healthy, gpus: [T4] };
    t.is(checkPlan(planFor(f)), null);
    t.deepEqual(runChecks(f, planFor(f)).filter((c) => c.level === "error").map((c) => c.id), ["compute-capability"]);
});

test("passes the wsl check on WSL2", (t) => t.like(checkWsl(healthy), { level: "ok", message: "WSL2 (kernel 5.15.167.4-microsoft-standard-WSL2)" }));

test("fails the wsl check on WSL1, which has no GPU", (t) => {
    const c = checkWsl({ ...healthy, procVersion: WSL1 });
    t.is(c.level, "error");
    t.regex(c.fix ?? "", /wsl --set-version <distro> 2/);
});

test("only warns on native Linux, where the stack also works", (t) => {
    t.like(checkWsl({ ...healthy, procVersion: NATIVE }), { level: "warning" });
    t.regex(checkWsl({ ...healthy, procVersion: NATIVE }).message, /^not WSL \(kernel 6\.8\.0-48-generic\): fine on native Linux/);
});

test("warns when /proc/version cannot be read", (t) => t.like(checkWsl({ ...healthy, procVersion: null }), { level: "warning" }));

test("fails the systemd check on WSL2 without [boot] systemd=true, with the exact lines to add", (t) => {
    const c = checkSystemd({ ...healthy, pid1Comm: "init", wslConf: null });
    t.is(c.level, "error");
    t.is(c.message, 'PID 1 is "init", and /etc/wsl.conf does not exist: the vLLM service needs systemd');
    t.is(c.fix, "add\n[boot]\nsystemd=true\nto /etc/wsl.conf, then run `wsl --shutdown` from Windows and reopen the distribution");
});

test("fails the systemd check when wsl.conf enables it but the distribution was not restarted", (t) => {
    const c = checkSystemd({ ...healthy, pid1Comm: "init" });
    t.is(c.level, "error");
    t.regex(c.message, /enables systemd, but PID 1 is "init"/);
    t.regex(c.fix ?? "", /^run `wsl --shutdown`/);
});

test("fails the systemd check on native Linux without systemd", (t) => {
    t.like(checkSystemd({ ...healthy, procVersion: NATIVE, pid1Comm: "dumb-init" }), { level: "error", message: 'PID 1 is "dumb-init", not systemd: the vLLM service is a systemd unit' });
});

test("fails the libcuda check on WSL2 when the Windows driver's library is missing", (t) => {
    const c = checkLibcuda({ ...healthy, libcudaPresent: false });
    t.like(c, { level: "error", message: "/usr/lib/wsl/lib/libcuda.so.1 is missing: CUDA cannot reach the GPU from WSL2" });
});

test("skips the libcuda check off WSL2", (t) => t.is(checkLibcuda({ ...healthy, procVersion: NATIVE, libcudaPresent: false }), null));

const nvccCases: Array<[string, Partial<Facts>, Level, RegExp]> = [
    ["fails without nvcc", { nvccVersion: null }, "error", /^nvcc not found: FlashInfer compiles/],
    ["fails with CUDA 12.4", { nvccVersion: "Cuda compilation tools, release 12.4, V12.4.131" }, "error", /^nvcc 12\.4 is older than 12\.8/],
    ["passes with CUDA 12.8", {}, "ok", /^nvcc 12\.8$/],
    ["warns with CUDA 12.8 on an RTX 5090 (sm_120 wants 12.9)", { gpus: [RTX5090] }, "warning", /^nvcc 12\.8 with an sm_120 card/],
    ["passes with CUDA 12.9 on an RTX 5090", { gpus: [RTX5090], nvccVersion: "Cuda compilation tools, release 12.9, V12.9.86" }, "ok", /^nvcc 12\.9$/],
    ["warns with CUDA 13.0, a newer major than vLLM's PyTorch build", { nvccVersion: "Cuda compilation tools, release 13.0, V13.0.88" }, "warning", /^nvcc 13\.0 is a newer major release/],
    ["warns when the version cannot be read", { nvccVersion: "segmentation fault" }, "warning", /^cannot read a version/],
];
for (const [what, patch, level, message] of nvccCases) {
    test(`nvcc check ${what}`, (t) => {
        const c = checkNvcc({ ...healthy, ...patch });
        t.is(c.level, level);
        t.regex(c.message, message);
        t.is(c.fix === null, level === "ok");
    });
}

test("fails the host-memory check on WSL2 with too little RAM, pointing at .wslconfig", (t) => {
    const f = { ...healthy, gpus: [RTX3060], memTotalKiB: 8 * 1024 * 1024 };
    const c = checkHostMemory(f, planFor(f));
    t.is(c.level, "error");
    t.regex(c.message, /^MemTotal is 8\.0 GiB; vLLM needs 12\.6 GiB with 4 GiB of weights offloaded, plus 1\.0 GiB for the system$/);
    t.regex(c.fix ?? "", /raise memory= under \[wsl2\] in %UserProfile%\\\.wslconfig to at least 14GB/);
});

test("fails the host-memory check on native Linux with too little RAM, suggesting less offload", (t) => {
    const f = { ...healthy, procVersion: NATIVE, memTotalKiB: 4 * 1024 * 1024 };
    t.like(checkHostMemory(f, planFor(f)), { level: "error", fix: "add RAM, or offload fewer weights (gpu.cpuOffloadGb)" });
});

test("checks host memory against vLLM's base need when there is no plan", (t) => {
    t.like(checkHostMemory({ ...healthy, memTotalKiB: 5 * 1024 * 1024 }, null), { level: "error" });
    t.like(checkHostMemory({ ...healthy, memTotalKiB: 7 * 1024 * 1024 }, null), { level: "ok" });
});

test("warns when MemTotal cannot be read", (t) => t.like(checkHostMemory({ ...healthy, memTotalKiB: null }, null), { level: "warning" }));

test("skips the pinned-memory check when nothing is offloaded", (t) => t.is(checkPinnedMemory(healthy, planFor(healthy)), null));

test("warns that offloading under WSL2 needs VLLM_WSL2_ENABLE_PIN_MEMORY and a vLLM that knows it", (t) => {
    const f = { ...healthy, gpus: [RTX3060] };
    const c = checkPinnedMemory(f, planFor(f));
    t.is(c?.level, "warning");
    t.regex(c?.message ?? "", /V1 CPU offloading requires uva \(pin memory\) support/);
    t.regex(c?.fix ?? "", /vllm-project\/vllm#41496 and set VLLM_WSL2_ENABLE_PIN_MEMORY=1/);
});

test("fails the pinned-memory check under WSL2 when the vLLM release has no pinning switch", (t) => {
    const f = { ...healthy, gpus: [RTX3060] };
    const c = checkPinnedMemory(f, planFor(f), false);
    t.is(c?.level, "error");
    t.regex(c?.message ?? "", /has no VLLM_WSL2_ENABLE_PIN_MEMORY switch$/);
    t.regex(c?.fix ?? "", /^use a card with 16 GB or more/);
    t.deepEqual(runChecks(f, planFor(f), { wslPinSwitch: false }).filter((x) => x.level === "error").map((x) => x.id), ["pinned-memory"]);
});

test("only warns under WSL2 when the vLLM release knows VLLM_WSL2_ENABLE_PIN_MEMORY", (t) => {
    const f = { ...healthy, gpus: [RTX3060] };
    const c = checkPinnedMemory(f, planFor(f), true);
    t.is(c?.level, "warning");
    t.regex(c?.fix ?? "", /^set VLLM_WSL2_ENABLE_PIN_MEMORY=1 in the service environment/);
});

test("fails the pinned-memory check on a WSL2 kernel older than 4.19.121", (t) => {
    const f = { ...healthy, gpus: [RTX3060], procVersion: WSL2_OLD };
    t.like(checkPinnedMemory(f, planFor(f)), { level: "error", fix: "update WSL from Windows: `wsl --update`, then `wsl --shutdown`" });
});

test("passes the pinned-memory check on native Linux", (t) => {
    const f = { ...healthy, gpus: [RTX3060], procVersion: NATIVE };
    t.like(checkPinnedMemory(f, planFor(f)), { level: "ok" });
});

test("adds up model and venv needs when they share a filesystem", (t) => {
    const tight = healthy.disks.map((d) => ({ ...d, freeBytes: 25e9 }));
    const [c] = checkDisk({ ...healthy, disks: tight });
    t.like(c, { id: "disk-model-venv", level: "error" });
    t.regex(c.message, /^25\.0 GB free for model \(\/var\/lib\/vllm-workstation\/hf\) and venv \(\/opt\/vllm-workstation\/venv\); 32\.0 GB needed/);
    t.regex(c.fix ?? "", /ext4\.vhdx/);
});

test("checks filesystems separately when model and venv live apart", (t) => {
    const disks = [
        { ...healthy.disks[0], device: "1", freeBytes: 20e9 },
        { ...healthy.disks[1], device: "2", freeBytes: 10e9 },
    ];
    t.deepEqual(checkDisk({ ...healthy, disks }).map((c) => [c.id, c.level]), [
        ["disk-model", "ok"],
        ["disk-venv", "error"],
    ]);
});

test("for the docker runtime the venv needs only the Hub client's space, not vLLM's, and the message says the image's goes elsewhere", (t) => {
    const disks = healthy.disks.map((d) => ({ ...d, freeBytes: 16e9 }));
    t.like(checkDisk({ ...healthy, disks })[0], { level: "error" }, "16 GB is too little for the model and vLLM's venv");
    const [c] = checkDisk({ ...healthy, disks }, "docker");
    t.like(c, { id: "disk-model-venv", level: "ok", message: "16.0 GB free for model (/var/lib/vllm-workstation/hf) and venv (/opt/vllm-workstation/venv); 15.0 GB needed" });
    const [tight] = checkDisk({ ...healthy, disks: healthy.disks.map((d) => ({ ...d, freeBytes: 10e9 })) }, "docker");
    t.like(tight, { level: "error" });
    t.regex(tight.message, /the Hub client's venv 1\.0 GB, less what is already there; the image goes to Docker's own disk\)$/);
});

test("counts what is already downloaded or installed against the need", (t) => {
    const disks = healthy.disks.map((d) => ({ ...d, freeBytes: 5e9, usedBytes: DISK_NEEDS[d.role] }));
    t.like(checkDisk({ ...healthy, disks })[0], { level: "ok", message: "5.0 GB free for model (/var/lib/vllm-workstation/hf) and venv (/opt/vllm-workstation/venv); 0.0 GB needed" });
});

test("warns when free space could not be measured", (t) => {
    const disks = healthy.disks.map((d) => ({ ...d, freeBytes: null }));
    t.like(checkDisk({ ...healthy, disks })[0], { level: "warning" });
});

test("parses the probe's real output from an H200 host and runs every check on it: native Linux, no systemd, CUDA 13", (t) => {
    const out = fs.readFileSync(path.resolve(__dirname, "../../../tests/fixtures/preflight/h200-native-linux.txt"), "utf8");
    const parsed = parseProbeOutput(out);
    if (!parsed.ok) return t.fail(parsed.errors.join("\n"));
    const f = parsed.facts;
    t.like(f.gpus?.[0], { name: "NVIDIA H200", memoryTotalMiB: 143771, computeCap: "9.0" });
    t.is(wslKind(f.procVersion), "none");
    t.deepEqual(parseNvccVersion(f.nvccVersion), { major: 13, minor: 0 });
    const checks = runChecks(f, planFor(f), { wslPinSwitch: false });
    const byId = Object.fromEntries(checks.map((c) => [c.id, c.level]));
    t.like(byId, { gpu: "ok", "compute-capability": "ok", "vram-plan": "ok", wsl: "warning", systemd: "error", nvcc: "warning", "host-memory": "ok" });
    t.regex(checks.find((c) => c.id === "systemd")!.message, /PID 1 is "process_api", not systemd/);
    t.false("libcuda" in byId, "the WSL library check does not apply off WSL");
});
