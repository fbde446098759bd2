// The vLLM service: a systemd unit over the venv, a vLLM --config YAML whose flags come from the VRAM
// plan, a root-only file for the API key, and a health check that gates the endpoint output.
import type { WorkstationConfig } from "../config/schema";
import type { Piece } from "./observe";
import type { Plan } from "../plan/planner";
import { asset, contentSha, expectFile, fillAsset, fillFragment, managedHeader, q, sha256 } from "../host/shell";
import { ROLLED_BACK_EXIT } from "../host/provider";
import { etcDir, serviceEnvPath } from "./cudaEnv";
import { has, servedVllmVersion } from "../plan/vllmVersion";

/** The vLLM settings the planner chose for this card; see planner.ts for how. */
export type ServingPlan = Pick<Plan, "gpuMemoryUtilization" | "cpuOffloadGb" | "maxModelLen" | "maxNumSeqs" | "maxNumBatchedTokens" | "enforceEager" | "attentionBackend" | "kvCacheDtype" | "requiresPinnedMemory">;

export const unitName = "vllm-workstation.service";
export const unitPath = `/etc/systemd/system/${unitName}`;
export const configPath = "/etc/vllm-workstation/vllm.yaml";
export const envPath = "/etc/vllm-workstation/vllm.env";
/** Root-only: systemd reads it before dropping to the service user, who never can. */
export const secretsPath = "/etc/vllm-workstation/secrets.env";
/** Writable caches of vLLM, Triton and FlashInfer's JIT (CacheDirectory=). */
export const cacheHome = "/var/cache/vllm-workstation";
/** What the running service was started on (upstream pieces' ids); a change restarts it. */
export const runsOnPath = `${etcDir}/service.runs-on`;
/** Root-owned Python the service imports (on its PYTHONPATH): the API key middleware. */
export const pythonDir = `${etcDir}/python`;
export const authModuleName = "vllm_workstation_auth";
export const authModulePath = `${pythonDir}/${authModuleName}.py`;
/** vLLM's --middleware value: the class that requires the key on every route but /health. */
export const authMiddleware = `${authModuleName}.RequireApiKey`;

export function servedModelName(c: WorkstationConfig): string {
    return c.server.servedModelName ?? c.model.repo.split("/")[1];
}

/** The flags, as vLLM's --config YAML keys (its CLI flags without the dashes). Order is stable. */
export function vllmFlags(c: WorkstationConfig, plan: ServingPlan): Record<string, string | number | boolean> {
    const flags: Record<string, string | number | boolean> = {
        "served-model-name": servedModelName(c),
        host: c.server.host,
        port: c.server.port,
        "gpu-memory-utilization": plan.gpuMemoryUtilization,
        "max-model-len": plan.maxModelLen,
        "max-num-seqs": plan.maxNumSeqs,
        "kv-cache-dtype": plan.kvCacheDtype,
    };
    if (plan.maxNumBatchedTokens !== null) flags["max-num-batched-tokens"] = plan.maxNumBatchedTokens;
    if (plan.cpuOffloadGb > 0) flags["cpu-offload-gb"] = plan.cpuOffloadGb;
    // vLLM's config loader turns `key: true` into a bare flag and ignores false, so false is left out.
    if (plan.enforceEager) flags["enforce-eager"] = true;
    if (plan.attentionBackend !== null && has(servedVllmVersion(c), "attentionBackendFlag")) flags["attention-backend"] = plan.attentionBackend;
    return flags;
}

/**
 * The flags of the --config YAML: vllmFlags, and with an API key the middleware that requires it on
 * every route. vLLM's own --api-key check guards only some path prefixes (/v1; 0.24.0 adds /v2 and
 * /inference), while /invocations, /tokenize and /detokenize serve inference outside them; see
 * components/pieces/assets/vllm_workstation_auth.py. Without a key the middleware is not loaded: loaded, it
 * refuses to start without one, so a lost key closes the server instead of opening it.
 */
export function serviceFlags(c: WorkstationConfig, plan: ServingPlan, withKey: boolean): Record<string, string | number | boolean> {
    return { ...vllmFlags(c, plan), ...(withKey ? { middleware: authMiddleware } : {}) };
}

export function renderConfigYaml(flags: Record<string, string | number | boolean>): string {
    const lines = Object.entries(flags).map(([k, v]) => `${k}: ${typeof v === "string" ? JSON.stringify(v) : v}`);
    return managedHeader() + lines.join("\n") + "\n";
}

