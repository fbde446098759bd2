// The upgrade's costs on the throwaway box: the service's switch between two installed vLLM versions
// (the step's own script: files, link, restart, the health gate, the pruning) against a plain restart
// with the same health check, and the install of a new lock beside the one in service (the packages
// step's own script: venv, lock, sync) against `uv venv` + `uv pip sync` of the same lock from the same
// index. Each pair runs the same number of times, alternating, on the same box and cache state.
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../../components/config/schema";
import { renderStdin } from "../../components/host/connection";
import { indexEnv, installPath, packageScripts } from "../../components/pieces/python";
import { q } from "../../components/host/shell";
import { lookingAhead, workstationProgram } from "../../components/program";
import { Box, startBox } from "../../tests/helpers/box";
import { testStack, TestStack } from "../../tests/helpers/stack";
import { boxStackConfig, installGpuDoubles } from "../../tests/helpers/workstation";
import { HfEndpoint, PackageIndex, startHfEndpoint, startPackageIndex } from "../../tests/infra/servers/index";

/** One line of the bench's table. */
export interface UpgradeRow {
    readonly what: string;
    readonly value: string;
    readonly samples: string;
    readonly target: string;
    /** null: no target, or nothing measured. */
    readonly pass: boolean | null;
}

const VENV = "/opt/vllm-workstation/venv";
const UV = `${VENV}-tools/uv`;
const UV_CACHE = `${VENV}-tools/uv-cache`;

const median = (xs: number[]) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]);
const secs = (ms: number | null) => (ms === null ? "n/a" : `${(ms / 1000).toFixed(2)} s`);
const list = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(", ");

/** Runs `command` on the box with `input` on its stdin (by default: the script itself, to `bash -s`), timed. */
async function timedSh(box: Box, input: string): Promise<number>;
async function timedSh(box: Box, command: string, input: string): Promise<number>;
async function timedSh(box: Box, a: string, b?: string): Promise<number> {
    const t0 = Date.now();
    await box.sh(b === undefined ? "bash -s" : a, { input: b ?? a });
    return Date.now() - t0;
}

/** A script of the bench's own (scripts/bench/*.sh), run on the box. */
const benchScript = (name: string) => fs.readFileSync(path.join(__dirname, "..", "..", "..", "scripts", "bench", name), "utf8");

/** What the stack's HostState `name` holds as its apply script now (from the exported state). */
async function applyOf(ts: TestStack, name: string): Promise<string> {
    const state = await ts.stack.exportStack();
    const res = (state.deployment.resources as Array<{ urn: string; outputs?: { apply?: string } }>).find((r) => r.urn.endsWith(`::${name}`));
    if (!res?.outputs?.apply) throw new Error(`no apply script of ${name} in the state`);
    return res.outputs.apply;
}

