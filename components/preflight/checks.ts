// The preflight's checks: pure functions of the facts (facts.ts) and the VRAM plan, each answering with a
// level, what it saw, and what to do about it.
import { parseComputeCap, smName } from "../plan/gpu";
import { GPT_OSS_20B, PLANNER_CONSTANTS, PlanResult, computeCapabilityProblem } from "../plan/planner";
import type { Claim } from "../pieces/observe";
import { checkDriverForWheels, checkNatServing, checkWslLifecycle } from "./wsl";
import { DEFAULT_PROBE_OPTIONS, DiskFact, DiskRole, Facts, kernelVersion, parseNvccVersion, wslConfEnablesSystemd, wslKind } from "./facts";
import { checkOwnership } from "./ownership";

export type Level = "error" | "warning" | "ok";

export interface Check {
    /** Stable identifier, e.g. "systemd"; tools and tests match on it. */
    readonly id: string;
    readonly level: Level;
    /** What was found, in one sentence. */
    readonly message: string;
    /** What to do about it; null when nothing needs doing. */
    readonly fix: string | null;
}

/**
 * Disk each directory needs, in bytes. Estimates, stated so they can be checked:
 *  - model: gpt-oss-20b's three safetensors files (13.8 GB) plus tokenizer and config files; vLLM's
 *    default ignore patterns skip original/ (another 13.8 GB) and metal/.
 *  - venv: vLLM with PyTorch's CUDA 12.8 build and its nvidia-* wheels installs to ~10 GB; uv keeps the
 *    wheels in its cache (~6 GB, usually on the same filesystem); torch.compile's and FlashInfer's JIT
 *    caches add ~2 GB.
 */
export const DISK_NEEDS: Readonly<Record<DiskRole, number>> = {
    model: GPT_OSS_20B.downloadBytes + 0.2e9,
    venv: 18e9,
};

/**
 * The same for the docker runtime, where vLLM comes in the image: the venv holds only the Hub client that
 * downloads the model (tens of MB, and uv's cache of it). The image itself (~20 GB) goes to the engine's
 * data root, which this check does not see.
 */
export const DOCKER_DISK_NEEDS: Readonly<Record<DiskRole, number>> = {
    model: DISK_NEEDS.model,
    venv: 1e9,
};

/** Host RAM the rest of the distribution needs beside vLLM (systemd, sshd, a shell). */
export const SYSTEM_RESERVE_GIB = 1;

/** The first CUDA toolkit FlashInfer builds with (its kernels use 12.8 math headers, flashinfer-ai/flashinfer#1282). */
const NVCC_MIN = { major: 12, minor: 8 };
/** FlashInfer's JIT refuses sm_120 (RTX 50xx) below CUDA 12.9 (vllm-project/vllm#50705, flashinfer-ai/flashinfer#3633). */
const NVCC_MIN_SM120 = { major: 12, minor: 9 };

const versionLess = (a: { major: number; minor: number }, b: { major: number; minor: number }): boolean =>
    a.major !== b.major ? a.major < b.major : a.minor < b.minor;

const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(1)} GB`;
const gib = (x: number): string => `${x.toFixed(1)} GiB`;
const ok = (id: string, message: string): Check => ({ id, level: "ok", message, fix: null });

const WSL_DRIVER_FIX =
    "install or update the NVIDIA driver on Windows: WSL2 gets nvidia-smi and libcuda.so.1 from it under /usr/lib/wsl/lib; " +
    "never install a Linux NVIDIA driver inside WSL";

export function checkGpu(f: Facts): Check {
    const wsl = wslKind(f.procVersion) === "wsl2";
    if (f.gpus === null) {
        return {
            id: "gpu",
            level: "error",
            message: `no GPU: ${f.nvidiaSmiError ?? "nvidia-smi gave no answer"}`,
            fix: wsl ? WSL_DRIVER_FIX : "install the NVIDIA driver so that `nvidia-smi` lists the card",
        };
    }
    if (f.gpus.length === 0) {
        return {
            id: "gpu",
            level: "error",
            message: "nvidia-smi lists no GPU",
            fix: wsl ? WSL_DRIVER_FIX : "check that the card is seated and the NVIDIA driver loaded (`nvidia-smi`)",
        };
    }
    const g = f.gpus[0];
    const more = f.gpus.length > 1 ? ` (${f.gpus.length - 1} more ignored: the plan uses GPU 0 only)` : "";
    return ok("gpu", `GPU ${g.index}: ${g.name}, ${g.memoryTotalMiB} MiB (${g.memoryFreeMiB} MiB free), compute ${g.computeCap}, driver ${g.driverVersion}${more}`);
}

export function checkComputeCapability(f: Facts): Check | null {
    const g = f.gpus?.[0];
    if (g === undefined) return null;
    const problem = computeCapabilityProblem(g.name, g.computeCap);
    if (problem !== null) {
        return {
            id: "compute-capability",
            level: "error",
            message: problem.replace(/^gpu: /, ""),
            fix: "run gpt-oss-20b on an Ampere or newer card (RTX 30xx, 40xx, 50xx, A-series, H100): no setting makes sm_75 work",
        };
    }
    const cc = parseComputeCap(g.computeCap);
    return ok("compute-capability", `${smName(cc as { major: number; minor: number })} runs gpt-oss-20b's MXFP4 weights`);
}

