// Ownership on the throwaway box, through the real engine over SSH: a path that holds someone's files
// is refused before anything changes; the stack's record keeps the Hugging Face cache clean for the real
// huggingface_hub; destroy removes the pinned revision only, leaving another revision a person put in
// the same cache, with the blobs it links.
// Test doubles (no GPU here): the box's nvidia-smi and nvcc, the vLLM and FlashInfer wheels, the Hub.
import test from "ava";
import type { Box } from "../helpers/box";
import { Rig, startRig } from "../helpers/rig";
import type { TestStack } from "../helpers/stack";
import { boxSnapshot } from "../helpers/workstation";

let rig: Rig;
let box: Box;
let ts: TestStack;

const venv = "/opt/vllm-workstation/venv";
const cache = "/var/lib/vllm-workstation/hf";
const repoDir = `${cache}/models--openai--gpt-oss-20b`;
const otherRev = "feedfacefeedfacefeedfacefeedfacefeedface";

test.before(async () => {
    rig = await startRig({ name: "ownership", port: 19000 + Math.floor(Math.random() * 1000) });
    ({ box } = rig);
});

test.after.always(() => rig?.stop());

async function stackWith(config: Record<string, unknown>): Promise<TestStack> {
    ts = await rig.stack({ config });
    return ts;
}

test.serial("up refuses a venvPath and a cache dir that hold someone's files, names both, and changes nothing on the box", async (t) => {
    await box.sh("install -d -o dev -g dev /srv/work /srv/models && echo 'my thesis' > /srv/work/thesis.txt && echo notes > /srv/models/notes.txt");
    const before = await boxSnapshot(box);
    const base = rig.config();
    const s = await stackWith({ ...base, python: { ...base.python, venvPath: "/srv/work" }, model: { ...base.model, cacheDir: "/srv/models" } });
    const err = await t.throwsAsync(s.stack.up({ onOutput: s.onOutput }));
    const printed = `${err?.message ?? ""}\n${s.output.join("")}`;
    t.regex(printed, /\/srv\/work \(python\.venvPath\) is a directory holding "thesis\.txt", which vllm-workstation did not make/);
    t.regex(printed, /\/srv\/models \(model\.cacheDir\) is a directory holding "notes\.txt"/);
    t.regex(printed, /nothing was changed/);
    t.is(await boxSnapshot(box), before, "the box is exactly as before");
    t.is(await box.sh("cat /srv/work/thesis.txt"), "my thesis\n");
});

test.serial("a converged cache holds no file of the stack's own, and the real huggingface_hub finds it consistent", async (t) => {
    const s = await stackWith(rig.config());
    const r = await s.stack.up({ onOutput: s.onOutput });
    t.is(r.summary.result, "succeeded");
    t.is((await box.exec(`test -e ${cache}/.vllm-workstation-made-this`)).code, 1);
    const scan = await box.sh(
        `${venv}/bin/python -c "from huggingface_hub import scan_cache_dir; r = scan_cache_dir('${cache}'); print(len(r.warnings), [ (x.repo_id, len(x.revisions)) for x in r.repos])"`,
    );
    t.is(scan.trim(), "0 [('openai/gpt-oss-20b', 1)]");
    // hf's own CLI: the listing reports no inconsistency, and the pinned revision verifies against the Hub.
    const hf = `HF_ENDPOINT=${rig.hub.url} HF_HUB_DISABLE_TELEMETRY=1 ${venv}/bin/hf`;
    const listed = await box.exec(`${hf} cache ls --cache-dir ${cache}`);
    t.is(listed.code, 0, listed.stderr);
    t.notRegex(`${listed.stdout}${listed.stderr}`, /inconsisten/i);
    const verified = await box.exec(`${hf} cache verify openai/gpt-oss-20b --revision ${rig.hub.commitSha} --cache-dir ${cache}`);
    t.is(verified.code, 0, `${verified.stdout}${verified.stderr}`);
    t.regex(await box.sh("cat /var/lib/vllm-workstation-record/*"), new RegExp(`^made ${venv}$`, "m"), "the record names what up made");
});

test.serial("destroy removes the pinned revision only: another revision a person added stays whole, with the blobs it shares", async (t) => {
    // Another revision as hf would lay it out: one file linking a blob the pinned revision links too,
    // one linking a blob of its own.
    const shared = (await box.sh(`readlink ${repoDir}/snapshots/${rig.hub.commitSha}/config.json`)).trim().replace(/.*\//, "");
    await box.sh(
        [
            `install -d ${repoDir}/snapshots/${otherRev}`,
            `ln -s ../../blobs/${shared} ${repoDir}/snapshots/${otherRev}/config.json`,
            `echo theirs > ${repoDir}/blobs/0000theirs`,
            `ln -s ../../blobs/0000theirs ${repoDir}/snapshots/${otherRev}/notes.md`,
            `install -d ${repoDir}/refs && printf ${otherRev} > ${repoDir}/refs/other`,
        ].join(" && "),
    );
    const configBefore = await box.sh(`cat ${repoDir}/snapshots/${otherRev}/config.json`);
    await ts.stack.destroy({ onOutput: ts.onOutput });
    t.is((await box.exec(`test -e ${repoDir}/snapshots/${rig.hub.commitSha}`)).code, 1, "the pinned revision is gone");
    t.is(await box.sh(`cat ${repoDir}/snapshots/${otherRev}/config.json`), configBefore);
    t.is(await box.sh(`cat ${repoDir}/snapshots/${otherRev}/notes.md`), "theirs\n");
    t.is(await box.sh(`cat ${repoDir}/refs/other`), otherRev);
    t.is((await box.sh(`ls ${repoDir}/blobs | sort`)).trim(), ["0000theirs", shared].sort().join("\n"), "only the blobs the other revision links remain");
    t.is((await box.exec(`test -e ${venv}`)).code, 1, "the venv the stack made is gone");
    t.is((await box.exec("systemctl cat vllm-workstation")).code !== 0, true);
});