/** The rows of what was measured; a failure goes to `failed` (the rows then hold what came before it). */
export async function upgradeBench(o: { runs: number }, log: (s: string) => void, failed: (error: string) => void): Promise<UpgradeRow[]> {
    let box: Box | undefined;
    let index: PackageIndex | undefined;
    let hub: HfEndpoint | undefined;
    let ts: TestStack | undefined;
    const switchMs: number[] = [];
    const restartMs: number[] = [];
    const installMs: number[] = [];
    const syncMs: number[] = [];
    try {
        // The default wheelhouse: the vllm doubles 0.11.0 and 0.11.2.
        [box, index, hub] = await Promise.all([startBox({ name: "bench-upgrade" }), startPackageIndex(), startHfEndpoint()]);
        await installGpuDoubles(box, "rtx4090");
        const port = 18000 + Math.floor(Math.random() * 1000);
        const base = boxStackConfig(box, index, hub, port);
        const config = (vllmVersion: string) => ({ ...base, python: { ...base.python, vllmVersion, flashinferVersion: "0.3.1" }, server: { port, healthTimeoutSeconds: 120 } });
        ts = await testStack({ name: "bench-upgrade", program: workstationProgram, config: config("0.11.0") });
        const up = async (vllmVersion: string) => {
            await ts!.stack.setConfig("python.vllmVersion", { value: vllmVersion }, true);
            const t0 = Date.now();
            await ts!.stack.up({ onOutput: ts!.onOutput, program: lookingAhead(ts!.dir, "test") });
            log(`upgrade bench: up with vllm ${vllmVersion} in ${secs(Date.now() - t0)}`);
            return applyOf(ts!, "workstation-vllm-unit");
        };
        await up("0.11.0");
        const toNew = await up("0.11.2");
        const toOld = await up("0.11.0");
        const b = box;


        // The install: a lock of 0.11.2 as the box resolved it, installed by the packages step's script
        // under a key of its own, and by uv alone; each from a cold uv cache.
        const py = parseConfig({ model: { revision: hub.commitSha }, python: config("0.11.2").python }).python;
        const lock = await b.sh(`cat ${q(`${installPath(py, null)}/requirements.lock`)}`);
        const pkgs = packageScripts(py, lock);
        const env = indexEnv(py);
        const fresh = installPath(py, lock);
        await b.sh(`cat > /root/bench.lock`, { input: lock });

        // Before each sample of either kind, untimed: the disk writes back what came before (the installs
        // and syncs write hundreds of MB, and a switch that followed one waited on that writeback in its
        // renames), as the other phases of the bench do after a converge; and systemd's start limit is
        // cleared: it refuses a sixth start of a unit within 10 s (StartLimitBurst=, StartLimitIntervalSec=),
        // and the samples start it every second or so, where a switch minutes after the last start never
        // meets it.
        const unlimited = () => b.sh("sync && systemctl reset-failed vllm-workstation.service");
        const restart = async () => {
            await unlimited();
            restartMs.push(await timedSh(b, `bash -s -- ${q(`http://127.0.0.1:${port}`)} gpt-oss-20b`, benchScript("restart_and_check.sh")));
        };
        const switchTo = async (apply: string) => {
            await unlimited();
            switchMs.push(await timedSh(b, renderStdin(apply)));
        };
        const install = async () => {
            await b.sh(renderStdin(`own_remove_tree ${q(fresh)}`));
            await b.sh(`UV_CACHE_DIR=${q(UV_CACHE)} ${q(UV)} cache clean -q`);
            installMs.push(await timedSh(b, renderStdin(pkgs.apply, env)));
            // Untimed: the switch that follows would otherwise prune it, a cost of this bench's, not of a switch.
            await b.sh(renderStdin(`own_remove_tree ${q(fresh)}`));
        };
        const sync = async () => {
            await b.sh(`rm -rf /root/bench-venv && UV_CACHE_DIR=${q(UV_CACHE)} ${q(UV)} cache clean -q`);
            syncMs.push(await timedSh(b, `UV_CACHE_DIR=${q(UV_CACHE)} UV_INDEX_URL=${q(env.UV_INDEX_URL)} bash -s -- ${q(UV)} /root/bench.lock /root/bench-venv`, benchScript("plain_sync.sh")));
        };
        // Each pair in both orders, so that neither always runs on a box the other just warmed, nor always
        // first after the install and the sync (which leave the page cache to the uv cache they filled).
        for (let i = 0; i < o.runs; i++) {
            if (i % 2 === 0) {
                await switchTo(toNew);
                await restart();
                await restart();
                await switchTo(toOld);
            } else {
                await restart();
                await switchTo(toNew);
                await switchTo(toOld);
                await restart();
            }
            if (i % 2 === 0) {
                await install();
                await sync();
            } else {
                await sync();
                await install();
            }
        }
        await b.sh(renderStdin(`own_remove_tree ${q(fresh)}`));
        await b.sh("rm -rf /root/bench-venv /root/bench.lock");
        await ts.stack.destroy({ onOutput: ts.onOutput });
    } catch (e) {
        log(`upgrade bench FAILED: ${e instanceof Error ? e.message : String(e)}`);
        failed(e instanceof Error ? e.message : String(e));
        if (ts) await ts.stack.destroy({ onOutput: ts.onOutput }).catch(() => undefined);
    } finally {
        ts?.remove();
        await Promise.all([box?.stop(), index?.stop(), hub?.stop()]);
    }
    const ratio = (a: number[], b: number[]) => {
        const ma = median(a);
        const mb = median(b);
        return ma === null || mb === null || mb === 0 ? null : ma / mb;
    };
    const switchRatio = ratio(switchMs, restartMs);
    const installRatio = ratio(installMs, syncMs);
    return [
        { what: "upgrade: switch between two installed vLLM versions (the service step, health-gated)", value: secs(median(switchMs)), samples: list(switchMs), target: "", pass: null },
        { what: "- plain `systemctl restart` with the same health check", value: secs(median(restartMs)), samples: list(restartMs), target: "", pass: null },
        {
            what: "upgrade: switch / plain restart",
            value: switchRatio === null ? "n/a" : `${switchRatio.toFixed(2)}x`,
            samples: "",
            target: "<= 1.2x",
            pass: switchRatio === null ? null : switchRatio <= 1.2,
        },
        { what: "upgrade: install of a new lock beside the one in service (the packages step, cold uv cache)", value: secs(median(installMs)), samples: list(installMs), target: "", pass: null },
        { what: "- `uv venv` + `uv pip sync` of the same lock from the same index (cold uv cache)", value: secs(median(syncMs)), samples: list(syncMs), target: "", pass: null },
        {
            what: "upgrade: install / uv pip sync",
            value: installRatio === null ? "n/a" : `${installRatio.toFixed(2)}x`,
            samples: "",
            target: "<= 1.2x",
            pass: installRatio === null ? null : installRatio <= 1.2,
        },
    ];
}
