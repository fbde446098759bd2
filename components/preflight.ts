// Preflight: does this machine run vLLM with gpt-oss-20b? Two halves, so the same code serves the
// local doctor and a remote converge:
//  - gatherFacts() returns the text of a bash probe that prints what it finds as key=value lines
//    (multi-line values base64), and parseProbeOutput() turns that text back into Facts. The probe needs
//    no root, changes nothing, and tolerates missing tools (no nvidia-smi, no nvcc).
//  - The checks are pure functions of Facts (and the VRAM plan), each answering with a level, what it
//    saw, and what to do about it.
import { defaults } from "./config";
import { GpuRecord, NVIDIA_SMI_QUERY, parseComputeCap, parseNvidiaSmiCsv, smName } from "./gpu";
import { GPT_OSS_20B, PLANNER_CONSTANTS, PlanResult, computeCapabilityProblem } from "./planner";
import type { Claim } from "./observe";
import { fillAsset, ownershipLibrary, q as shellQuote } from "./shell";
import { checkDriverForWheels, checkNatServing, checkWslLifecycle } from "./wslChecks";

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

export type DiskRole = "model" | "venv";

export interface DiskFact {
    readonly role: DiskRole;
    /** The configured directory (it may not exist yet; the probe measures its nearest existing parent). */
    readonly path: string;
    /** Device number of the filesystem (stat %d): two roles with the same one share their free space. */
    readonly device: string | null;
    readonly freeBytes: number | null;
    /** What the directory already holds (a model downloaded earlier, an installed venv). */
    readonly usedBytes: number;
}

export interface Facts {
    /** null when nvidia-smi is missing or failed; see nvidiaSmiError. */
    readonly gpus: GpuRecord[] | null;
    readonly nvidiaSmiError: string | null;
    /** /proc/version: WSL2 kernels say "microsoft-standard(-WSL2)", WSL1 says "Microsoft". */
    readonly procVersion: string | null;
    /** /etc/wsl.conf, null when the file does not exist. */
    readonly wslConf: string | null;
    /** <wslLibDir>/libcuda.so.1 exists (put there by the Windows driver). */
    readonly libcudaPresent: boolean;
    /** `nvcc --version` output, null when no nvcc was found. */
    readonly nvccVersion: string | null;
    readonly memTotalKiB: number | null;
    readonly disks: DiskFact[];
    /** /proc/1/comm: "systemd" when systemd is PID 1, "init" under WSL's own init. */
    readonly pid1Comm: string | null;
    /** What is at each path the stack would take (own.sh's own_state), in the order of the claims. */
    readonly claims: ClaimFact[];
}

export interface ClaimFact {
    readonly path: string;
    /** absent | owned | empty | file <sha256> | holds <names> | other <type> */
    readonly state: string;
}

export interface ProbeOptions {
    /** model.cacheDir */
    readonly modelDir: string;
    /** python.venvPath */
    readonly venvDir: string;
    /** cuda.home: nvcc is looked for at <cudaHome>/bin/nvcc first, then on PATH. */
    readonly cudaHome: string;
    /** cuda.wslLibDir */
    readonly wslLibDir: string;
    /** The paths the stack would take (each piece's claims), looked at against the box's record. */
    readonly claims: readonly Claim[];
}

/** The config schema's defaults. */
export const DEFAULT_PROBE_OPTIONS: ProbeOptions = {
    modelDir: defaults.model.cacheDir,
    venvDir: defaults.python.venvPath,
    cudaHome: defaults.cuda.home,
    wslLibDir: defaults.cuda.wslLibDir,
    claims: [],
};

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

/** Host RAM the rest of the distribution needs beside vLLM (systemd, sshd, a shell). */
export const SYSTEM_RESERVE_GIB = 1;

/** The first CUDA toolkit FlashInfer builds with (its kernels use 12.8 math headers, flashinfer-ai/flashinfer#1282). */
const NVCC_MIN = { major: 12, minor: 8 };
/** FlashInfer's JIT refuses sm_120 (RTX 50xx) below CUDA 12.9 (vllm-project/vllm#50705, flashinfer-ai/flashinfer#3633). */
const NVCC_MIN_SM120 = { major: 12, minor: 9 };

