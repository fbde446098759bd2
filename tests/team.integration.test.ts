// One tracked stack file for a whole team: two machines, each with its own backend and passphrase,
// converge their own boxes from the same checkout and the same tracked Pulumi.dev.yaml, one after the
// other. Each machine's layer (the engine's stack file, with its passphrase's salt) lives in its own
// project directory's .stacks/, so no tracked file changes, and the two boxes end up byte for byte the
// same. A machine whose stack file is deleted gets its salt back from the backend's state.
// Test doubles (no GPU here): the boxes' nvidia-smi and nvcc, the vLLM wheels, the Hub.
import test from "ava";
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { guessLook, lookingAhead, workstationProgram } from "../components/program";
import { openStack, projectRoot } from "../scripts/engine";
import { Box, startBox } from "./helpers/box";
import { sshTarget, testStack, TestStack } from "./helpers/stack";
import { installGpuDoubles, programLookKey, wheelhouse } from "./helpers/workstation";
import { HfEndpoint, PackageIndex, startHfEndpoint, startPackageIndex } from "./infra/servers/index";

const venv = "/opt/vllm-workstation/venv";
const modelDir = "/var/lib/vllm-workstation/hf";

let boxes: Box[] = [];
let stacks: TestStack[] = [];
let index: PackageIndex;
let hub: HfEndpoint;

test.after.always(async () => {
    for (const ts of stacks) {
        try {
            await ts.stack.destroy({ onOutput: ts.onOutput });
        } catch {
            // the box goes away below anyway
        }
        ts.remove();
    }
    await Promise.all([...boxes.map((b) => b.stop()), index?.stop(), hub?.stop()]);
});

const gitStatus = () => execFileSync("git", ["status", "--porcelain"], { cwd: projectRoot, encoding: "utf8" });

/**
 * What the stack put on a box, as `sha256  path` lines: every file that an installed package's RECORD
 * lists, every file and link of the model cache, and the service's unit, vLLM config and environment.
 */
async function fingerprint(box: Box): Promise<{ packages: string; model: string; service: string }> {
    const packages = await box.sh(`cd ${venv} && python3 -`, {
        input: `
import csv, glob, hashlib, os
site = glob.glob("lib/python3*/site-packages")[0]
for record in sorted(glob.glob(site + "/*.dist-info/RECORD")):
    with open(record, newline="") as f:
        for row in csv.reader(f):
            p = os.path.normpath(os.path.join(site, row[0]))
            h = hashlib.sha256(open(p, "rb").read()).hexdigest() if os.path.isfile(p) else "absent"
            print(h + "  " + p)
`,
    });
    // The stack's manifest of the verified files records each one's mtime, which is this box's own
    // download time: it is compared without it.
    const manifest = `models--openai--gpt-oss-20b/.vllm-workstation-manifest-${hub.commitSha}.json`;
    const model = await box.sh(
        `cd ${modelDir} && find . \\( -type f -o -type l \\) ! -path ./${manifest} -print0 | sort -z | while IFS= read -r -d '' f; do ` +
            `if [ -L "$f" ]; then echo "link $(readlink "$f")  $f"; else echo "$(sha256sum < "$f" | cut -c1-64)  $f"; fi; done; ` +
            `python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); m["files"] = [f[:2] for f in m["files"]]; print("manifest", json.dumps(m, sort_keys=True))' ${manifest}`,
    );
    const service = await box.sh(
        `{ find /etc/vllm-workstation -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum /etc/systemd/system/vllm-workstation.service /etc/profile.d/vllm-workstation-cuda.sh; }`,
    );
    return { packages, model, service };
}

