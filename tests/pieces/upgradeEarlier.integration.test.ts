// The first upgrade of a box whose service was set up by a release that wrote no serves file and noted
// no model revision in the record: when that upgrade changes the model revision, the revision that served
// is kept for the way back, noted as the stack's, and removed by destroy with the rest.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels, the Hub (a second commit
// of the model's repository, "b").
import test from "ava";
import * as crypto from "crypto";
import type { Box } from "../helpers/box";
import type { TestStack } from "../helpers/stack";
import type { HfEndpoint } from "../infra/servers/index";
import { startUpgradeRig, UpgradeRig } from "../helpers/upgradeRig";
import { boxSnapshot } from "../helpers/workstation";

let rig: UpgradeRig;
let box: Box;
let hub: HfEndpoint;
let ts: TestStack;
let before: string;

const cache = "/var/lib/vllm-workstation/hf";
const repoDir = `${cache}/models--openai--gpt-oss-20b`;
const record = "/var/lib/vllm-workstation-record";
/** The record's entry of a model revision the stack noted (own.sh: own_note_hf_revision). */
const revisionEntry = (rev: string) => `${record}/${crypto.createHash("sha256").update(`hf-revision ${cache} openai/gpt-oss-20b ${rev}`).digest("hex").slice(0, 32)}`;

test.before(async () => {
    rig = await startUpgradeRig({ name: "upearly", hub: { repos: [{ repoId: "openai/gpt-oss-20b", variants: ["b"] }] } });
    ({ box, hub, ts } = rig);
    before = await boxSnapshot(box);
});

test.after.always(() => rig?.stop());

test.serial("a box served as an earlier release left it: no serves file, the revision not in the record", async (t) => {
    t.is((await rig.up(t)).summary.result, "succeeded");
    t.is((await box.exec(`test -f ${revisionEntry(hub.commitSha)}`)).code, 0, "this release notes the revision");
    await box.sh(`rm /etc/vllm-workstation/service.serves ${revisionEntry(hub.commitSha)}`);
});

test.serial("its first upgrade to another revision keeps the revision that served, noted as the stack's", async (t) => {
    await ts.stack.setConfig("model.revision", { value: hub.repo.variants.b.commitSha }, true);
    t.is((await rig.up(t)).summary.result, "succeeded");
    t.deepEqual((await box.sh(`ls -1 ${repoDir}/snapshots`)).trim().split("\n").sort(), [hub.commitSha, hub.repo.variants.b.commitSha].sort());
    t.is((await box.exec(`test -f ${revisionEntry(hub.commitSha)}`)).code, 0, "the kept revision is in the record");
});

test.serial("destroy removes both revisions: the box is as before the stack", async (t) => {
    t.is((await ts.stack.destroy({ onOutput: ts.onOutput })).summary.result, "succeeded");
    t.is((await box.exec(`test -e ${repoDir}`)).code, 1, "no revision is left");
    t.is(await boxSnapshot(box), before);
});
