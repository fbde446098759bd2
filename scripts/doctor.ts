// `npm run doctor`: is this machine ready to serve gpt-oss-20b, and with which vLLM settings?
// Runs the preflight probe on this machine, plans VRAM for the GPU it finds, prints both.
// Exit status: 0 when no check is at error level, 1 when one is, 2 on bad usage.
//
//   node dist/scripts/doctor.js [--nvidia-smi-file F] [--facts-file F] [--json]
//                               [--tier TIER] [--max-model-len N]   (gpu.tier and gpu.maxModelLen)
//                               [--runtime systemd|docker] [--vllm-version V]
//                               [--docker-image IMAGE] [--docker-host HOST]   (dockerImage, dockerHost)
//
// --vllm-version is the release that serves (python.vllmVersion, or for the docker runtime the image's:
// dockerVllmVersion or its tag; default the schema's python.vllmVersion): the driver check holds the
// card's driver against the CUDA that release is built for, as the preflight of `up` does.
// --runtime docker lists the checks that apply to the container (no systemd, no CUDA toolkit on the
// host) and adds the docker runtime's own: the engine, its NVIDIA runtime, and the official image of
// that release (vllm/vllm-openai:v<V>, so V must fit a Docker tag: no "+"), from the docker runtime's probe
// run here as the current user. --docker-image checks the stack's own image instead (a private registry, a
// digest pin; its release is its tag's unless --vllm-version says it, as dockerVllmVersion does), and
// --docker-host the engine the stack's dockerHost names.
// --nvidia-smi-file replaces what nvidia-smi says (a saved NVIDIA_SMI_QUERY output), so a plan can be
// checked for a card that is not in this machine. --facts-file replaces the whole probe with its saved
// output (`bash -c "$(...gatherFacts())" > F` on the workstation), for diagnosing a machine from afar;
// for --runtime docker, with the docker runtime's probe's output (dockerPreflightProbe) appended.
import { spawnSync } from "child_process";
import * as fs from "fs";
import { NVIDIA_SMI_QUERY, parseNvidiaSmiCsv } from "../components/plan/gpu";
import { AUTO_OPTIONS, Plan, PlanResult, TIERS, Tier, plan } from "../components/plan/planner";
import { Check, runChecks } from "../components/preflight/checks";
import { Facts, gatherFacts, parseProbeOutput, wslKind } from "../components/preflight/facts";
import { defaults, imageTagVersion, withoutCredentials, WorkstationConfig } from "../components/config/schema";
import { dockerChecks, dockerPreflightProbe } from "../components/pieces/dockerRuntime";

const RUNTIMES = ["systemd", "docker"] as const;
type Runtime = (typeof RUNTIMES)[number];

export interface DoctorArgs {
    readonly nvidiaSmiFile: string | null;
    readonly factsFile: string | null;
    readonly json: boolean;
    readonly tier: Tier;
    readonly maxModelLen: number | null;
    readonly runtime: Runtime;
    readonly vllmVersion: string;
    /** dockerImage: the image the docker runtime's checks look at; null: the official image of vllmVersion. */
    readonly dockerImage: string | null;
    /** dockerHost: the engine they ask; null: the CLI's default. */
    readonly dockerHost: string | null;
}

const USAGE = `usage: doctor [--nvidia-smi-file FILE] [--facts-file FILE] [--json] [--tier ${TIERS.join("|")}] [--max-model-len N] [--runtime ${RUNTIMES.join("|")}] [--vllm-version V] [--docker-image IMAGE] [--docker-host HOST]`;

