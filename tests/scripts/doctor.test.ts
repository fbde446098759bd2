import test from "ava";
import { spawnSync } from "child_process";
import { healthy as ready } from "../helpers/facts";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Facts, formatProbeOutput } from "../../components/preflight/facts";

const ROOT = path.resolve(__dirname, "../../..");
const DOCTOR = path.join(ROOT, "dist", "scripts", "doctor.js");
const smi = (card: string): string => path.join(ROOT, "tests", "fixtures", "nvidia-smi", `${card}.csv`);

/** A ready WSL2 box; the GPU comes from --nvidia-smi-file. */
const healthy: Facts = { ...ready, gpus: null, nvidiaSmiError: "nvidia-smi not found" };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "doctor-"));

function factsFile(name: string, facts: Facts): string {
    const file = path.join(dir, `${name}.facts`);
    fs.writeFileSync(file, formatProbeOutput(facts));
    return file;
}

const HEALTHY = factsFile("healthy", healthy);

function doctor(...args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [DOCTOR, ...args], { encoding: "utf8", timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("plans a 12 GB RTX 3060 with offload, eager mode and a short context, and exits 0 with warnings", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx3060"), "--facts-file", HEALTHY);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.true(r.stdout.includes("GPU 0: NVIDIA GeForce RTX 3060, 12288 MiB total, 11863 MiB free, compute 8.6, driver 576.02"));
    t.regex(r.stdout, /--cpu-offload-gb +4\n/);
    t.regex(r.stdout, /--enforce-eager +yes\n/);
    t.regex(r.stdout, /--max-model-len +8192\n/);
    t.regex(r.stdout, /attention backend +TRITON_ATTN\n/);
    t.regex(r.stdout, /weights +9\.61 +\+4\.00 in host RAM/);
    t.regex(r.stdout, /warning +pinned-memory +the plan offloads 4 GiB/);
    t.regex(r.stdout, /0 errors, 2 warnings: ready\n$/);
});

test("plans a 24 GB RTX 4090 without offload and a 32768-token context, and exits 0", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /--cpu-offload-gb +0\n/);
    t.regex(r.stdout, /--enforce-eager +no\n/);
    t.regex(r.stdout, /--max-model-len +32768\n/);
    t.notRegex(r.stdout, /pinned-memory/);
    t.regex(r.stdout, /0 errors, 1 warning: ready\n$/);
});

test("prints the same report as JSON with --json", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--json");
    t.is(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    t.true(out.ok);
    t.is(out.gpus[0].name, "NVIDIA GeForce RTX 4090");
    t.like(out.plan, { maxModelLen: 32768, cpuOffloadGb: 0, enforceEager: false, attentionBackend: "TRITON_ATTN", kvCacheDtype: "auto" });
    t.deepEqual(out.planErrors, []);
    t.deepEqual(out.summary, { errors: 0, warnings: 1 });
    t.deepEqual(
        out.checks.filter((c: { level: string }) => c.level !== "ok").map((c: { id: string }) => c.id),
        ["wsl-lifecycle"],
    );
});

test("plans the real H100 capture with FlashAttention 3", (t) => {
    const out = JSON.parse(doctor("--nvidia-smi-file", smi("h100-real"), "--facts-file", HEALTHY, "--json").stdout);
    t.like(out.plan, { attentionBackend: "FLASH_ATTN", gpuMemoryUtilization: 0.95 });
});

test("exits 1 on a T4, naming sm_75", (t) => {
    const r = doctor("--nvidia-smi-file", smi("t4"), "--facts-file", HEALTHY);
    t.is(r.status, 1);
    t.regex(r.stdout, /error +compute-capability +"Tesla T4" has compute capability 7\.5 \(sm_75\)/);
    t.regex(r.stdout, /1 error, 1 warning: not ready\n$/);
});

test("exits 1 with a T4 in JSON too", (t) => {
    const r = doctor("--nvidia-smi-file", smi("t4"), "--facts-file", HEALTHY, "--json");
    t.is(r.status, 1);
    const out = JSON.parse(r.stdout);
    t.false(out.ok);
    t.is(out.plan, null);
    t.regex(out.planErrors[0], /sm_75/);
});

