// The preflight's facts: gatherFacts() returns the text of a bash probe (components/pieces/assets/preflight_probe.sh)
// that prints what it finds as key=value lines (multi-line values base64), and parseProbeOutput() turns
// that text back into Facts. The probe needs no root, changes nothing, and tolerates missing tools (no
// nvidia-smi, no nvcc), so the same code serves the local doctor and a remote converge.
import { defaults } from "../config/schema";
import { GpuRecord, NVIDIA_SMI_QUERY, parseNvidiaSmiCsv } from "../plan/gpu";
import type { Claim } from "../pieces/observe";
import { fillAsset, q as shellQuote } from "../host/shell";
import { claimsProbe } from "./ownership";

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
 * The probe: a bash script printing one `key=value` per line, ending with `end=1` so a cut-off run is
 * told apart from a finished one. Values that can span lines are base64 (no newlines); "-" means absent.
 */
export function gatherFacts(options: Partial<ProbeOptions> = {}): string {
    const o = { ...DEFAULT_PROBE_OPTIONS, ...options };
    // components/pieces/assets/preflight_probe.sh; every configured path goes in quoted.
    return fillAsset("preflight_probe.sh", {
        WSL_LIB: shellQuote(o.wslLibDir),
        NVIDIA_SMI_ARGS: NVIDIA_SMI_QUERY.replace(/^nvidia-smi /, ""),
        NVCC: shellQuote(o.cudaHome + "/bin/nvcc"),
        MODEL_DIR: shellQuote(o.modelDir),
        VENV_DIR: shellQuote(o.venvDir),
        CLAIMS: claimsProbe(o.claims),
    });
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