class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): DoctorArgs {
    let nvidiaSmiFile: string | null = null;
    let factsFile: string | null = null;
    let json = false;
    let tier: Tier = AUTO_OPTIONS.tier;
    let maxModelLen: number | null = null;
    let runtime: Runtime = "systemd";
    let vllmVersion: string | null = null;
    let dockerImage: string | null = null;
    let dockerHost: string | null = null;
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = (): string => {
            const v = argv[++i];
            if (v === undefined) throw new UsageError(`${arg} needs a value`);
            return v;
        };
        switch (arg) {
            case "--nvidia-smi-file":
                nvidiaSmiFile = value();
                break;
            case "--facts-file":
                factsFile = value();
                break;
            case "--json":
                json = true;
                break;
            case "--tier": {
                const t = value();
                if (!TIERS.includes(t as Tier)) throw new UsageError(`--tier ${JSON.stringify(t)} is not one of ${TIERS.join(", ")}`);
                tier = t as Tier;
                break;
            }
            case "--max-model-len": {
                const v = value();
                // Range errors are the schema's, which the planner reports as the config does.
                if (!/^\d+$/.test(v)) throw new UsageError(`--max-model-len ${JSON.stringify(v)} is not a whole number`);
                maxModelLen = Number(v);
                break;
            }
            case "--runtime": {
                const r = value();
                if (!RUNTIMES.includes(r as Runtime)) throw new UsageError(`--runtime ${JSON.stringify(r)} is not one of ${RUNTIMES.join(", ")}`);
                runtime = r as Runtime;
                break;
            }
            case "--vllm-version": {
                const v = value();
                if (!/^\d+\.\d+\.\d+[A-Za-z0-9.+-]*$/.test(v)) throw new UsageError(`--vllm-version ${JSON.stringify(v)} is not a vLLM release like 0.11.0`);
                vllmVersion = v;
                break;
            }
            case "--docker-image": {
                const v = value();
                // The schema is the one judge of an image reference and of an engine's address.
                const r = WorkstationConfig.shape.dockerImage.safeParse(v);
                if (!r.success) throw new UsageError(`--docker-image ${JSON.stringify(v)}: ${r.error.issues.map((i) => i.message).join("; ")}`);
                dockerImage = v;
                break;
            }
            case "--docker-host": {
                const v = value();
                const r = WorkstationConfig.shape.dockerHost.safeParse(v);
                if (!r.success) throw new UsageError(`--docker-host ${JSON.stringify(withoutCredentials(v))}: ${r.error.issues.map((i) => i.message).join("; ")}`);
                dockerHost = v;
                break;
            }
            case "-h":
            case "--help":
                throw new UsageError("");
            default:
                throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
        }
    }
    if ((dockerImage !== null || dockerHost !== null) && runtime !== "docker") {
        throw new UsageError(`--docker-image and --docker-host are for --runtime docker`);
    }
    if (dockerImage !== null) {
        // As dockerVllmVersion: the release the image holds, from its tag unless given.
        vllmVersion ??= imageTagVersion(dockerImage);
        if (vllmVersion === null) {
            throw new UsageError(`--docker-image ${JSON.stringify(dockerImage)}: its tag is not a vLLM version, so give the release the image holds with --vllm-version (as dockerVllmVersion)`);
        }
    } else if (runtime === "docker" && vllmVersion !== null && !dockerTagRe.test(`v${vllmVersion}`)) {
        // The docker runtime's checks look at the official image tagged v<version>; a tag holds no "+" (a
        // local version such as 0.11.1+cu128) and at most 128 characters, and the official images have no
        // tag for those.
        throw new UsageError(
            `--vllm-version ${JSON.stringify(vllmVersion)} cannot name an image of vllm/vllm-openai with --runtime docker: a Docker tag (v<version>) holds only letters, digits, "_", "." and "-", at most 128; give the release the image holds, like 0.11.0, or the image with --docker-image`,
        );
    }
    return { nvidiaSmiFile, factsFile, json, tier, maxModelLen, runtime, vllmVersion: vllmVersion ?? defaults.python.vllmVersion, dockerImage, dockerHost };
}

/** What a Docker image tag may be. */
const dockerTagRe = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Runs a probe here, as the current user. The probes are read-only; without nvidia-smi or docker they still answer. */
function probeLocally(script: string): string {
    const r = spawnSync("bash", ["-s"], { input: script, encoding: "utf8", timeout: 60_000 });
    if (r.error) throw new Error(`could not run the probe with bash: ${r.error.message}`);
    return r.stdout;
}

/** The image the docker runtime's checks look at: the official image of the release that serves. */
export const dockerImageFor = (vllmVersion: string): string => `vllm/vllm-openai:v${vllmVersion}`;

/** What the docker runtime's probe printed, and where it ran. */
export interface DockerProbe {
    readonly out: string;
    readonly where: string;
}

