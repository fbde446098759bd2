// The plain `pulumi` path, as a user with an official Pulumi install walks it: Pulumi's own Node.js
// language host (built from Pulumi's source, in ../shared/tools beside the checkout; a workstation's
// official install brings it) next to the project's CLI, and nothing else: automatic plugin download left
// on, no network, an empty plugin cache but the docker provider the Node SDK package asks for. In the
// project directory: login, stack init, a refused preview, up, preview --expect-no-changes, a drifted
// preview, destroy. HostState's provider comes from Pulumi.yaml's `plugins:` (tools/provider/bin).
// The same refusal through the npm path (scripts/stack.ts, in process) prints once too.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels, the Hub.
import test from "ava";
import { execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { projectRoot } from "../scripts/engine";
import { Box, startBox } from "./helpers/box";
import { sshTarget } from "./helpers/stack";
import { tempDir } from "./helpers/tempDir";
import { installGpuDoubles, wheelhouse } from "./helpers/workstation";
import { HfEndpoint, PackageIndex, startHfEndpoint, startPackageIndex } from "./infra/servers/index";

/** ../shared beside the checkout (VLLM_WS_SHARED moves it): real Pulumi plugins the registries here do not serve. */
const sharedTools = path.join(process.env.VLLM_WS_SHARED ?? path.join(projectRoot, "..", "shared"), "tools");

interface Run {
    readonly code: number;
    readonly out: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        p.on("error", reject);
        p.on("close", (code) => resolve({ code: code ?? -1, out }));
    });
}

let box: Box | undefined;
let index: PackageIndex | undefined;
let hub: HfEndpoint | undefined;
const cleanups: Array<() => Promise<unknown> | void> = [];

test.after.always(async () => {
    for (const c of cleanups.reverse()) {
        try {
            await c();
        } catch {
            // best effort; the box and temp dirs go away regardless
        }
    }
    await Promise.all([box?.stop(), index?.stop(), hub?.stop()]);
});