/** The planner's verdict as a check. Its compute-capability message is left to that check. */
export function checkPlan(result: PlanResult | null): Check | null {
    if (result === null) return null;
    if (result.ok) {
        const p = result.plan;
        return ok(
            "vram-plan",
            `${p.maxModelLen}-token context, ${p.maxNumSeqs} sequences, ${p.memory.kvCacheTokens} tokens of KV cache` +
                (p.cpuOffloadGb > 0 ? `, ${p.cpuOffloadGb} GiB of weights offloaded to host RAM` : ""),
        );
    }
    const errors = result.errors.filter((e) => !/^gpu: .* has compute capability/.test(e));
    if (errors.length === 0) return null;
    return {
        id: "vram-plan",
        level: "error",
        message: errors.join("\n"),
        fix: "change the options named above (stack config `gpu` section; `pulumi config set --path gpu.<option> <value>`), or leave them unset",
    };
}

export function checkWsl(f: Facts): Check {
    const kind = wslKind(f.procVersion);
    const kernel = (f.procVersion ?? "").trim().split(/\s+/)[2] ?? "?";
    if (f.procVersion === null) {
        return { id: "wsl", level: "warning", message: "could not read /proc/version", fix: "run the doctor inside the WSL2 distribution" };
    }
    if (kind === "wsl2") return ok("wsl", `WSL2 (kernel ${kernel})`);
    if (kind === "wsl1") {
        return {
            id: "wsl",
            level: "error",
            message: `WSL1 (kernel ${kernel}): WSL1 has no GPU access`,
            fix: "convert the distribution from Windows: `wsl --set-version <distro> 2` (list them with `wsl -l -v`)",
        };
    }
    return {
        id: "wsl",
        level: "warning",
        message: `not WSL (kernel ${kernel}): fine on native Linux, where the Linux NVIDIA driver provides libcuda`,
        fix: "nothing to do on native Linux; on Windows, run the stack inside a WSL2 distribution",
    };
}

export function checkSystemd(f: Facts): Check {
    const wsl = wslKind(f.procVersion) === "wsl2";
    if (f.pid1Comm === "systemd") return ok("systemd", "systemd is PID 1");
    const pid1 = f.pid1Comm === null ? "unknown" : JSON.stringify(f.pid1Comm);
    if (wsl && !wslConfEnablesSystemd(f.wslConf)) {
        return {
            id: "systemd",
            level: "error",
            message: `PID 1 is ${pid1}, and /etc/wsl.conf ${f.wslConf === null ? "does not exist" : "does not enable systemd"}: the vLLM service needs systemd`,
            fix: "add\n[boot]\nsystemd=true\nto /etc/wsl.conf, then run `wsl --shutdown` from Windows and reopen the distribution",
        };
    }
    if (wsl) {
        return {
            id: "systemd",
            level: "error",
            message: `/etc/wsl.conf enables systemd, but PID 1 is ${pid1}: the distribution has not restarted since`,
            fix: "run `wsl --shutdown` from Windows, then reopen the distribution (WSL 0.67.6 or newer is needed: `wsl --update`)",
        };
    }
    return {
        id: "systemd",
        level: "error",
        message: `PID 1 is ${pid1}, not systemd: the vLLM service is a systemd unit`,
        fix: "boot the machine with systemd as init, or use runtime \"docker\"",
    };
}

export function checkLibcuda(f: Facts, wslLibDir: string = DEFAULT_PROBE_OPTIONS.wslLibDir): Check | null {
    if (wslKind(f.procVersion) !== "wsl2") return null;
    if (f.libcudaPresent) return ok("libcuda", `${wslLibDir}/libcuda.so.1 is there`);
    return {
        id: "libcuda",
        level: "error",
        message: `${wslLibDir}/libcuda.so.1 is missing: CUDA cannot reach the GPU from WSL2`,
        fix: WSL_DRIVER_FIX + "; then run `wsl --shutdown` and reopen the distribution",
    };
}