/**
 * The probe: a bash script printing one `key=value` per line, ending with `end=1` so a cut-off run is
 * told apart from a finished one. Values that can span lines are base64 (no newlines); "-" means absent.
 */
export function gatherFacts(options: Partial<ProbeOptions> = {}): string {
    const o = { ...DEFAULT_PROBE_OPTIONS, ...options };
    // components/assets/preflight_probe.sh; every configured path goes in quoted.
    return fillAsset("preflight_probe.sh", {
        WSL_LIB: shellQuote(o.wslLibDir),
        NVIDIA_SMI_ARGS: NVIDIA_SMI_QUERY.replace(/^nvidia-smi /, ""),
        NVCC: shellQuote(o.cudaHome + "/bin/nvcc"),
        MODEL_DIR: shellQuote(o.modelDir),
        VENV_DIR: shellQuote(o.venvDir),
        CLAIMS: claimsProbe(o.claims),
    });
}

/** What is at each path the stack would take, as own.sh sees it: `claim.N=<base64 of path TAB state>`. */
function claimsProbe(claims: readonly Claim[]): string {
    if (claims.length === 0) return "";
    const lines = claims.map((c, i) => `emit claim.${i} "$(printf '%s\\t%s' ${shellQuote(c.path)} "$(own_state ${shellQuote(c.path)})" | b64)"`);
    return `${ownershipLibrary()}\n${lines.join("\n")}`;
}

export type ProbeParse = { readonly ok: true; readonly facts: Facts } | { readonly ok: false; readonly errors: string[] };

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parses the probe's output. Unknown keys are ignored (a newer probe may say more). */
export function parseProbeOutput(text: string): ProbeParse {
    const errors: string[] = [];
    const kv = new Map<string, string>();
    text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.trim();
        if (line === "") return;
        const eq = line.indexOf("=");
        if (eq <= 0) {
            errors.push(`line ${i + 1} ${JSON.stringify(line)}: not key=value`);
            return;
        }
        kv.set(line.slice(0, eq), line.slice(eq + 1));
    });
    if (kv.get("probe") !== "1") errors.push(`probe=1 is missing: this is not the output of gatherFacts()`);
    if (kv.get("end") !== "1") errors.push(`end=1 is missing: the probe was cut off`);

    const decode = (key: string): string | null => {
        const v = kv.get(key);
        if (v === undefined || v === "-") return null;
        if (!B64.test(v)) {
            errors.push(`${key}: ${JSON.stringify(v)} is not base64`);
            return null;
        }
        return Buffer.from(v, "base64").toString("utf8");
    };
    const count = (key: string): number | null => {
        const v = kv.get(key);
        if (v === undefined || v === "" || v === "-") return null;
        if (!/^\d+$/.test(v)) {
            errors.push(`${key}: ${JSON.stringify(v)} is not a whole number`);
            return null;
        }
        return Number(v);
    };

    let gpus: GpuRecord[] | null = null;
    let nvidiaSmiError: string | null = null;
    const rc = count("nvidia_smi_rc");
    const smi = decode("nvidia_smi") ?? "";
    if (rc === 127) nvidiaSmiError = "nvidia-smi not found";
    else if (rc !== 0) nvidiaSmiError = `nvidia-smi failed (exit ${rc ?? "?"}): ${smi.trim().split("\n")[0] ?? ""}`.trim();
    else {
        const parsed = parseNvidiaSmiCsv(smi);
        if (parsed.ok) gpus = parsed.gpus;
        else nvidiaSmiError = parsed.errors.join("; ");
    }

    const disks: DiskFact[] = [];
    for (const role of ["model", "venv"] as const) {
        const path = kv.get(`disk.${role}.path`);
        if (path === undefined) continue;
        const device = kv.get(`disk.${role}.device`);
        disks.push({
            role,
            path,
            device: device === undefined || device === "" ? null : device,
            freeBytes: count(`disk.${role}.free_bytes`),
            usedBytes: count(`disk.${role}.used_bytes`) ?? 0,
        });
    }

    const claims: ClaimFact[] = [];
    for (let i = 0; kv.has(`claim.${i}`); i++) {
        const [path, state] = (decode(`claim.${i}`) ?? "").split("\t");
        claims.push({ path, state: state ?? "" });
    }

    const facts: Facts = {
        gpus,
        nvidiaSmiError,
        procVersion: decode("proc_version"),
        wslConf: decode("wsl_conf"),
        libcudaPresent: kv.get("libcuda") === "1",
        nvccVersion: decode("nvcc_version"),
        memTotalKiB: count("mem_total_kib"),
        disks,
        pid1Comm: kv.get("pid1_comm") || null,
        claims,
    };
    return errors.length > 0 ? { ok: false, errors } : { ok: true, facts };
}

