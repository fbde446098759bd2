// Checks that concern Windows under WSL2: what the Windows driver, WSL's VM lifecycle and its networking
// mean for the service. Each names its fix; the ones WSL cannot see from inside (.wslconfig, Task
// Scheduler) say how to check them.
import type { Check } from "./checks";
import { Facts, wslKind } from "./facts";

/** The hosts config/schema.ts treats as loopback. */
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * The CUDA runtime each pinned release's wheels carry (nvidia-cuda-runtime in its lock: 12.8.90 in
 * locks/vllm-0.11.0-py3.12-x86_64.txt, 13.0.96 in locks/vllm-0.24.0-py3.12-x86_64.txt).
 */
export const WHEEL_CUDA: Readonly<Record<string, { readonly major: number; readonly minor: number }>> = {
    "0.11.0": { major: 12, minor: 8 },
    "0.24.0": { major: 13, minor: 0 },
};

/**
 * The oldest driver branch that runs a CUDA major's runtime: CUDA 13.x needs R580 (its release notes' driver
 * table); a 12.x runtime runs on any R525 or newer through CUDA's minor-version compatibility. Under WSL2
 * nvidia-smi reports the Windows driver, which is the one that counts.
 */
export function minDriverBranch(cudaMajor: number): number {
    return cudaMajor >= 13 ? 580 : 525;
}

/**
 * The Windows (or Linux) driver is new enough for the CUDA runtime of the vLLM release that serves: the
 * venv's wheels (runtime systemd) or the image's build of that release (runtime docker). The fix names
 * what a user of that runtime changes to go back to a CUDA 12 release.
 */
export function checkDriverForWheels(f: Facts, vllmVersion: string | null, runtime: "systemd" | "docker" = "systemd"): Check | null {
    const gpu = f.gpus?.[0];
    const cuda = vllmVersion === null ? undefined : WHEEL_CUDA[vllmVersion];
    if (gpu === undefined || cuda === undefined) return null;
    const branch = Number.parseInt(gpu.driverVersion.split(".")[0], 10);
    const need = minDriverBranch(cuda.major);
    const wsl = wslKind(f.procVersion) === "wsl2";
    const build = runtime === "docker" ? `vLLM ${vllmVersion}'s CUDA ${cuda.major}.${cuda.minor} image` : `vLLM ${vllmVersion}'s CUDA ${cuda.major}.${cuda.minor} wheels`;
    if (!Number.isFinite(branch)) {
        return { id: "driver", level: "warning", message: `driver version ${JSON.stringify(gpu.driverVersion)} is not NNN.NN`, fix: null };
    }
    if (branch >= need) {
        return { id: "driver", level: "ok", message: `driver ${gpu.driverVersion} runs ${build}`, fix: null };
    }
    const cuda12 =
        runtime === "docker"
            ? ", or use vLLM 0.11.0's image, built for CUDA 12.8 (dockerImage vllm/vllm-openai:v0.11.0; dockerVllmVersion 0.11.0 for an image whose tag is not the release)"
            : ", or pin vLLM 0.11.0 (python.vllmVersion and python.lockFile locks/vllm-0.11.0-py3.12-x86_64.txt), built for CUDA 12.8";
    return {
        id: "driver",
        level: "error",
        message: `driver ${gpu.driverVersion} is older than R${need}, which ${build} ${runtime === "docker" ? "needs" : "need"}`,
        fix:
            (wsl
                ? `update the NVIDIA driver on Windows (WSL uses the Windows driver; never install one inside WSL) to ${need} or newer`
                : `update the NVIDIA driver to ${need} or newer`) + (cuda.major >= 13 ? cuda12 : ""),
    };
}

/**
 * WSL stops a distribution when no Windows process holds it and the VM after vmIdleTimeout, and nothing starts
 * WSL when Windows boots (microsoft/WSL#9231): vLLM (the systemd service or the container) is up only while WSL
 * runs. Neither setting is visible from inside, so this is always a warning on WSL2, with what to set and how to
 * check it.
 */
export function checkWslLifecycle(f: Facts, runtime: "systemd" | "docker" = "systemd"): Check | null {
    if (wslKind(f.procVersion) !== "wsl2") return null;
    // What brings vLLM back once the distribution runs: systemd starts the service; the engine restarts the
    // container (its restart policy is unless-stopped), and Docker Desktop's engine runs only with Docker Desktop.
    const served = runtime === "docker" ? "the container" : "the service";
    const starts =
        runtime === "docker"
            ? "the Docker engine then starts and restarts the container; with Docker Desktop, set it to start when you sign in"
            : "systemd then starts the service";
    return {
        id: "wsl-lifecycle",
        level: "warning",
        message: `WSL shuts an idle distribution and its VM down and does not start at Windows boot, so ${served} runs only while WSL does`,
        fix:
            "in %UserProfile%\\.wslconfig set vmIdleTimeout=-1 under [wsl2] and instanceIdleTimeout=-1 under [general], run `wsl --shutdown` once, " +
            `and add a Task Scheduler task "At startup" running \`wsl.exe -d <distribution> --exec /bin/true\` (${starts}); ` +
            "check with `type %UserProfile%\\.wslconfig` and `schtasks /query /tn <task>` in Windows",
    };
}

/**
 * Under WSL's default NAT networking a port bound to 0.0.0.0 inside WSL is forwarded to Windows' own localhost
 * only; other machines on the LAN do not reach it without mirrored networking or a port proxy.
 */
export function checkNatServing(f: Facts, serverHost: string | null): Check | null {
    if (wslKind(f.procVersion) !== "wsl2" || serverHost === null || LOOPBACK.has(serverHost)) return null;
    return {
        id: "wsl-networking",
        level: "warning",
        message: `server.host ${JSON.stringify(serverHost)} serves beyond loopback, but under WSL's default NAT networking the LAN does not reach WSL's ports`,
        fix:
            "set networkingMode=mirrored under [wsl2] in %UserProfile%\\.wslconfig (Windows 11 22H2+) and allow the port in the Hyper-V firewall " +
            "(`New-NetFirewallHyperVRule`), or forward it from Windows with `netsh interface portproxy add v4tov4 listenport=<port> connectaddress=<WSL IP> connectport=<port>` " +
            "(the WSL IP changes at every boot); check with `wslinfo --networking-mode` inside WSL",
    };
}