export function checkNvcc(f: Facts): Check {
    const install =
        "install CUDA toolkit 12.8 or 12.9 for FlashInfer's JIT (on WSL-Ubuntu: NVIDIA's wsl-ubuntu repository, " +
        "`apt-get install cuda-toolkit-12-8`; not the `cuda` meta-package, which brings a Linux driver) and put it at cuda.home";
    if (f.nvccVersion === null) {
        return {
            id: "nvcc",
            level: "error",
            message: "nvcc not found: FlashInfer compiles its sampling and attention kernels with nvcc on first use",
            fix: install,
        };
    }
    const v = parseNvccVersion(f.nvccVersion);
    if (v === null) {
        return { id: "nvcc", level: "warning", message: `cannot read a version in \`nvcc --version\`: ${JSON.stringify(f.nvccVersion.trim())}`, fix: install };
    }
    const version = `${v.major}.${v.minor}`;
    if (versionLess(v, NVCC_MIN)) {
        return { id: "nvcc", level: "error", message: `nvcc ${version} is older than 12.8, the first CUDA that FlashInfer builds with`, fix: install };
    }
    const cc = parseComputeCap(f.gpus?.[0]?.computeCap ?? "");
    if (cc !== null && cc.major === 12 && versionLess(v, NVCC_MIN_SM120)) {
        return {
            id: "nvcc",
            level: "warning",
            message: `nvcc ${version} with an ${smName(cc)} card: recent FlashInfer builds JIT kernels for sm_120 only with CUDA 12.9 or newer`,
            fix: "install CUDA toolkit 12.9 (`apt-get install cuda-toolkit-12-9`) and point cuda.home at it",
        };
    }
    if (v.major >= 13) {
        return {
            id: "nvcc",
            level: "warning",
            message: `nvcc ${version} is a newer major release than the CUDA 12.8 build of PyTorch that vLLM 0.11 installs`,
            fix: "install CUDA toolkit 12.8 or 12.9 beside it and point cuda.home at that, so JIT kernels match the runtime",
        };
    }
    return ok("nvcc", `nvcc ${version}`);
}

export function checkHostMemory(f: Facts, result: PlanResult | null): Check {
    const wsl = wslKind(f.procVersion) === "wsl2";
    const planned = result !== null && result.ok ? result.plan : null;
    const vllm = planned?.hostMemoryGiB ?? PLANNER_CONSTANTS.hostBaseGiB;
    const need = vllm + SYSTEM_RESERVE_GIB;
    if (f.memTotalKiB === null) {
        return { id: "host-memory", level: "warning", message: "could not read MemTotal from /proc/meminfo", fix: "check /proc/meminfo" };
    }
    const have = f.memTotalKiB / 1024 ** 2;
    const why =
        planned !== null && planned.cpuOffloadGb > 0
            ? `vLLM needs ${gib(vllm)} with ${planned.cpuOffloadGb} GiB of weights offloaded`
            : `vLLM needs ${gib(vllm)}`;
    if (have < need) {
        return {
            id: "host-memory",
            level: "error",
            message: `MemTotal is ${gib(have)}; ${why}, plus ${gib(SYSTEM_RESERVE_GIB)} for the system`,
            fix: wsl
                ? `raise memory= under [wsl2] in %UserProfile%\\.wslconfig to at least ${Math.ceil(need)}GB (WSL2 takes half of Windows' RAM by default), then run \`wsl --shutdown\``
                : `add RAM, or offload fewer weights (gpu.cpuOffloadGb)`,
        };
    }
    return ok("host-memory", `MemTotal ${gib(have)}; ${why}`);
}

/**
 * `wslPinSwitch`: whether the vLLM release to be installed knows VLLM_WSL2_ENABLE_PIN_MEMORY
 * (vllm-project/vllm#41496); null when the caller does not know. The variable is absent from vLLM
 * 0.11.0's envs.py (tests/fixtures/vllm/0.11.0-envs.txt), so there offloading under WSL2 cannot work.
 */