test("plans for a named tier with --tier", (t) => {
    const out = JSON.parse(doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--tier", "16gb", "--json").stdout);
    // 16 GiB less the desktop holds neither bf16 nor fp8 KV for two 8192-token requests beside 13.8 GiB of weights.
    t.like(out.plan, { tier: "16gb", enforceEager: true, cpuOffloadGb: 1 });
    t.is(out.plan.gpu.memoryTotalMiB, 16376);
});

test("honours --max-model-len", (t) => {
    const out = JSON.parse(doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--max-model-len", "131072", "--json").stdout);
    t.is(out.plan.maxModelLen, 131072);
});

test("exits 1 with the option named when --max-model-len is out of range", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--max-model-len", "200000");
    t.is(r.status, 1);
    t.regex(r.stdout, /gpu\.maxModelLen: 200000 must be a whole number from 256 to 131072/);
});

test("exits 1 when a check fails on an otherwise good card", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", factsFile("nosystemd", { ...healthy, pid1Comm: "init", wslConf: null }));
    t.is(r.status, 1);
    t.regex(r.stdout, /error +systemd +PID 1 is "init"/);
    t.regex(r.stdout, /fix: add\n +\[boot\]\n +systemd=true\n +to \/etc\/wsl\.conf/);
});

test("exits 1 and quotes the line when the nvidia-smi file is malformed", (t) => {
    const bad = path.join(dir, "bad.csv");
    fs.writeFileSync(bad, "0, NVIDIA GeForce RTX 4090, [N/A], 23975, 8.9, 576.02\n");
    const r = doctor("--nvidia-smi-file", bad, "--facts-file", HEALTHY);
    t.is(r.status, 1);
    t.regex(r.stdout, /error +gpu +no GPU: .*bad\.csv: line 1 "0, NVIDIA GeForce RTX 4090, \[N\/A\], 23975, 8\.9, 576\.02": memory\.total/);
});

test("exits 1 when the facts file was cut off", (t) => {
    const cut = path.join(dir, "cut.facts");
    fs.writeFileSync(cut, formatProbeOutput(healthy).replace("end=1\n", ""));
    const r = doctor("--facts-file", cut);
    t.is(r.status, 1);
    t.regex(r.stderr, /end=1 is missing: the probe was cut off/);
});

test("checks the driver against the release that serves, as the preflight does: R576 runs 0.11.0's CUDA 12.8 wheels", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /ok +driver +driver 576\.02 runs vLLM 0\.11\.0's CUDA 12\.8 wheels\n/);
});

test("exits 1 when the driver is too old for --vllm-version, with the venv's pin in the fix, or the image's options with --runtime docker", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--vllm-version", "0.24.0");
    t.is(r.status, 1, r.stdout + r.stderr);
    t.regex(r.stdout, /error +driver +driver 576\.02 is older than R580, which vLLM 0\.24\.0's CUDA 13\.0 wheels need\n/);
    t.regex(r.stdout, /fix: update the NVIDIA driver on Windows .* or pin vLLM 0\.11\.0 \(python\.vllmVersion/);
    const d = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--vllm-version", "0.24.0", "--runtime", "docker", "--json");
    t.is(d.status, 1, d.stdout + d.stderr);
    const driver = (JSON.parse(d.stdout) as { checks: Array<{ id: string; level: string; fix: string | null }> }).checks.find((c) => c.id === "driver");
    t.is(driver?.level, "error");
    t.regex(driver?.fix ?? "", /dockerImage vllm\/vllm-openai:v0\.11\.0/);
    t.notRegex(driver?.fix ?? "", /python\.vllmVersion/);
});

/** What the docker runtime's probe prints on a workstation whose engine has the NVIDIA runtime and the image. */
const DOCKER_READY = "docker-cli=present\ndocker-engine=28.5.1\ndocker-runtimes=io.containerd.runc.v2 nvidia runc\ndocker-image=present\n";
const ids = (stdout: string): string[] => (JSON.parse(stdout) as { checks: Array<{ id: string }> }).checks.map((c) => c.id);

test("lists the systemd runtime's checks: systemd and nvcc among them, no docker engine", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--runtime", "systemd", "--json");
    t.is(r.status, 0, r.stdout + r.stderr);
    t.deepEqual(ids(r.stdout), ["gpu", "compute-capability", "vram-plan", "wsl", "systemd", "libcuda", "nvcc", "host-memory", "disk-model-venv", "driver", "wsl-lifecycle"]);
});

test("lists the docker runtime's checks: no systemd or nvcc, the engine, its NVIDIA runtime and the release's image instead", (t) => {
    // A facts file on which systemd and nvcc would fail, with the docker runtime's probe appended.
    const file = factsFile("docker", { ...healthy, pid1Comm: "init", wslConf: null, nvccVersion: null });
    fs.appendFileSync(file, DOCKER_READY);
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker", "--json");
    t.is(r.status, 0, r.stdout + r.stderr);
    t.deepEqual(ids(r.stdout), ["gpu", "compute-capability", "vram-plan", "wsl", "libcuda", "host-memory", "disk-model-venv", "driver", "wsl-lifecycle", "docker", "nvidia-container-toolkit", "docker-image"]);
    const text = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker", "--vllm-version", "0.11.2");
    t.regex(text.stdout, /ok +docker +Docker engine 28\.5\.1\n/);
    t.regex(text.stdout, /ok +docker-image +vllm\/vllm-openai:v0\.11\.2 is in the engine\n/);
    t.notRegex(text.stdout, /^ +\w+ +(systemd|nvcc) /m, "no systemd or nvcc check");
});

