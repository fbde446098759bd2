// The first upgrade of a box whose service was set up by a release that wrote no serves file and noted
// no model revision in the record: when that upgrade changes the model revision, the revision that served
// is kept for the way back, noted as the stack's, and removed by destroy with the rest.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels, the Hub (a second commit
// of the model's repository, "b").
import test from "ava";
import * as crypto from "crypto";
import { lookingAhead, workstationProgram } from "../../components/program";
import { Box, startBox } from "../helpers/box";
import { testStack, TestStack } from "../helpers/stack";
import { HfEndpoint, PackageIndex, startHfEndpoint, startPackageIndex } from "../infra/servers/index";
import { boxSnapshot, boxStackConfig, installGpuDoubles } from "../helpers/workstation";

let box: Box;
let index: PackageIndex;
let hub: HfEndpoint;
let ts: TestStack;
let before: string;

const cache = "/var/lib/vllm-workstation/hf";
const repoDir = `${cache}/models--openai--gpt-oss-20b`;
const record = "/var/lib/vllm-workstation-record";
/** The record's entry of a model revision the stack noted (own.sh: own_note_hf_revision). */
const revisionEntry = (rev: string) => `${record}/${crypto.createHash("sha256").update(`hf-revision ${cache} openai/gpt-oss-20b ${rev}`).digest("hex").slice(0, 32)}`;

test.before(async () => {
    [box, index, hub] = await Promise.all([startBox({ name: "upearly" }), startPackageIndex(), startHfEndpoint({ repos: [{ repoId: "openai/gpt-oss-20b", variants: ["b"] }] })]);
    await installGpuDoubles(box, "rtx4090");
    before = await boxSnapshot(box);
    const port = 18000 + Math.floor(Math.random() * 1000);
    const base = boxStackConfig(box, index, hub, port);
    ts = await testStack({
        name: "upearly",
        program: workstationProgram,
        config: { ...base, python: { ...base.python, vllmVersion: "0.11.0", flashinferVersion: "0.3.1" }, server: { port, healthTimeoutSeconds: 60 } },
    });
});

test.after.always(async () => {
    try {
        await ts?.stack.destroy({ onOutput: ts.onOutput });
    } catch {
        // the destroy test reports destroy's own failures
    }
    ts?.remove();
    await Promise.all([box?.stop(), index?.stop(), hub?.stop()]);
});

async function up(t: { log: (...a: unknown[]) => void }) {
    try {
        return await ts.stack.up({ onOutput: ts.onOutput, program: lookingAhead(ts.dir, "test") });
    } catch (e) {
        t.log(ts.output.join("").slice(-6000));
        throw e;
    }
}

test.serial("a box served as an earlier release left it: no serves file, the revision not in the record", async (t) => {
    t.is((await up(t)).summary.result, "succeeded");
    t.is((await box.exec(`test -f ${revisionEntry(hub.commitSha)}`)).code, 0, "this release notes the revision");
    await box.sh(`rm /etc/vllm-workstation/service.serves ${revisionEntry(hub.commitSha)}`);
});

test.serial("its first upgrade to another revision keeps the revision that served, noted as the stack's", async (t) => {
    await ts.stack.setConfig("model.revision", { value: hub.repo.variants.b.commitSha }, true);
    t.is((await up(t)).summary.result, "succeeded");
    t.deepEqual((await box.sh(`ls -1 ${repoDir}/snapshots`)).trim().split("\n").sort(), [hub.commitSha, hub.repo.variants.b.commitSha].sort());
    t.is((await box.exec(`test -f ${revisionEntry(hub.commitSha)}`)).code, 0, "the kept revision is in the record");
});

test.serial("destroy removes both revisions: the box is as before the stack", async (t) => {
    t.is((await ts.stack.destroy({ onOutput: ts.onOutput })).summary.result, "succeeded");
    t.is((await box.exec(`test -e ${repoDir}`)).code, 1, "no revision is left");
    t.is(await boxSnapshot(box), before);
});