/** The probe text for given facts: the inverse of parseProbeOutput, for fixtures and fakes. */
export function formatProbeOutput(f: Facts): string {
    const b64 = (s: string | null): string => (s === null ? "-" : Buffer.from(s, "utf8").toString("base64"));
    const csv = (f.gpus ?? [])
        .map((g) => [g.index, g.name, g.memoryTotalMiB, g.memoryFreeMiB, g.computeCap, g.driverVersion].join(", "))
        .join("\n");
    const lines = [
        "probe=1",
        `nvidia_smi_rc=${f.gpus !== null ? 0 : f.nvidiaSmiError === "nvidia-smi not found" ? 127 : 9}`,
        `nvidia_smi=${b64(f.gpus !== null ? csv : (f.nvidiaSmiError ?? ""))}`,
        `proc_version=${b64(f.procVersion)}`,
        `wsl_conf=${b64(f.wslConf)}`,
        `libcuda=${f.libcudaPresent ? 1 : 0}`,
        `nvcc_version=${b64(f.nvccVersion)}`,
        `mem_total_kib=${f.memTotalKiB ?? ""}`,
        `pid1_comm=${f.pid1Comm ?? ""}`,
        ...f.disks.flatMap((d) => [
            `disk.${d.role}.path=${d.path}`,
            `disk.${d.role}.device=${d.device ?? ""}`,
            `disk.${d.role}.free_bytes=${d.freeBytes ?? ""}`,
            `disk.${d.role}.used_bytes=${d.usedBytes}`,
        ]),
        ...f.claims.map((c, i) => `claim.${i}=${b64(`${c.path}\t${c.state}`)}`),
        "end=1",
    ];
    return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------------
// Readings of the facts

export type WslKind = "wsl2" | "wsl1" | "none";

/**
 * WSL2 kernels are Microsoft's "-microsoft-standard" builds ("5.15.167.4-microsoft-standard-WSL2";
 * 4.19 kernels lacked the -WSL2 suffix); WSL1 has no Linux kernel and reports "4.4.0-19041-Microsoft".
 */
export function wslKind(procVersion: string | null): WslKind {
    if (procVersion === null) return "none";
    if (/microsoft-standard/i.test(procVersion)) return "wsl2";
    if (/microsoft/i.test(procVersion)) return "wsl1";
    return "none";
}

/** "Linux version 5.15.167.4-microsoft-standard-WSL2 ..." -> [5, 15, 167]. */
export function kernelVersion(procVersion: string | null): [number, number, number] | null {
    const m = /Linux version (\d+)\.(\d+)(?:\.(\d+))?/.exec(procVersion ?? "");
    return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

/** True when /etc/wsl.conf's [boot] section says systemd=true (INI: case-insensitive keys, # and ; comments). */
export function wslConfEnablesSystemd(text: string | null): boolean {
    if (text === null) return false;
    let section = "";
    let on = false;
    for (const raw of text.split(/\r?\n/)) {
        const line = raw.replace(/[#;].*$/, "").trim();
        const header = /^\[(.+)\]$/.exec(line);
        if (header) {
            section = header[1].trim().toLowerCase();
            continue;
        }
        const pair = /^([^=]+)=(.*)$/.exec(line);
        if (section === "boot" && pair && pair[1].trim().toLowerCase() === "systemd") {
            on = pair[2].trim().toLowerCase() === "true"; // the last assignment wins, as in WSL
        }
    }
    return on;
}

/** "Cuda compilation tools, release 12.8, V12.8.93" -> {12, 8}. */
export function parseNvccVersion(text: string | null): { major: number; minor: number } | null {
    const m = /release (\d+)\.(\d+)/.exec(text ?? "");
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

const versionLess = (a: { major: number; minor: number }, b: { major: number; minor: number }): boolean =>
    a.major !== b.major ? a.major < b.major : a.minor < b.minor;

const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(1)} GB`;
const gib = (x: number): string => `${x.toFixed(1)} GiB`;
const ok = (id: string, message: string): Check => ({ id, level: "ok", message, fix: null });

const WSL_DRIVER_FIX =
    "install or update the NVIDIA driver on Windows: WSL2 gets nvidia-smi and libcuda.so.1 from it under /usr/lib/wsl/lib; " +
    "never install a Linux NVIDIA driver inside WSL";

// ---------------------------------------------------------------------------------------------------
// Checks

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

/**
 * Every path the stack would take is its own already (the box's record), absent, an empty directory,
 * or a file identical to what the stack writes there; anything else belongs to someone, and taking it
 * would let a later destroy remove it. Refused before anything changes, naming the path and what is there.
 */
export function checkOwnership(f: Facts, claims: readonly Claim[]): Check[] {
    const checks: Check[] = [];
    f.claims.forEach((seen, i) => {
        const claim = claims[i];
        if (claim === undefined || claim.path !== seen.path) return;
        const state = seen.state;
        if (state === "absent" || state === "owned") return;
        if (claim.kind === "dir" && state === "empty") return;
        if (claim.kind === "file" && claim.sha256 !== null && state === `file ${claim.sha256}`) return;
        const what = state.startsWith("holds ")
            ? `a directory holding ${state.slice(6).split(" ").map((n) => JSON.stringify(n)).join(", ")}${state.split(" ").length > 4 ? " and more" : ""}`
            : state.startsWith("file ")
              ? "a file with other content"
              : state.startsWith("other ")
                ? `a ${state.slice(6)}`
                : state;
        checks.push({
            id: "ownership",
            level: "error",
            message: `${claim.path}${claim.option ? ` (${claim.option})` : ""} is ${what}, which vllm-workstation did not make; the stack would take it over and remove it on destroy`,
            fix:
                claim.option === null
                    ? `move it away (vllm-workstation keeps its own file there), then run pulumi up again`
                    : `move it away, or set ${claim.option} to a path that does not exist yet or is an empty directory`,
        });
    });
    return checks;
}

export function checkDisk(f: Facts): Check[] {
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
        const need = disks.reduce((sum, d) => sum + Math.max(0, DISK_NEEDS[d.role] - d.usedBytes), 0);
        const free = disks[0].freeBytes;
        if (free === null) {
            checks.push({ id, level: "warning", message: `could not measure free space for ${what}`, fix: "check `df -h` by hand" });
        } else if (free < need) {
            checks.push({
                id,
                level: "error",
                message: `${gb(free)} free for ${what}; ${gb(need)} needed (model files ${gb(DISK_NEEDS.model)}, venv and caches ${gb(DISK_NEEDS.venv)}, less what is already there)`,
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
    /** The vLLM release the stack installs (the driver check); null or absent skips it. */
    readonly vllmVersion?: string | null;
    /** server.host (the WSL networking check); null or absent skips it. */
    readonly serverHost?: string | null;
}

/** Every applicable check, in the order a person fixes them: card, plan, WSL, services, toolchain, resources. */
export function runChecks(f: Facts, result: PlanResult | null, options: CheckOptions = {}): Check[] {
    const all: Array<Check | null> = [
        checkGpu(f),
        checkComputeCapability(f),
        checkPlan(result),
        checkWsl(f),
        checkSystemd(f),
        checkLibcuda(f),
        checkNvcc(f),
        checkHostMemory(f, result),
        checkPinnedMemory(f, result, options.wslPinSwitch ?? null),
        ...checkOwnership(f, options.claims ?? []),
        ...checkDisk(f),
        // Windows and WSL: components/wslChecks.ts.
        checkDriverForWheels(f, options.vllmVersion ?? null),
        checkWslLifecycle(f),
        checkNatServing(f, options.serverHost ?? null),
    ];
    return all.filter((c): c is Check => c !== null);
}