test.serial("plain pulumi with the official Node.js language host: stack init, a refusal, up, no changes, drift, destroy, no download, no tracked file changed", async (t) => {
    t.timeout(15 * 60 * 1000);
    if (!fs.existsSync(path.join(sharedTools, "pulumi-language-nodejs"))) {
        t.fail(`${sharedTools} is absent: this test needs Pulumi's Node.js language host from there (see its README.md); set VLLM_WS_SHARED to the folder that holds tools/`);
        return;
    }
    const statusBefore = execFileSync("git", ["status", "--porcelain"], { cwd: projectRoot, encoding: "utf8" });
    // A bin folder as an official install lays it out: the CLI with its language host and shim beside it.
    const home = tempDir(t, "official");
    const bin = path.join(home, "bin");
    fs.mkdirSync(bin);
    const cli = fs.realpathSync(execFileSync("sh", ["-c", "command -v pulumi"], { encoding: "utf8" }).trim());
    try {
        fs.linkSync(cli, path.join(bin, "pulumi"));
    } catch {
        fs.copyFileSync(cli, path.join(bin, "pulumi"));
        fs.chmodSync(path.join(bin, "pulumi"), 0o755);
    }
    for (const f of ["pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"]) fs.symlinkSync(path.join(sharedTools, f), path.join(bin, f));
    const nodeDir = path.dirname(process.execPath);
    const env: NodeJS.ProcessEnv = {
        HOME: home,
        PATH: [bin, nodeDir, "/usr/local/bin", "/usr/bin", "/bin"].join(":"),
        PULUMI_HOME: path.join(home, "pulumi-home"),
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_CONFIG_PASSPHRASE_FILE: path.join(home, "passphrase"),
        NO_COLOR: "1",
    };
    fs.writeFileSync(env.PULUMI_CONFIG_PASSPHRASE_FILE!, crypto.randomBytes(18).toString("base64url") + "\n", { mode: 0o600 });
    const pulumi = async (...args: string[]) => {
        const r = await run(path.join(bin, "pulumi"), [...args, "--non-interactive"], env);
        t.log(`$ pulumi ${args.join(" ")} -> ${r.code}`);
        return r;
    };
    const ok = async (...args: string[]) => {
        const r = await pulumi(...args);
        if (r.code !== 0) t.log(r.out.slice(-6000));
        t.is(r.code, 0, `pulumi ${args.join(" ")}`);
        return r;
    };

    [box, index, hub] = await Promise.all([startBox({ name: "official" }), startPackageIndex({ wheelhouse }), startHfEndpoint()]);
    await installGpuDoubles(box, "rtx4090");
    fs.mkdirSync(path.join(home, "state"));
    await ok("login", `file://${path.join(home, "state")}`);

    const stack = `official-${crypto.randomBytes(4).toString("hex")}`;
    const machineFile = path.join(projectRoot, ".stacks", `Pulumi.${stack}.yaml`);
    cleanups.push(() => fs.rmSync(machineFile, { force: true }));
    await ok("stack", "init", stack);
    cleanups.push(() => pulumi("stack", "rm", stack, "--yes", "--force"));
    t.regex(fs.readFileSync(machineFile, "utf8"), /^encryptionsalt: v1:/m, "stack init wrote its salt into this machine's .stacks/");

    // This stack has no tracked file: all of its config is this machine's (pulumi config set would write
    // the same file).
    const port = 20000 + Math.floor(Math.random() * 1000);
    const config = (extra: Record<string, unknown>) => {
        const doc = yaml.load(fs.readFileSync(machineFile, "utf8")) as Record<string, unknown>;
        const base = yaml.load(fs.readFileSync(path.join(projectRoot, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, Record<string, unknown>> };
        const c = { ...base.config };
        const set = (k: string, v: Record<string, unknown>) => (c[`vllm-workstation:${k}`] = { ...(c[`vllm-workstation:${k}`] ?? {}), ...v });
        set("target", sshTarget(box!));
        set("python", { indexUrl: index!.url });
        set("model", { revision: hub!.commitSha, endpoint: hub!.url, tiktoken: { baseUrl: hub!.tiktoken.baseUrl, files: hub!.tiktoken.files } });
        set("server", { ...extra });
        fs.writeFileSync(machineFile, yaml.dump({ ...doc, config: c }));
    };

    // A refusal: reported once by the language host, with no Node warning about a rejection handled late.
    const bad = `no-port-${crypto.randomBytes(3).toString("hex")}`;
    config({ port: bad });
    const refused = await pulumi("preview", "--stack", stack);
    t.not(refused.code, 0);
    const says = new RegExp(`server\\.port.*${bad}`, "g");
    t.is(refused.out.match(says)?.length, 1, refused.out);
    t.false(/PromiseRejectionHandledWarning|UnhandledPromiseRejection|\(node:\d+\)/.test(refused.out), refused.out);
    // The same refusal through the npm path (npm run preview runs this script), in one process.
    const npmPath = await run(process.execPath, [path.join(projectRoot, "dist", "scripts", "stack.js"), "preview", "--stack", stack], {
        ...env,
        PATH: `${path.dirname(cli)}:${nodeDir}:/usr/bin:/bin`,
        PULUMI_BACKEND_URL: `file://${path.join(home, "state")}`,
    });
    t.is(npmPath.code, 1, npmPath.out);
    t.is(npmPath.out.match(says)?.length, 1, npmPath.out);
    t.false(/PromiseRejectionHandledWarning|UnhandledPromiseRejection|\(node:\d+\)/.test(npmPath.out), npmPath.out);

    config({ port });
    const up = await ok("up", "--stack", stack, "--yes");
    t.regex(up.out, new RegExp(`endpoint\\s*:\\s*"http://127\\.0\\.0\\.1:${port}/v1"`));
    t.regex(up.out, /hoststate:index:HostState/);
    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: Array<{ id: string }> };
    t.deepEqual(models.data.map((m) => m.id), ["gpt-oss-20b"]);
    await ok("preview", "--stack", stack, "--expect-no-changes");

    // Drift: an edited unit file. A plain preview shows it and exits 0; --expect-no-changes fails.
    await box.sh("echo '# edited by hand' >> /etc/systemd/system/vllm-workstation.service");
    const drifted = await ok("preview", "--stack", stack);
    t.regex(drifted.out, /~\s+hoststate:index:HostState/);
    const strict = await pulumi("preview", "--stack", stack, "--expect-no-changes");
    t.is(strict.code, 7, "preview --expect-no-changes exits 7 (the CLI's ExitNoChanges) on drift");
    t.regex(strict.out, /error: no changes were expected for preview but changes were proposed/);

    await ok("destroy", "--stack", stack, "--yes");
    t.false(fs.existsSync(path.join(box.root, "etc/systemd/system/vllm-workstation.service")), "destroy removed the unit");

    t.false(fs.existsSync(path.join(env.PULUMI_HOME!, "plugins", "resource-hoststate-v0.1.0")), "HostState's provider never went to the plugin cache");
    t.deepEqual(fs.readdirSync(bin).sort(), ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"], "nothing was written beside the CLI");
    t.is(execFileSync("git", ["status", "--porcelain"], { cwd: projectRoot, encoding: "utf8" }), statusBefore, "no tracked file changed");
});
