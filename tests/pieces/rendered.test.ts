// The scripts and files the stack renders from its templates (components/pieces/assets), for one config, kept
// as files in tests/fixtures/rendered and compared byte for byte: a change to a template or to what
// fills it shows in a diff that reads like the script itself. A step's script is part of its state (a
// change makes every workstation run the step again), so every change here should be meant.
//
// UPDATE_SNAPSHOTS=1 writes the files anew from what the code renders now.
import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../../components/config/schema";
import * as cudaEnv from "../../components/pieces/cudaEnv";
import { containerScripts, dockerPreflightProbe } from "../../components/pieces/dockerRuntime";
import { layout as modelLayout, modelScripts } from "../../components/pieces/model";
import { renderProbeBatch } from "../../components/pieces/observe";
import { gatherFacts } from "../../components/preflight/facts";
import { writeFile } from "../../components/host/shell";
import { plan12, revision } from "../helpers/plans";

const dir = path.join(__dirname, "..", "..", "..", "tests", "fixtures", "rendered");
const update = process.env.UPDATE_SNAPSHOTS === "1";

// Values from the edges of each option's grammar where the scripts branch or quote: an endpoint with
// credentials (redacted in what is shown), excluded globs, two tiktoken files, a second engine address.
const config = parseConfig({
    model: { revision, endpoint: "https://user:secret@mirror.example/hf", exclude: ["original/*", "metal/*"] },
    python: { extraIndexUrls: ["https://download.pytorch.org/whl/cu128"] },
});
const docker = parseConfig({ model: { revision }, runtime: "docker", dockerHost: "unix:///run/docker.sock", server: { host: "0.0.0.0" }, apiKey: "sk-0123456789abcdef" });

/** Every rendered text under its fixture's file name. */
function rendered(): Record<string, string> {
    const l = modelLayout(config.model);
    const steps = (name: string, s: { apply: string; probe: string; remove: string }) =>
        Object.fromEntries((["apply", "probe", "remove"] as const).map((step) => [`${name}.${step}.sh`, `${s[step]}\n`]));
    const container = containerScripts({ config: docker, plan: plan12, snapshotPath: l.snapshot, tiktokenDir: l.tiktokenDir, apiKeyId: "0123456789ab" });
    return {
        "cuda-profile.sh": cudaEnv.renderProfile(config.cuda),
        "cuda.env": cudaEnv.renderServiceEnv(config.cuda),
        ...steps("cuda", cudaEnv.scripts(config.cuda)),
        ...steps("model", modelScripts(config.model, config.python.venvPath)),
        "model-kept.remove.sh": `${modelScripts({ ...config.model, keepOnDestroy: true }, config.python.venvPath).remove}\n`,
        ...steps("container", container),
        "container-keyless.apply.sh": `${containerScripts({ config: { ...docker, dockerHost: null }, plan: plan12, snapshotPath: l.snapshot, tiktokenDir: l.tiktokenDir, apiKeyId: null }).apply}\n`,
        "docker-preflight.probe.sh": `${dockerPreflightProbe(docker).probe}\n`,
        "preflight.probe.sh": gatherFacts({ claims: [{ path: "/var/lib/vllm-workstation/hf", kind: "dir", sha256: null, option: "model.cacheDir" }] }),
        "probe-batch.sh": `${renderProbeBatch([cudaEnv.cudaPiece(config.cuda), { name: "quoting", what: "a probe that quotes", probe: "echo 'it''s'\nexit 3" }])}\n`,
        "write-file.sh": `${writeFile("/etc/vllm-workstation/example.conf", "a = 'b'\n$(not expanded)\n", "0600", "root:vllm")}\n`,
    };
}

test("every script and file the stack renders from its templates is as in tests/fixtures/rendered", (t) => {
    const texts = rendered();
    if (update) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        for (const [name, text] of Object.entries(texts)) fs.writeFileSync(path.join(dir, name), text);
    }
    t.deepEqual(fs.readdirSync(dir).sort(), Object.keys(texts).sort(), "a fixture nothing renders, or a rendering without its fixture (UPDATE_SNAPSHOTS=1 writes them)");
    for (const [name, text] of Object.entries(texts)) {
        t.is(text, fs.readFileSync(path.join(dir, name), "utf8"), `tests/fixtures/rendered/${name} differs from what the code renders (UPDATE_SNAPSHOTS=1 writes it anew)`);
    }
});