test("with --runtime docker, an engine without the NVIDIA runtime fails, and a facts file without the docker probe's lines says the engine went unchecked", (t) => {
    const noToolkit = factsFile("docker-no-toolkit", healthy);
    fs.appendFileSync(noToolkit, DOCKER_READY.replace(" nvidia", ""));
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", noToolkit, "--runtime", "docker");
    t.is(r.status, 1, r.stdout + r.stderr);
    t.regex(r.stdout, /error +nvidia-container-toolkit +the engine has no nvidia runtime/);
    const bare = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--runtime", "docker", "--json");
    t.is(bare.status, 0, bare.stdout + bare.stderr);
    const docker = (JSON.parse(bare.stdout) as { checks: Array<{ id: string; level: string; message: string }> }).checks.filter((c) => c.id.startsWith("docker"));
    t.deepEqual(
        docker.map((c) => [c.id, c.level]),
        [["docker", "warning"]],
    );
    t.regex(docker[0].message, /were not checked: the output of the docker runtime's probe \(docker-\*= lines\) is missing/);
});

test("with --runtime docker, an engine that refuses the user its socket is named as such, with sudo and the docker group as the way out, not as an engine to start", (t) => {
    const file = factsFile("docker-denied", healthy);
    const denied = "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/info\": dial unix /var/run/docker.sock: connect: permission denied";
    fs.appendFileSync(file, `docker-cli=present\ndocker-engine=unreachable ${Buffer.from(denied).toString("base64")}\n`);
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker", "--json");
    t.is(r.status, 1, r.stdout + r.stderr);
    const docker = (JSON.parse(r.stdout) as { checks: Array<{ id: string; level: string; message: string; fix: string | null }> }).checks.filter((c) => c.id === "docker");
    t.is(docker.length, 1);
    t.is(docker[0].level, "error");
    t.regex(docker[0].message, /socket on the machine of .*docker-denied\.facts refused the probe's user \(permission denied\)/);
    t.notRegex(docker[0].message, /not reachable/);
    t.regex(docker[0].fix ?? "", /`pulumi up` reaches the engine as root/);
    t.regex(docker[0].fix ?? "", /sudo npm run doctor -- --runtime docker/);
    t.regex(docker[0].fix ?? "", /sudo usermod -aG docker \$USER/);
    t.notRegex(docker[0].fix ?? "", /systemctl start docker/);
});

test("the text report's name column fits the longest check name, so every message and fix starts in one column", (t) => {
    const file = factsFile("docker-columns", healthy);
    fs.appendFileSync(file, DOCKER_READY.replace(" nvidia", ""));
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker");
    const section = r.stdout.split("\nChecks\n")[1].split("\n\n")[0].split("\n");
    const rows = section.map((l) => /^  (?:ok|warning|error) +(\S+) +/.exec(l)).filter((m) => m !== null);
    t.true(rows.some((m) => m[1] === "nvidia-container-toolkit"), r.stdout);
    const columns = new Set(rows.map((m) => m[0].length));
    t.is(columns.size, 1, `the messages start in one column:\n${section.join("\n")}`);
    const [column] = columns;
    t.is(column, 2 + 8 + "nvidia-container-toolkit".length + 2);
    const fixes = section.filter((l) => /^ +fix: /.test(l));
    t.true(fixes.length > 0);
    for (const f of fixes) t.is(f.indexOf("fix: "), column, f);
    // Without the docker checks the column fits the systemd runtime's longest name, compute-capability.
    const systemd = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY);
    t.regex(systemd.stdout, /\n  ok      compute-capability  \S/);
});

test("exits 2 on a bad --runtime or --vllm-version, naming the value", (t) => {
    const r = doctor("--runtime", "podman");
    t.is(r.status, 2);
    t.regex(r.stderr, /--runtime "podman" is not one of systemd, docker/);
    const v = doctor("--vllm-version", "latest");
    t.is(v.status, 2);
    t.regex(v.stderr, /--vllm-version "latest" is not a vLLM release/);
});

test("exits 2 on a --vllm-version that cannot be a Docker tag with --runtime docker, naming the option and the value, and takes it with --runtime systemd", (t) => {
    for (const order of [
        ["--vllm-version", "0.11.1+cu128", "--runtime", "docker"],
        ["--runtime", "docker", "--vllm-version", "0.11.1+cu128"],
    ]) {
        const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, ...order);
        t.is(r.status, 2, r.stdout + r.stderr);
        t.regex(r.stderr, /--vllm-version "0\.11\.1\+cu128" cannot name an image of vllm\/vllm-openai with --runtime docker: a Docker tag/);
        t.is(r.stdout, "", "nothing is probed");
    }
    const long = doctor("--facts-file", HEALTHY, "--runtime", "docker", "--vllm-version", `0.11.0${"a".repeat(128)}`);
    t.is(long.status, 2);
    t.regex(long.stderr, /at most 128/);
    const systemd = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", HEALTHY, "--vllm-version", "0.11.1+cu128", "--json");
    t.is(systemd.status, 0, systemd.stdout + systemd.stderr);
});

