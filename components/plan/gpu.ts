// What nvidia-smi says about the workstation's cards, as typed records. Pure: the caller runs the
// command (locally or over SSH, see preflight/facts.ts's probe) and hands the text in.

/**
 * The one query every part of the stack uses. `noheader,nounits` gives one line per GPU,
 * fields separated by ", ", memory in MiB:
 *
 *     0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02
 *
 * compute_cap needs driver 510+; every driver that runs CUDA under WSL2 has it.
 */
export const NVIDIA_SMI_QUERY =
    "nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv,noheader,nounits";

const FIELDS = ["index", "name", "memory.total", "memory.free", "compute_cap", "driver_version"] as const;

export interface ComputeCapability {
    readonly major: number;
    readonly minor: number;
}

export interface GpuRecord {
    /** nvidia-smi's index; CUDA_VISIBLE_DEVICES uses the same numbering when CUDA_DEVICE_ORDER=PCI_BUS_ID. */
    readonly index: number;
    readonly name: string;
    readonly memoryTotalMiB: number;
    /** Free at the time of the query: on WSL2 the Windows desktop's share of the same card is already gone. */
    readonly memoryFreeMiB: number;
    /** As nvidia-smi prints it, e.g. "8.9" or "12.0". */
    readonly computeCap: string;
    readonly driverVersion: string;
}

export type NvidiaSmiParse =
    | { readonly ok: true; readonly gpus: GpuRecord[] }
    | { readonly ok: false; readonly errors: string[] };

/** "8.9" -> {8, 9}; null when the text is not MAJOR.MINOR. */
export function parseComputeCap(text: string): ComputeCapability | null {
    const m = /^(\d+)\.(\d+)$/.exec(text.trim());
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

/** The architecture name CUDA and vLLM use: {8, 9} -> "sm_89", {12, 0} -> "sm_120". */
export function smName(cc: ComputeCapability): string {
    return `sm_${cc.major}${cc.minor}`;
}

/** Compares capabilities the way vLLM does (major first): a negative number when a < b. */
export function compareComputeCap(a: ComputeCapability, b: ComputeCapability): number {
    return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

function nonNegativeInt(text: string): number | null {
    return /^\d+$/.test(text) ? Number(text) : null;
}

function parseLine(line: string, lineNo: number): { gpu: GpuRecord } | { errors: string[] } {
    const quoted = JSON.stringify(line);
    // Split on the comma alone: the separator is ", " but a stray tab or a missing space must not
    // change the field count. GPU names never contain commas.
    const fields = line.split(",").map((f) => f.trim());
    if (fields.length !== FIELDS.length) {
        return {
            errors: [`line ${lineNo} ${quoted}: expected ${FIELDS.length} fields (${FIELDS.join(", ")}), found ${fields.length}`],
        };
    }
    const [indexText, name, totalText, freeText, ccText, driver] = fields;
    const errors: string[] = [];
    const index = nonNegativeInt(indexText);
    if (index === null) errors.push(`line ${lineNo} ${quoted}: index ${JSON.stringify(indexText)} is not a whole number`);
    if (name === "") errors.push(`line ${lineNo} ${quoted}: name is empty`);
    // "[N/A]" and "[Not Supported]" show up here on broken drivers and some vGPU profiles.
    const total = nonNegativeInt(totalText);
    if (total === null) errors.push(`line ${lineNo} ${quoted}: memory.total ${JSON.stringify(totalText)} is not a whole number of MiB`);
    const free = nonNegativeInt(freeText);
    if (free === null) errors.push(`line ${lineNo} ${quoted}: memory.free ${JSON.stringify(freeText)} is not a whole number of MiB`);
    if (total !== null && free !== null && free > total) {
        errors.push(`line ${lineNo} ${quoted}: memory.free ${free} MiB is more than memory.total ${total} MiB`);
    }
    if (parseComputeCap(ccText) === null) {
        errors.push(`line ${lineNo} ${quoted}: compute_cap ${JSON.stringify(ccText)} is not MAJOR.MINOR (e.g. 8.9)`);
    }
    if (driver === "") errors.push(`line ${lineNo} ${quoted}: driver_version is empty`);
    if (errors.length > 0) return { errors };
    return {
        gpu: {
            index: index as number,
            name,
            memoryTotalMiB: total as number,
            memoryFreeMiB: free as number,
            computeCap: ccText,
            driverVersion: driver,
        },
    };
}

/**
 * Parses the output of NVIDIA_SMI_QUERY. Blank lines are skipped and CRLF is accepted (nvidia-smi.exe
 * run from WSL writes it). Every malformed line is reported, each quoted, so one run shows them all.
 * No lines at all is a valid answer (no GPU); deciding whether that is fatal is the caller's business.
 */
export function parseNvidiaSmiCsv(text: string): NvidiaSmiParse {
    const gpus: GpuRecord[] = [];
    const errors: string[] = [];
    text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.trim();
        if (line === "") return;
        const r = parseLine(line, i + 1);
        if ("gpu" in r) gpus.push(r.gpu);
        else errors.push(...r.errors);
    });
    const seen = new Set<number>();
    for (const g of gpus) {
        if (seen.has(g.index)) errors.push(`index ${g.index} appears more than once`);
        seen.add(g.index);
    }
    return errors.length > 0 ? { ok: false, errors } : { ok: true, gpus };
}