/** The VLLM_* variables the plan needs for this vLLM version; shared with the container runtime. */
export function vllmVariables(c: WorkstationConfig, plan: ServingPlan): string[] {
    const v = servedVllmVersion(c);
    const out: string[] = [];
    if (plan.attentionBackend !== null && !has(v, "attentionBackendFlag")) out.push(`VLLM_ATTENTION_BACKEND=${plan.attentionBackend}`);
    // Harmless on native Linux (vLLM reads it only when it detects WSL).
    if (plan.requiresPinnedMemory && has(v, "wslPinMemorySwitch")) out.push("VLLM_WSL2_ENABLE_PIN_MEMORY=1");
    return out;
}

export function renderEnv(c: WorkstationConfig, plan: ServingPlan, tiktokenDir: string): string {
    const lines = [
        // Everything is local after `pulumi up`: the service must never reach for the Hub at start.
        "HF_HUB_OFFLINE=1",
        `HF_HUB_CACHE=${c.model.cacheDir}`,
        `TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`,
        `HOME=${cacheHome}`,
        `XDG_CACHE_HOME=${cacheHome}`,
        `VLLM_CACHE_ROOT=${cacheHome}/vllm`,
        `TRITON_CACHE_DIR=${cacheHome}/triton`,
        `FLASHINFER_WORKSPACE_BASE=${cacheHome}`,
        "VLLM_NO_USAGE_STATS=1",
        "DO_NOT_TRACK=1",
        // Where vLLM's --middleware import finds the stack's module; root-owned, like the venv.
        `PYTHONPATH=${pythonDir}`,
    ];
    lines.push(...vllmVariables(c, plan));
    return managedHeader() + lines.join("\n") + "\n";
}

/**
 * The unit (components/assets/vllm-workstation.service): the vllm of the venv path serving the snapshot.
 * The venv path is a link to the install in service, which the service's step switches (and restarts
 * the service), so a change of packages leaves the unit as it is.
 */
export function renderUnit(c: WorkstationConfig, snapshotPath: string): string {
    return fillAsset("vllm-workstation.service", {
        MANAGED: managedHeader().trimEnd(),
        MODEL_REPO: c.model.repo,
        USER: c.server.user,
        SERVICE_ENV: serviceEnvPath,
        ENV: envPath,
        SECRETS: secretsPath,
        VENV: c.python.venvPath,
        SNAPSHOT: snapshotPath,
        CONFIG: configPath,
    });
}

/** The address the health check on the box uses: wildcard listeners answer on loopback. */
export function probeHost(host: string): string {
    if (host === "0.0.0.0") return "127.0.0.1";
    if (host === "::") return "[::1]";
    return host.includes(":") ? `[${host}]` : host;
}

export function endpointUrl(c: WorkstationConfig): string {
    return `http://${probeHost(c.server.host)}:${c.server.port}/v1`;
}

export interface ServiceInputs {
    readonly config: WorkstationConfig;
    readonly plan: ServingPlan;
    /** The install the service runs (python.ts installPath); the venv link is switched to it. */
    readonly installPath: string;
    readonly snapshotPath: string;
    readonly tiktokenDir: string;
    /** true when an API key is set; the key itself travels in secretEnv. */
    readonly apiKeyId: string | null;
    /**
     * Ids of what the service runs on, by piece (the CUDA environment, the packages, the model), from
     * their expected states: a changed id restarts the running service, which would otherwise keep
     * the libraries, variables and weights it loaded at its start.
     */
    readonly runsOn: Readonly<Record<string, string>>;
}

/** What the service serves, for the way back after a failed switch: the install and the model revision. */
export const servesPath = `${etcDir}/service.serves`;

/** The CUDA environment (cudaEnv.ts) the service last passed its health check on: a switch goes back to it. */
export const servedCudaEnvPath = `${etcDir}/service.cuda.env`;

export function renderServes(installPath: string, revision: string): string {
    return `${managedHeader()}install=${installPath}\nrevision=${revision}\n`;
}

/** The stamp runsOn leaves on the box. */
export function renderRunsOn(runsOn: Readonly<Record<string, string>>): string {
    return managedHeader() + Object.keys(runsOn).sort().map((k) => `${k}=${runsOn[k]}\n`).join("");
}