test.serial("two machines converge their own boxes from the same tracked stack file, change no tracked file, and get the same bytes", async (t) => {
    t.timeout(20 * 60 * 1000);
    const tracked = path.join(projectRoot, "Pulumi.dev.yaml");
    const trackedBefore = fs.readFileSync(tracked);
    const statusBefore = gitStatus();
    [boxes, [index, hub]] = await Promise.all([
        Promise.all([startBox({ name: "team-a" }), startBox({ name: "team-b" })]),
        Promise.all([startPackageIndex({ wheelhouse }), startHfEndpoint()]),
    ]);
    await Promise.all(boxes.map((b) => installGpuDoubles(b, "rtx4090")));
    // Only what differs between machines, or exists only at run time, is set on each; the rest (Python,
    // vLLM pins, the tier, the health timeout) comes from the tracked file. The port is the same on both
    // machines, away from the one the demo uses.
    const port = 19000 + Math.floor(Math.random() * 1000);
    const fingerprints = [];
    for (const [i, box] of boxes.entries()) {
        const machine = `machine-${"ab"[i]}`;
        const ts = await testStack({
            name: machine,
            stackName: "dev",
            stackConfigDir: ".stacks",
            program: workstationProgram,
            config: {
                target: sshTarget(box),
                python: { indexUrl: index.url },
                model: { revision: hub.commitSha, endpoint: hub.url, tiktoken: { baseUrl: hub.tiktoken.baseUrl, files: hub.tiktoken.files } },
                server: { port },
            },
            env: { PULUMI_CONFIG_PASSPHRASE: `${machine}-${crypto.randomBytes(12).toString("hex")}` },
        });
        stacks.push(ts);
        const machineFile = path.join(ts.dir, ".stacks", "Pulumi.dev.yaml");
        t.regex(fs.readFileSync(machineFile, "utf8"), /^encryptionsalt: v1:/m, `${machine}: the engine's salt went to this machine's own stack file`);
        // npm run up's early look reads the same two layers as the program does, so it is used.
        const key = await ts.stack.up({ onOutput: ts.onOutput, program: async () => ({ key: programLookKey() }) });
        t.is(key.outputs.key.value, guessLook(ts.dir, "dev")?.key, `${machine}: the early look's guess is the program's look`);
        let r;
        try {
            r = await ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "dev") });
        } catch (e) {
            t.log(ts.output.join("").slice(-6000));
            throw e;
        }
        t.is(r.summary.result, "succeeded", machine);
        t.is(r.outputs.endpoint.value, `http://127.0.0.1:${port}/v1`);
        t.is((r.outputs.vllmFlags.value as Record<string, unknown>)["max-model-len"], 32768, `${machine}: the tracked file's 24gb tier`);
        t.regex(await box.sh(`${venv}/bin/python --version`), /^Python 3\.11\./, `${machine}: the tracked file's Python`);
        t.is(gitStatus(), statusBefore, `${machine}: git status is as before the run`);
        t.deepEqual(fs.readFileSync(tracked), trackedBefore, `${machine}: the tracked stack file is byte for byte the same`);
        // The next machine's service takes the same port on this host's loopback.
        await box.sh("systemctl stop vllm-workstation");
        fingerprints.push(await fingerprint(box));
    }
    const [a, b] = fingerprints;
    t.true(a.packages.split("\n").length > 100, "the RECORDs list the installed packages' files");
    t.regex(a.packages, /site-packages\/vllm\/__init__\.py\n/);
    t.false(/^absent /m.test(a.packages), "every file a RECORD lists is there");
    t.regex(a.model, /snapshots\/\w+\/config\.json/);
    t.regex(a.model, /^manifest \{.*"files": \[\[/m);
    t.is(a.packages, b.packages, "the same installed packages, file by file");
    t.is(a.model, b.model, "the same model files");
    t.is(a.service, b.service, "the same unit, vLLM config and environment files");
});

test("a machine whose stack file was deleted gets its salt back from the backend's state on the next run", async (t) => {
    const passphrase = crypto.randomBytes(12).toString("hex");
    const ts = await testStack({ name: "salt", stackName: "salt", stackConfigDir: ".stacks", program: async () => ({ ok: true }), env: { PULUMI_CONFIG_PASSPHRASE: passphrase } });
    t.teardown(() => ts.remove());
    const file = path.join(ts.dir, ".stacks", "Pulumi.salt.yaml");
    const salt = fs.readFileSync(file, "utf8").match(/^encryptionsalt: (.*)$/m)?.[1];
    t.truthy(salt);
    await ts.stack.up({ onOutput: ts.onOutput });
    fs.rmSync(file);
    const again = await openStack({ stack: "salt", program: async () => ({ ok: true }), workDir: ts.dir, stateDir: path.join(ts.dir, "state"), env: { PULUMI_CONFIG_PASSPHRASE: passphrase } });
    const r = await again.up({ onOutput: ts.onOutput });
    t.is(r.summary.result, "succeeded");
    t.is(fs.readFileSync(file, "utf8").match(/^encryptionsalt: (.*)$/m)?.[1], salt, "the state's salt, not a new one");
});
