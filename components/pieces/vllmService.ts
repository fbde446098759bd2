// The vLLM service: a systemd unit over the venv, a vLLM --config YAML whose flags come from the VRAM
// plan, a root-only file for the API key, and a health check that gates the endpoint output.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "../config/schema";
import type { Connection } from "../host/connection";
import { pieceState, ready } from "../host/hostState";
import type { Observed, Piece } from "./observe";
import type { Plan } from "../plan/planner";
import { expectFile, managedHeader, ownFile, probeFile, q, say, sha256, writeFile } from "../host/shell";
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

/** The path of a file of components/pieces/assets, found from the compiled module (dist/components) or the source. */
export function assetPath(name: string): string {
    for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
        const file = path.join(d, "components", "pieces", "assets", name);
        if (fs.existsSync(file)) return file;
    }
    throw new Error(`components/pieces/assets/${name} not found above ${__dirname}`);
}

export function readAsset(name: string): string {
    return fs.readFileSync(assetPath(name), "utf8");
}

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

export function renderUnit(c: WorkstationConfig, snapshotPath: string): string {
    return `${managedHeader()}[Unit]
Description=vLLM OpenAI-compatible server for ${c.model.repo} (vllm-workstation)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${c.server.user}
Group=${c.server.user}
EnvironmentFile=${serviceEnvPath}
EnvironmentFile=${envPath}
EnvironmentFile=-${secretsPath}
ExecStart=${c.python.venvPath}/bin/vllm serve ${snapshotPath} --config ${configPath}
Restart=on-failure
RestartSec=10
TimeoutStopSec=60
StandardOutput=journal
StandardError=journal
SyslogIdentifier=vllm-workstation
CacheDirectory=vllm-workstation

# Locked down by default.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
CapabilityBoundingSet=
AmbientCapabilities=
UMask=0077
# Relaxed because of the GPU:
# - PrivateDevices stays off: the card is /dev/dxg under WSL2 and /dev/nvidia* on native Linux.
# - MemoryDenyWriteExecute stays off: Triton and FlashInfer compile kernels at run time and map them executable.
# - SystemCallFilter is not set: the CUDA driver and PyTorch's allocators use calls outside @system-service.

[Install]
WantedBy=multi-user.target
`;
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

/** The stamp runsOn leaves on the box. */
export function renderRunsOn(runsOn: Readonly<Record<string, string>>): string {
    return managedHeader() + Object.keys(runsOn).sort().map((k) => `${k}=${runsOn[k]}\n`).join("");
}

/** The piece VllmService declares, as the program looks at it first (observe.ts). */
export function servicePiece(c: WorkstationConfig): Piece {
    const user = q(c.server.user);
    return {
        name: "service",
        what: "the vLLM service",
        probe: [
            probeFile("unit", unitPath),
            probeFile("config", configPath),
            probeFile("env", envPath),
            `if [ -f ${q(secretsPath)} ]; then echo "secrets=$(stat -c '%a %U' ${q(secretsPath)})"; else echo secrets=none; fi`,
            `echo "active=$(systemctl is-active ${unitName} 2>/dev/null || true)"`,
            `echo "enabled=$(systemctl is-enabled ${unitName} 2>/dev/null || true)"`,
            // The unit's User= and Group=: without them the next start fails (217/USER).
            `if getent passwd ${user} >/dev/null; then echo user=present; else echo user=missing; fi`,
            `if getent group ${user} >/dev/null; then echo group=present; else echo group=missing; fi`,
            probeFile("auth-module", authModulePath),
        ].join("\n"),
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
    const authModule = readAsset(`${authModuleName}.py`);
    const runsOn = renderRunsOn(s.runsOn);
    // Every file whose change must restart the running service.
    const served = [unitPath, configPath, envPath, secretsPath, authModulePath, runsOnPath].map(q).join(" ");
    const base = `http://${probeHost(c.server.host)}:${c.server.port}`;
    // The key reaches curl as a config on stdin (-K -), from a here-string: on a command line (-H) it
    // would show in ps and /proc/PID/cmdline to every user on the box while curl runs. Not a pipe from
    // printf: without a key curl never reads stdin, and a printf that writes after curl exited dies of
    // SIGPIPE, which pipefail turned into a spurious "GET /v1/models failed".
    const authedGet = (url: string) =>
        `curl -fsS --max-time 10 \${VLLM_WS_API_KEY:+-K -} ${q(url)} <<<"header = \\"Authorization: Bearer \${VLLM_WS_API_KEY:-}\\""`;
    const user = q(c.server.user);
    return {
        apply: [
            // Changes the API key's id when the key changes, so a rotated key restarts the service.
            `# api-key: ${s.apiKeyId ?? "none"}`,
            // Made here, before systemd's CacheDirectory= would make it, so that the record says whether
            // the stack made it or it was there before (then left in place).
            `own_dir ${q(cacheHome)}`,
            `own_dir ${q(etcDir)}`,
            // A user made again (deleted by hand) has a new uid: the running process must not keep the old one.
            `uid_before=$(id -u ${user} 2>/dev/null || echo none)`,
            // A user or group made here is recorded, so that remove deletes only what the stack made.
            `own_user ${user} ${q(cacheHome)}`,
            // WSL2 exposes the GPU as /dev/dxg; native Linux as /dev/nvidia*, group video on some distributions.
            `getent group video >/dev/null && usermod -aG video ${user} || true`,
            // Missing files (a first run) are part of the "before" state, not an error under pipefail.
            `before=$({ cat ${served} 2>/dev/null || true; } | sha256sum)`,
            `own_dir ${q(pythonDir)}`,
            writeFile(authModulePath, authModule),
            writeFile(runsOnPath, runsOn),
            writeFile(configPath, yaml),
            writeFile(envPath, env),
            `if [ -n "\${VLLM_WS_API_KEY:-}" ]; then`,
            `  umask 077; printf 'VLLM_API_KEY=%s\\n' "$VLLM_WS_API_KEY" >${q(secretsPath)}.part && chmod 0600 ${q(secretsPath)}.part && mv -f ${q(secretsPath)}.part ${q(secretsPath)}`,
            `else rm -f ${q(secretsPath)}; fi`,
            ownFile(unitPath, unit),
            writeFile(unitPath, unit),
            `after=$({ cat ${served} 2>/dev/null || true; } | sha256sum)`,
            `systemctl daemon-reload`,
            `systemctl enable ${unitName} 2>/dev/null`,
            `if [ "$before" != "$after" ] || [ "$uid_before" != "$(id -u ${user})" ] || ! systemctl is-active --quiet ${unitName}; then`,
            `  ${say("(re)starting vllm-workstation.service")}`,
            `  systemctl restart ${unitName}`,
            `fi`,
            say(`waiting for ${base}/health (up to ${c.server.healthTimeoutSeconds}s: loading the weights takes minutes)`),
            `deadline=$((SECONDS + ${c.server.healthTimeoutSeconds}))`,
            `until curl -fsS -o /dev/null --max-time 5 ${q(`${base}/health`)}; do`,
            `  if systemctl is-failed --quiet ${unitName} || [ $SECONDS -ge $deadline ]; then`,
            `    echo "vllm-workstation.service did not become healthy; its last log lines:" >&2`,
            `    journalctl -u ${unitName} -n 40 --no-pager >&2 || true`,
            `    echo "Fix the cause above (see also: npm run doctor), then run pulumi up again." >&2`,
            `    exit 1`,
            `  fi`,
            `  sleep 2`,
            `done`,
            `models=$(${authedGet(`${base}/v1/models`)}) || { echo "GET /v1/models failed" >&2; exit 1; }`,
            `case "$models" in *${q(`"${servedModelName(c)}"`)}*) ;; *) echo ${q(`GET /v1/models does not list ${servedModelName(c)}: `)}"$models" >&2; exit 1 ;; esac`,
            say(`serving ${servedModelName(c)} at ${base}/v1`),
        ].join("\n"),
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
        ].join("\n"),
        remove: [
            `systemctl disable --now ${unitName} 2>/dev/null || true`,
            `own_remove_file ${q(unitPath)}`,
            `rm -f ${q(configPath)} ${q(envPath)} ${q(secretsPath)} ${q(authModulePath)} ${q(runsOnPath)}`,
            `own_release_dir ${q(pythonDir)}`,
            `systemctl daemon-reload`,
            `own_remove_tree ${q(cacheHome)}`,
            `own_remove_user ${user} ${q(etcDir)}`,
        ].join("\n"),
    };
}

/** A short, non-reversible id of the API key: it changes when the key does, and reveals nothing. */
export function apiKeyId(key: string): string {
    return sha256(`vllm-workstation:${key}`).slice(0, 12);
}

export interface VllmServiceArgs {
    readonly connection: Connection;
    readonly config: WorkstationConfig;
    readonly plan: ServingPlan;
    readonly snapshotPath: pulumi.Input<string>;
    readonly tiktokenDir: pulumi.Input<string>;
    readonly apiKey: pulumi.Output<string> | null;
    /** Ids of what the service runs on (ServiceInputs.runsOn). */
    readonly runsOn: Readonly<Record<string, string>>;
    /** What the program saw of each piece this run, by name (observe.ts); null: the last refresh's. */
    readonly observed: Observed | null;
}

export class VllmService extends pulumi.ComponentResource {
    /** The OpenAI-compatible base URL; resolves only after /health and /v1/models answered. */
    public readonly endpoint: pulumi.Output<string>;

    constructor(name: string, args: VllmServiceArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:VllmService", name, {}, opts);
        // The id reveals nothing of the key; left secret, it would hide every script of the unit in diffs.
        const keyId = args.apiKey === null ? pulumi.output(null) : pulumi.unsecret(args.apiKey.apply(apiKeyId));
        const scripts = pulumi
            .all([args.snapshotPath, args.tiktokenDir, keyId])
            .apply(([snapshotPath, tiktokenDir, id]) => serviceScripts({ config: args.config, plan: args.plan, snapshotPath, tiktokenDir, apiKeyId: id, runsOn: args.runsOn }));
        const piece = servicePiece(args.config);
        const unit = pieceState(`${name}-unit`, piece, scripts, { connection: args.connection, observed: args.observed, secretEnv: args.apiKey === null ? {} : args.apiKey.apply((k) => ({ VLLM_WS_API_KEY: k })) }, { parent: this });
        this.endpoint = ready(unit, endpointUrl(args.config));
        this.registerOutputs({ endpoint: this.endpoint });
    }
}