function gatherLocalFacts(args: DoctorArgs): { facts: Facts; docker: DockerProbe | null } | { errors: string[] } {
    const text = args.factsFile !== null ? fs.readFileSync(args.factsFile, "utf8") : probeLocally(gatherFacts());
    const parsed = parseProbeOutput(text);
    if (!parsed.ok) return { errors: parsed.errors.map((e) => `${args.factsFile ?? "probe"}: ${e}`) };
    const docker =
        args.runtime !== "docker"
            ? null
            : args.factsFile !== null
              ? { out: text, where: `the machine of ${args.factsFile}` }
              : { out: probeLocally(dockerPreflightProbe({ dockerImage: args.dockerImage ?? dockerImageFor(args.vllmVersion), dockerHost: args.dockerHost }).probe), where: "this machine" };
    if (args.nvidiaSmiFile === null) return { facts: parsed.facts, docker };
    const smi = parseNvidiaSmiCsv(fs.readFileSync(args.nvidiaSmiFile, "utf8"));
    return {
        facts: {
            ...parsed.facts,
            gpus: smi.ok ? smi.gpus : null,
            nvidiaSmiError: smi.ok ? null : `${args.nvidiaSmiFile}: ${smi.errors.join("; ")}`,
        },
        docker,
    };
}

export interface Report {
    readonly facts: Facts;
    readonly plan: PlanResult;
    readonly checks: Check[];
}

/**
 * The plan and the checks for `runtime`, as the preflight of `up` selects them (runChecks); for the
 * docker runtime with its own checks from `docker`, what its probe printed (none: a check says so).
 */
export function diagnose(
    facts: Facts,
    args: Pick<DoctorArgs, "tier" | "maxModelLen"> & Partial<Pick<DoctorArgs, "runtime" | "vllmVersion" | "dockerImage" | "dockerHost">>,
    docker: DockerProbe | null = null,
): Report {
    const result = plan({
        gpu: facts.gpus?.[0] ?? null,
        options: { tier: args.tier, maxModelLen: args.maxModelLen },
        wsl: wslKind(facts.procVersion) === "wsl2",
    });
    const runtime = args.runtime ?? "systemd";
    const vllmVersion = args.vllmVersion ?? defaults.python.vllmVersion;
    // The driver check is the preflight's (runChecks), held against the release that serves.
    const checks = runChecks(facts, result, { vllmVersion, runtime });
    if (runtime === "docker") checks.push(...dockerDoctorChecks(args.dockerImage ?? dockerImageFor(vllmVersion), args.dockerHost ?? null, docker));
    return { facts, plan: result, checks };
}

function dockerDoctorChecks(image: string, host: string | null, docker: DockerProbe | null): Check[] {
    if (docker === null || !docker.out.split("\n").some((l) => l.startsWith("docker-cli="))) {
        return [
            {
                id: "docker",
                level: "warning",
                message: `the Docker engine, its NVIDIA runtime and ${image} were not checked: the output of the docker runtime's probe (docker-*= lines) is missing`,
                fix: "run the doctor on the workstation, or append what the docker runtime's probe (dockerPreflightProbe) prints there to the facts file",
            },
        ];
    }
    // The doctor runs the probe as the current user, `up` as root: a user outside the docker group is refused where `up` is not.
    const deniedFix =
        "`pulumi up` reaches the engine as root, the doctor as the user it runs as: run the doctor (or the probe of the facts file) with sudo " +
        "(`sudo npm run doctor -- --runtime docker`), or add the user to the docker group (`sudo usermod -aG docker $USER`, then log in again)";
    return dockerChecks({ dockerImage: image, dockerHost: host }, docker.out, docker.where, deniedFix);
}

const pad = (s: string, n: number): string => s + " ".repeat(Math.max(1, n - s.length));
const num = (x: number): string => x.toFixed(2).padStart(6);