test("with --docker-image the docker runtime's checks look at the stack's own image, its release from its tag or from --vllm-version, as dockerVllmVersion", (t) => {
    const file = factsFile("docker-own-image", healthy);
    fs.appendFileSync(file, DOCKER_READY);
    const digest = `registry.lan:5000/vllm/vllm-openai@sha256:${"a".repeat(64)}`;
    const pinned = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker", "--docker-image", digest, "--vllm-version", "0.10.1+gptoss");
    t.is(pinned.status, 0, pinned.stdout + pinned.stderr);
    t.regex(pinned.stdout, new RegExp(`ok +docker-image +${digest.replace(/[.@]/g, "\\$&")} is in the engine\n`));
    const tagged = doctor("--nvidia-smi-file", smi("rtx4090"), "--facts-file", file, "--runtime", "docker", "--docker-image", "registry.lan:5000/vllm/vllm-openai:v0.11.0", "--json");
    t.is(tagged.status, 0, tagged.stdout + tagged.stderr);
    const checks = (JSON.parse(tagged.stdout) as { checks: Array<{ id: string; message: string }> }).checks;
    t.regex(checks.find((c) => c.id === "docker-image")?.message ?? "", /^registry\.lan:5000\/vllm\/vllm-openai:v0\.11\.0 is in the engine/);
    t.is(checks.find((c) => c.id === "driver")?.message, "driver 576.02 runs vLLM 0.11.0's CUDA 12.8 image", "the driver is held against the tag's release");
});

test("exits 2 on a --docker-image or --docker-host the schema refuses, on one whose tag names no release without --vllm-version, and on either without --runtime docker, naming the option and the value", (t) => {
    for (const [args, message] of [
        [["--runtime", "docker", "--docker-image", "Not An Image"], /--docker-image "Not An Image": /],
        [["--runtime", "docker", "--docker-image", "vllm/vllm-openai:latest"], /--docker-image "vllm\/vllm-openai:latest": its tag is not a vLLM version, so give the release the image holds with --vllm-version/],
        [["--runtime", "docker", "--docker-host", "http://engine:2375"], /--docker-host "http:\/\/engine:2375": /],
        [["--docker-image", "vllm/vllm-openai:v0.11.0"], /--docker-image and --docker-host are for --runtime docker/],
    ] as const) {
        const r = doctor("--facts-file", HEALTHY, ...args);
        t.is(r.status, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        t.regex(r.stderr, message);
        t.is(r.stdout, "", "nothing is probed");
    }
});

test("exits 2 on an unknown argument and on a bad tier", (t) => {
    const a = doctor("--frobnicate");
    t.is(a.status, 2);
    t.regex(a.stderr, /unknown argument "--frobnicate"\nusage: doctor/);
    const b = doctor("--tier", "32gb");
    t.is(b.status, 2);
    t.regex(b.stderr, /--tier "32gb" is not one of auto, 12gb, 16gb, 24gb/);
});

test("probes this machine when no facts file is given, tolerating a missing nvidia-smi", (t) => {
    const r = doctor("--nvidia-smi-file", smi("rtx4090"), "--json");
    t.true(r.status === 0 || r.status === 1, r.stderr);
    const out = JSON.parse(r.stdout);
    t.is(out.gpus[0].name, "NVIDIA GeForce RTX 4090");
    t.is(out.plan.maxModelLen, 32768);
    const ids = out.checks.map((c: { id: string }) => c.id);
    for (const id of ["gpu", "vram-plan", "wsl", "systemd", "nvcc", "host-memory"]) t.true(ids.includes(id), id);
    t.is(out.ok, r.status === 0);
});