/** The service as a piece: what the program looks at first (observe.ts) and the workstation declares (declarePieces). */
export function servicePiece(c: WorkstationConfig): Piece {
    const user = q(c.server.user);
    return {
        name: "service",
        what: "the vLLM service",
        probe: fillFragment("service_probe.sh", {
            UNIT_PATH: q(unitPath),
            CONFIG_PATH: q(configPath),
            ENV_PATH: q(envPath),
            SECRETS_PATH: q(secretsPath),
            UNIT_NAME: unitName,
            USER: user,
            AUTH_MODULE_PATH: q(authModulePath),
            VENV_PATH: q(c.python.venvPath),
        }),
        claims: [
            { path: cacheHome, kind: "dir", sha256: null, option: null },
            { path: etcDir, kind: "dir", sha256: null, option: null },
            // Its text depends on the model's snapshot path; any unit there that the stack did not write is refused.
            { path: unitPath, kind: "file", sha256: null, option: null },
        ],
    };
}

export function serviceScripts(s: ServiceInputs) {
    const c = s.config;
    const unit = renderUnit(c, s.snapshotPath);
    const yaml = renderConfigYaml(serviceFlags(c, s.plan, s.apiKeyId !== null));
    const env = renderEnv(c, s.plan, s.tiktokenDir);
    const authModule = asset(`${authModuleName}.py`);
    const runsOn = renderRunsOn(s.runsOn);
    const serves = renderServes(s.installPath, c.model.revision);
    const user = q(c.server.user);
    const text = (t: string) => q(t.endsWith("\n") ? t : `${t}\n`);
    return {
        apply: fillFragment("service_apply.sh", {
            // Changes with the API key, so a rotated key restarts the service.
            API_KEY_ID: s.apiKeyId ?? "none",
            UNIT_PATH: q(unitPath),
            CONFIG_PATH: q(configPath),
            ENV_PATH: q(envPath),
            CUDA_ENV_PATH: q(serviceEnvPath),
            SERVED_CUDA_PATH: q(servedCudaEnvPath),
            SECRETS_PATH: q(secretsPath),
            AUTH_PATH: q(authModulePath),
            RUNS_ON_PATH: q(runsOnPath),
            SERVES_PATH: q(servesPath),
            PYTHON_DIR: q(pythonDir),
            ETC_DIR: q(etcDir),
            CACHE_HOME: q(cacheHome),
            USER: user,
            VENV: q(c.python.venvPath),
            INSTALLS: q(`${c.python.venvPath}-tools/installs`),
            INSTALL: q(s.installPath),
            HF_CACHE: q(c.model.cacheDir),
            MODEL_REPO: q(c.model.repo),
            REVISION: q(c.model.revision),
            BASE: q(`http://${probeHost(c.server.host)}:${c.server.port}`),
            SERVED_NAME: q(servedModelName(c)),
            HEALTH_TIMEOUT: String(c.server.healthTimeoutSeconds),
            ROLLED_BACK_EXIT: String(ROLLED_BACK_EXIT),
            UNIT_TEXT: text(unit),
            // own_file's: the sha256 of what put_file writes (the text with its newline).
            UNIT_SHA: q(contentSha(unit)),
            CONFIG_TEXT: text(yaml),
            ENV_TEXT: text(env),
            AUTH_TEXT: text(authModule),
            RUNS_ON_TEXT: text(runsOn),
            SERVES_TEXT: text(serves),
            AUTH_MIDDLEWARE: q(authMiddleware),
            SWITCH_LIB: fillFragment("service_switch.sh", {}),
        }),
        probe: servicePiece(c).probe,
        expected: [
            expectFile("unit", unit),
            expectFile("config", yaml),
            expectFile("env", env),
            s.apiKeyId === null ? "secrets=none" : "secrets=600 root",
            "active=active",
            "enabled=enabled",
            "user=present",
            "group=present",
            expectFile("auth-module", authModule),
            `link=${s.installPath}`,
        ].join("\n"),
        remove: fillFragment("service_remove.sh", {
            UNIT_PATH: q(unitPath),
            PYTHON_DIR: q(pythonDir),
            ETC_DIR: q(etcDir),
            CACHE_HOME: q(cacheHome),
            USER: user,
            VENV: q(c.python.venvPath),
            SECRETS_PATH: q(secretsPath),
            CUDA_ENV_PATH: q(serviceEnvPath),
            FILES: [configPath, envPath, secretsPath, authModulePath, runsOnPath, servesPath, servedCudaEnvPath].map(q).join(" "),
        }),
    };
}

/** A short, non-reversible id of the API key: it changes when the key does, and reveals nothing. */
export function apiKeyId(key: string): string {
    return sha256(`vllm-workstation:${key}`).slice(0, 12);
}