function planLines(p: Plan): string[] {
    const m = p.memory;
    const rows: Array<[string, string]> = [
        ["--gpu-memory-utilization", String(p.gpuMemoryUtilization)],
        ["--cpu-offload-gb", String(p.cpuOffloadGb)],
        ["--max-model-len", String(p.maxModelLen)],
        ["--max-num-seqs", String(p.maxNumSeqs)],
        ["--max-num-batched-tokens", String(p.maxNumBatchedTokens)],
        ["--enforce-eager", p.enforceEager ? "yes" : "no"],
        ["--kv-cache-dtype", p.kvCacheDtype],
        ["attention backend", p.attentionBackend],
    ];
    const mem: Array<[string, number, string]> = [
        ["card total", m.totalGiB, ""],
        ["held by others", m.othersGiB, "Windows desktop, other processes"],
        ["vLLM budget", m.budgetGiB, "utilization x total"],
        ["  weights", m.weightsGiB, m.offloadedGiB > 0 ? `+${m.offloadedGiB.toFixed(2)} in host RAM` : ""],
        ["  activations", m.activationsGiB, ""],
        ["  KV cache", m.kvCacheGiB, `${m.kvCacheTokens} tokens`],
        ["CUDA context", m.cudaContextGiB, ""],
        ["CUDA graphs", m.cudaGraphsGiB, ""],
        ["headroom", m.headroomGiB, ""],
    ];
    const source = p.gpu.source === "tier" ? `${p.gpu.name}, ${p.gpu.memoryTotalMiB} MiB preset` : p.gpu.name;
    return [
        `Plan for ${p.model} (tier ${p.tier}: ${source})`,
        ...rows.map(([k, v]) => `  ${pad(k, 27)}${v}`),
        "",
        "Memory (GiB)",
        ...mem.map(([k, v, why]) => `  ${pad(k, 17)}${num(v)}${why ? `   ${why}` : ""}`),
        `  ${pad("host RAM needed", 17)}${num(p.hostMemoryGiB)}`,
        ...(p.notes.length > 0 ? ["", "Why", ...p.notes.map((n) => `  - ${n}`)] : []),
        ...(p.warnings.length > 0 ? ["", "Warnings", ...p.warnings.map((w) => `  - ${w}`)] : []),
    ];
}

export function renderText(r: Report): string {
    const lines: string[] = ["vllm-workstation doctor", ""];
    const gpus = r.facts.gpus ?? [];
    if (gpus.length === 0) lines.push(`GPU: none (${r.facts.nvidiaSmiError ?? "nvidia-smi lists no GPU"})`);
    for (const g of gpus) {
        lines.push(`GPU ${g.index}: ${g.name}, ${g.memoryTotalMiB} MiB total, ${g.memoryFreeMiB} MiB free, compute ${g.computeCap}, driver ${g.driverVersion}`);
    }
    lines.push("");
    if (r.plan.ok) lines.push(...planLines(r.plan.plan));
    else lines.push("No plan:", ...r.plan.errors.map((e) => `  - ${e}`));
    lines.push("", "Checks");
    // The name column fits the longest name (nvidia-container-toolkit is one), so the messages line up.
    const idWidth = Math.max(0, ...r.checks.map((c) => c.id.length)) + 2;
    const indent = " ".repeat(8 + idWidth);
    for (const c of r.checks) {
        const [first, ...rest] = c.message.split("\n");
        lines.push(`  ${pad(c.level, 8)}${pad(c.id, idWidth)}${first}`);
        for (const more of rest) lines.push(`  ${indent}${more}`);
        if (c.fix !== null && c.level !== "ok") {
            const [f1, ...frest] = c.fix.split("\n");
            lines.push(`  ${indent}fix: ${f1}`);
            for (const more of frest) lines.push(`  ${indent}     ${more}`);
        }
    }
    const errors = r.checks.filter((c) => c.level === "error").length;
    const warnings = r.checks.filter((c) => c.level === "warning").length;
    lines.push("", `${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}: ${errors === 0 ? "ready" : "not ready"}`);
    return lines.join("\n") + "\n";
}

export function renderJson(r: Report): string {
    const errors = r.checks.filter((c) => c.level === "error").length;
    return (
        JSON.stringify(
            {
                ok: errors === 0,
                query: NVIDIA_SMI_QUERY,
                gpus: r.facts.gpus,
                plan: r.plan.ok ? r.plan.plan : null,
                planErrors: r.plan.ok ? [] : r.plan.errors,
                checks: r.checks,
                summary: { errors, warnings: r.checks.filter((c) => c.level === "warning").length },
            },
            null,
            2,
        ) + "\n"
    );
}

export function main(argv: readonly string[]): number {
    let args: DoctorArgs;
    try {
        args = parseArgs(argv);
    } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(e.message ? `doctor: ${e.message}\n${USAGE}\n` : `${USAGE}\n`);
        return e.message ? 2 : 0;
    }
    const gathered = gatherLocalFacts(args);
    if ("errors" in gathered) {
        process.stderr.write(gathered.errors.map((e) => `doctor: ${e}\n`).join(""));
        return 1;
    }
    const report = diagnose(gathered.facts, args, gathered.docker);
    process.stdout.write(args.json ? renderJson(report) : renderText(report));
    return report.checks.some((c) => c.level === "error") ? 1 : 0;
}

if (require.main === module) {
    process.exitCode = main(process.argv.slice(2));
}
