// An upgrade of the model revision on the throwaway box, through the real engine over SSH: a new
// revision that comes with a vLLM that fails to start is rolled back to the revision that served (its
// files kept and verified), the new revision and install stay until the next switch that succeeds, which
// removes what is neither served nor kept, and a destroy right after a rollback leaves the box as it was.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM wheels (0.11.1+broken exits at
// `vllm serve`), the Hub (two more commits of the model's repository, "b" and "c").
import test from "ava";
import { lookingAhead } from "../../components/program";
import { parseConfig } from "../../components/config/schema";
import type { Box } from "../helpers/box";
import type { TestStack } from "../helpers/stack";
import type { FixtureFile, HfEndpoint } from "../infra/servers/index";
import { startUpgradeRig, UpgradeRig, venv } from "../helpers/upgradeRig";
import { boxSnapshot } from "../helpers/workstation";

let rig: UpgradeRig;
let box: Box;
let hub: HfEndpoint;
let ts: TestStack;
let before: string;
/** The revisions: a is main, b and c later commits of the same repository. */
let rev: { a: string; b: string; c: string };

const installs = `${venv}-tools/installs`;
const repoDir = "/var/lib/vllm-workstation/hf/models--openai--gpt-oss-20b";

test.before(async () => {
    rig = await startUpgradeRig({ name: "uprev", hub: { repos: [{ repoId: "openai/gpt-oss-20b", variants: ["b", "c"] }] } });
    ({ box, hub, ts } = rig);
    rev = { a: hub.commitSha, b: hub.repo.variants.b.commitSha, c: hub.repo.variants.c.commitSha };
    before = await boxSnapshot(box);
});

test.after.always(() => rig?.stop());

const program = () => lookingAhead(ts.dir, "test");

async function set(vllmVersion: string, revision: string) {
    await ts.stack.setConfig("python.vllmVersion", { value: vllmVersion }, true);
    await ts.stack.setConfig("model.revision", { value: revision }, true);
}

const keyOf = (vllmVersion: string) => rig.installOf(vllmVersion).split("/").pop()!;

const lines = (s: string) => s.trim().split("\n").filter(Boolean).sort();
/** The snapshot the unit names, and the one the running vLLM was started on (its command line). */
const unitSnapshot = async () => /\/snapshots\/([0-9a-f]{40}) /.exec(await box.sh("systemctl show -p ExecStart --value vllm-workstation"))?.[1];
const servedSnapshot = async () =>
    /\/snapshots\/([0-9a-f]{40})$/m.exec(await box.sh(`tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value vllm-workstation)/cmdline`))?.[1];
const servesFile = async () => box.sh("cat /etc/vllm-workstation/service.serves");
const snapshotsOnDisk = async () => lines(await box.sh(`ls -1 ${repoDir}/snapshots 2>/dev/null || true`));
const installsOnDisk = async () => lines(await box.sh(`ls -1 ${installs} 2>/dev/null || true`));

/** model.exclude's globs as the download reads them (fnmatch: `*` matches `/` too). */
const excluded = (name: string) =>
    parseConfig({ model: { revision: rev.a } }).model.exclude.some((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`).test(name));

/** Every file of a revision (but the excluded) is in its snapshot with the bytes the Hub has, and its manifest is there. */
async function verified(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void; is: (a: unknown, b: unknown, m?: string) => void }, revision: string, files: Readonly<Record<string, FixtureFile>>) {
    const names = Object.keys(files)
        .filter((n) => !excluded(n))
        .sort();
    const got = await box.sh(`cd ${repoDir}/snapshots/${revision} && sha256sum -- ${names.map((n) => `'${n}'`).join(" ")}`);
    t.deepEqual(
        Object.fromEntries(lines(got).map((l) => [l.slice(66), l.slice(0, 64)])),
        Object.fromEntries(names.map((n) => [n, files[n].sha256])),
        `${revision}'s files are all there with the Hub's bytes`,
    );
    t.is((await box.exec(`test -s ${repoDir}/.vllm-workstation-manifest-${revision}.json`)).code, 0, `${revision}'s manifest is kept`);
}

test.serial("a first up serves revision a", async (t) => {
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await servedSnapshot(), rev.a);
    t.deepEqual(await snapshotsOnDisk(), [rev.a]);
});

