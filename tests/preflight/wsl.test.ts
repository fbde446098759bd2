import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { Facts } from "../../components/preflight/facts";
import { WHEEL_CUDA, checkDriverForWheels, checkNatServing, checkWslLifecycle } from "../../components/preflight/wsl";

const ROOT = path.resolve(__dirname, "../../..");
const WSL2 = "Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f) (gcc (GCC) 11.2.0) #1 SMP";
const NATIVE = "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) #45-Ubuntu SMP";

function facts(driver: string, procVersion: string = WSL2): Facts {
    return {
        gpus: [{ index: 0, name: "NVIDIA GeForce RTX 4090", memoryTotalMiB: 24564, memoryFreeMiB: 23975, computeCap: "8.9", driverVersion: driver }],
        nvidiaSmiError: null,
        procVersion,
        wslConf: "[boot]\nsystemd=true\n",
        libcudaPresent: true,
        nvccVersion: null,
        memTotalKiB: 32 * 1024 * 1024,
        disks: [],
    } as unknown as Facts;
}

test("knows the CUDA runtime each pinned lock installs", (t) => {
    for (const [version, cuda] of Object.entries(WHEEL_CUDA)) {
        const lock = fs.readFileSync(path.join(ROOT, `locks/vllm-${version}-py3.12-x86_64.txt`), "utf8");
        const m = /^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.(\d+)\./m.exec(lock);
        t.truthy(m, version);
        t.deepEqual([Number(m![1]), Number(m![2])], [cuda.major, cuda.minor], version);
    }
});

test("refuses a Windows driver older than R580 for vLLM 0.24.0's CUDA 13 wheels, naming the update and the CUDA 12 pin", (t) => {
    const c = checkDriverForWheels(facts("576.02"), "0.24.0");
    t.is(c?.level, "error");
    t.is(c?.message, "driver 576.02 is older than R580, which vLLM 0.24.0's CUDA 13.0 wheels need");
    t.regex(c?.fix ?? "", /^update the NVIDIA driver on Windows \(WSL uses the Windows driver.*\) to 580 or newer, or pin vLLM 0\.11\.0/);
});

test("for the docker runtime the driver check's fix names the image options a docker user changes, not the venv's pin", (t) => {
    const c = checkDriverForWheels(facts("576.02"), "0.24.0", "docker");
    t.is(c?.level, "error");
    t.is(c?.message, "driver 576.02 is older than R580, which vLLM 0.24.0's CUDA 13.0 image needs");
    t.regex(c?.fix ?? "", /to 580 or newer, or use vLLM 0\.11\.0's image, built for CUDA 12\.8 \(dockerImage vllm\/vllm-openai:v0\.11\.0; dockerVllmVersion 0\.11\.0/);
    t.notRegex(c?.fix ?? "", /python\./);
    t.is(checkDriverForWheels(facts("581.15"), "0.24.0", "docker")?.message, "driver 581.15 runs vLLM 0.24.0's CUDA 13.0 image");
});

test("passes a driver of R580 or newer for CUDA 13 and R525 or newer for CUDA 12", (t) => {
    t.is(checkDriverForWheels(facts("581.15"), "0.24.0")?.level, "ok");
    t.is(checkDriverForWheels(facts("576.02"), "0.11.0")?.level, "ok");
    t.is(checkDriverForWheels(facts("516.94"), "0.11.0")?.level, "error");
});

test("skips the driver check for a release it has no lock for", (t) => {
    t.is(checkDriverForWheels(facts("576.02"), "0.10.1+gptoss"), null);
    t.is(checkDriverForWheels(facts("576.02"), null), null);
});

test("warns on WSL2 that the service lives only while WSL runs, with .wslconfig and Task Scheduler as the fix", (t) => {
    const c = checkWslLifecycle(facts("581.15"));
    t.is(c?.level, "warning");
    t.regex(c?.fix ?? "", /vmIdleTimeout=-1 under \[wsl2\].*instanceIdleTimeout=-1.*Task Scheduler task "At startup" running `wsl\.exe -d <distribution> --exec \/bin\/true`/);
    t.is(checkWslLifecycle(facts("581.15", NATIVE)), null);
});

test("the WSL lifecycle warning names what brings vLLM back after WSL starts: systemd's service, or the engine's container for the docker runtime", (t) => {
    const systemd = checkWslLifecycle(facts("581.15"), "systemd");
    t.regex(systemd?.message ?? "", /so the service runs only while WSL does$/);
    t.regex(systemd?.fix ?? "", /\(systemd then starts the service\)/);
    const docker = checkWslLifecycle(facts("581.15"), "docker");
    t.regex(docker?.message ?? "", /so the container runs only while WSL does$/);
    t.regex(docker?.fix ?? "", /`wsl\.exe -d <distribution> --exec \/bin\/true` \(the Docker engine then starts and restarts the container; with Docker Desktop, set it to start when you sign in\)/);
    t.notRegex(`${docker?.message} ${docker?.fix}`, /systemd|the service/);
    t.is(checkWslLifecycle(facts("581.15", NATIVE), "docker"), null);
});

test("warns that a non-loopback host is not reachable from the LAN under WSL's NAT networking", (t) => {
    const c = checkNatServing(facts("581.15"), "0.0.0.0");
    t.is(c?.level, "warning");
    t.regex(c?.message ?? "", /^server\.host "0\.0\.0\.0" serves beyond loopback/);
    t.regex(c?.fix ?? "", /networkingMode=mirrored.*netsh interface portproxy add v4tov4/);
    t.is(checkNatServing(facts("581.15"), "127.0.0.1"), null);
    t.is(checkNatServing(facts("581.15", NATIVE), "0.0.0.0"), null);
});