export function checkPinnedMemory(f: Facts, result: PlanResult | null, wslPinSwitch: boolean | null = null): Check | null {
    if (result === null || !result.ok || !result.plan.requiresPinnedMemory) return null;
    if (wslKind(f.procVersion) !== "wsl2") return ok("pinned-memory", "native Linux pins the offloaded weights");
    const k = kernelVersion(f.procVersion);
    if (k !== null && (k[0] < 4 || (k[0] === 4 && (k[1] < 19 || (k[1] === 19 && k[2] < 121))))) {
        return {
            id: "pinned-memory",
            level: "error",
            message: `cpu offload needs pinned memory, which WSL2 kernels before 4.19.121 lack (this one is ${k.join(".")})`,
            fix: "update WSL from Windows: `wsl --update`, then `wsl --shutdown`",
        };
    }
    const offload = result.plan.cpuOffloadGb;
    const why =
        `the plan offloads ${offload} GiB of weights, which vLLM's V1 engine keeps in pinned memory; vLLM turns pinning off ` +
        `under WSL2 and then refuses --cpu-offload-gb ("V1 CPU offloading requires uva (pin memory) support")`;
    const bigger = "use a card with 16 GB or more so nothing is offloaded";
    if (wslPinSwitch === false) {
        return {
            id: "pinned-memory",
            level: "error",
            message: `${why}, and the vLLM release to be installed has no VLLM_WSL2_ENABLE_PIN_MEMORY switch`,
            fix: `${bigger}, run on native Linux, or install a vLLM release that includes vllm-project/vllm#41496`,
        };
    }
    return {
        id: "pinned-memory",
        level: "warning",
        message: wslPinSwitch === true ? `the plan offloads ${offload} GiB of weights into pinned memory, which WSL2 grants only in limited amounts` : why,
        fix:
            wslPinSwitch === true
                ? `set VLLM_WSL2_ENABLE_PIN_MEMORY=1 in the service environment; if loading fails to pin, ${bigger}`
                : "use a vLLM release that includes vllm-project/vllm#41496 and set VLLM_WSL2_ENABLE_PIN_MEMORY=1 in the service environment " +
                  `(vLLM 0.11.x has no such switch), or ${bigger}`,
    };
}

export function checkDisk(f: Facts, runtime: "systemd" | "docker" = "systemd"): Check[] {
    const needs = runtime === "docker" ? DOCKER_DISK_NEEDS : DISK_NEEDS;
    const checks: Check[] = [];
    // Roles on one filesystem share its free space.
    const groups = new Map<string, DiskFact[]>();
    for (const d of f.disks) {
        const key = d.device ?? `path:${d.path}`;
        groups.set(key, [...(groups.get(key) ?? []), d]);
    }
    for (const disks of groups.values()) {
        const id = `disk-${disks.map((d) => d.role).join("-")}`;
        const what = disks.map((d) => `${d.role} (${d.path})`).join(" and ");
        const need = disks.reduce((sum, d) => sum + Math.max(0, needs[d.role] - d.usedBytes), 0);
        const free = disks[0].freeBytes;
        if (free === null) {
            checks.push({ id, level: "warning", message: `could not measure free space for ${what}`, fix: "check `df -h` by hand" });
        } else if (free < need) {
            checks.push({
                id,
                level: "error",
                message: `${gb(free)} free for ${what}; ${gb(need)} needed (model files ${gb(needs.model)}, ${runtime === "docker" ? "the Hub client's venv" : "venv and caches"} ${gb(needs.venv)}, less what is already there${runtime === "docker" ? "; the image goes to Docker's own disk" : ""})`,
                fix:
                    "free space there, or point model.cacheDir / python.venvPath at a larger filesystem; under WSL2 the Windows drive " +
                    "holding the distribution's ext4.vhdx must have the space too (df inside WSL shows the virtual disk's limit)",
            });
        } else {
            checks.push(ok(id, `${gb(free)} free for ${what}; ${gb(need)} needed`));
        }
    }
    return checks;
}

export interface CheckOptions {
    /** See checkPinnedMemory. */
    readonly wslPinSwitch?: boolean | null;
    /** See checkOwnership. */
    readonly claims?: readonly Claim[];
    /** The vLLM release that serves (the driver check); null or absent skips it. */
    readonly vllmVersion?: string | null;
    /** Where that release comes from, for the driver check's fix: the venv (default) or the image. */
    readonly runtime?: "systemd" | "docker";
    /** server.host (the WSL networking check); null or absent skips it. */
    readonly serverHost?: string | null;
}

/**
 * Every check that applies to the runtime, in the order a person fixes them: card, plan, WSL, services,
 * toolchain, resources. The docker runtime needs neither systemd nor a CUDA toolkit on the host: its
 * image brings the toolkit and the engine runs the container; its own checks (the engine, the NVIDIA
 * runtime, the image) come from its probe (components/pieces/dockerRuntime.ts: dockerChecks).
 */
export function runChecks(f: Facts, result: PlanResult | null, options: CheckOptions = {}): Check[] {
    const host = options.runtime !== "docker";
    const all: Array<Check | null> = [
        checkGpu(f),
        checkComputeCapability(f),
        checkPlan(result),
        checkWsl(f),
        host ? checkSystemd(f) : null,
        checkLibcuda(f),
        host ? checkNvcc(f) : null,
        checkHostMemory(f, result),
        checkPinnedMemory(f, result, options.wslPinSwitch ?? null),
        ...checkOwnership(f, options.claims ?? []),
        ...checkDisk(f, options.runtime),
        // Windows and WSL: components/preflight/wsl.ts.
        checkDriverForWheels(f, options.vllmVersion ?? null, options.runtime),
        checkWslLifecycle(f, options.runtime),
        checkNatServing(f, options.serverHost ?? null),
    ];
    return all.filter((c): c is Check => c !== null);
}