test.serial("a new revision with a vLLM that fails to start rolls back to revision a: its unit, its process and all of a's files, and preview still shows the change", async (t) => {
    await set("0.11.1+broken", rev.b);
    const err = await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: program() }));
    const said = `${err?.message ?? ""}\n${ts.output.join("")}`;
    t.regex(said, new RegExp(`rolled back: vllm-workstation\\.service serves again on the previous packages \\(${rig.installOf("0.11.0")}\\), model revision \\(${rev.a}\\)`));
    t.is(await rig.servedVersion(), "0.11.0");
    t.is(await unitSnapshot(), rev.a, "the unit points at revision a again");
    t.is(await servedSnapshot(), rev.a, "the service runs on revision a");
    t.regex(await servesFile(), new RegExp(`^revision=${rev.a}$`, "m"));
    await verified(t, rev.a, hub.repo.files);
    t.deepEqual(await snapshotsOnDisk(), [rev.a, rev.b].sort(), "revision b stays for the next try");
    t.deepEqual(await installsOnDisk(), [keyOf("0.11.0"), keyOf("0.11.1+broken")].sort());
    t.deepEqual(await rig.changes(), { update: 1 }, "only the service is still to change");
});

test.serial("going back to revision a after the rollback removes revision b and the failed install, which never served", async (t) => {
    await set("0.11.0", rev.a);
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await servedSnapshot(), rev.a);
    await verified(t, rev.a, hub.repo.files);
    t.deepEqual(await snapshotsOnDisk(), [rev.a], "the revision that never served is gone");
    t.is((await box.exec(`ls ${repoDir}/.vllm-workstation-manifest-${rev.b}.json`)).code, 2, "with its manifest");
    t.deepEqual(await installsOnDisk(), [keyOf("0.11.0")], "and so is the install that never served");
    t.deepEqual(await rig.changes(), {});
});

test.serial("revision b with a vLLM that starts converges, keeps revision a and its install to go back to, and a second up is a no-op", async (t) => {
    await set("0.11.2", rev.b);
    const r = await rig.up(t);
    t.is(r.summary.result, "succeeded");
    t.is(await rig.servedVersion(), "0.11.2");
    t.is(await servedSnapshot(), rev.b);
    await verified(t, rev.b, hub.repo.variants.b.files);
    await verified(t, rev.a, hub.repo.files);
    t.deepEqual(await snapshotsOnDisk(), [rev.a, rev.b].sort());
    t.deepEqual(await installsOnDisk(), [keyOf("0.11.0"), keyOf("0.11.2")].sort());
    const again = await rig.up(t, { expectNoChanges: true });
    t.deepEqual(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same"), []);
});

test.serial("a rolled-back revision c is removed by a destroy right after the rollback, with everything else: the box is as before the stack", async (t) => {
    await set("0.11.1+broken", rev.c);
    await t.throwsAsync(ts.stack.up({ onOutput: ts.onOutput, program: program() }), { message: /rolled back/ });
    t.is(await servedSnapshot(), rev.b);
    t.deepEqual(await snapshotsOnDisk(), [rev.a, rev.b, rev.c].sort());
    t.deepEqual(await installsOnDisk(), [keyOf("0.11.0"), keyOf("0.11.1+broken"), keyOf("0.11.2")].sort());
    t.is((await box.exec("test -d /etc/vllm-workstation/previous")).code, 0);

    const d = await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is(d.summary.result, "succeeded");
    for (const p of [venv, `${venv}-tools`, "/etc/vllm-workstation", "/var/lib/vllm-workstation", "/var/lib/vllm-workstation-record", "/etc/systemd/system/vllm-workstation.service"]) {
        t.is((await box.exec(`test -e ${p} || test -L ${p}`)).code, 1, `${p} is gone`);
    }
    t.is((await box.exec("id vllm")).code, 1, "the service's user is gone");
    t.is(await boxSnapshot(box), before);
});
