// The scripts of components/assets and the scripts the stack renders from them, through their languages'
// linters: shellcheck for bash, ruff for Python (rules in ruff.toml). Both are installed by
// scripts/lint-tools.sh, which npm test runs; a missing linter fails these tests, it never skips them.
import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../components/config";
import * as cudaEnv from "../components/cudaEnv";
import { containerScripts, dockerPreflightProbe } from "../components/dockerRuntime";
import { renderStdin } from "../components/host";
import { layout as modelLayout, modelProbe, modelScripts } from "../components/model";
import { gatherFacts } from "../components/preflight";
import { installPath, packageScripts, uvScripts } from "../components/python";
import { serviceScripts } from "../components/vllmService";
import { plan12, revision } from "./helpers/plans";

const root = path.join(__dirname, "..", "..");
const assets = path.join(root, "components", "assets");
const cache = process.env.VLLM_WS_CACHE ?? path.join(os.homedir(), ".cache", "vllm-workstation");
const ruff = path.join(cache, "lint", "venv", "bin", "ruff");

const assetFiles = (ext: string) =>
    fs
        .readdirSync(assets)
        .filter((f) => f.endsWith(ext))
        .sort();

/** Runs a linter; its findings, or "" when it has none. Throws when the linter itself is missing. */
function lint(cmd: string, args: string[], input?: string): string {
    const r = spawnSync(cmd, args, { cwd: root, input, encoding: "utf8" });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Error(`${cmd} is not installed: scripts/lint-tools.sh installs it (npm test runs it first)`);
    }
    if (r.error) throw r.error;
    return r.status === 0 ? "" : `${r.stdout}${r.stderr}`.trim() || `${cmd} exited with ${r.status}`;
}

const shellcheck = (args: string[], input?: string) => lint("shellcheck", ["--shell=bash", "--format=gcc", ...args], input);
const ruffCheck = (args: string[], input?: string) => lint(ruff, ["check", "--no-cache", "--quiet", "--output-format=concise", ...args], input);

/** The bodies of a script's quoted here-documents `<<'VLLM_WS_PY'`: the Python programs it runs. */
function pythonPrograms(script: string): string[] {
    const out: string[] = [];
    let cur: string[] | null = null;
    for (const line of script.split("\n")) {
        if (cur === null) {
            if (line.includes("<<'VLLM_WS_PY'")) cur = [];
        } else if (line === "VLLM_WS_PY") {
            out.push(cur.join("\n") + "\n");
            cur = null;
        } else cur.push(line);
    }
    return out;
}

const config = parseConfig({
    model: { revision, endpoint: "https://user:secret@mirror.example/hf", exclude: ["original/*", "metal/*"] },
    python: { extraIndexUrls: ["https://download.pytorch.org/whl/cu128"] },
});

const docker = parseConfig({ model: { revision }, runtime: "docker", dockerHost: "unix:///run/docker.sock", server: { host: "0.0.0.0" }, apiKey: "sk-0123456789abcdef" });

/** Every script the stack runs on the workstation for `config`, each as it goes to bash (host.ts). */
function renderedScripts(): Array<{ label: string; text: string }> {
    const l = modelLayout(config.model);
    const pieces: Record<string, { apply: string; probe: string; remove: string }> = {
        cuda: cudaEnv.scripts(config.cuda),
        uv: uvScripts(config.python),
        packages: packageScripts(config.python, null),
        "packages (shared lock)": packageScripts(config.python, "vllm==0.11.0 \\\n    --hash=sha256:00\n"),
        model: { ...modelScripts(config.model, config.python.venvPath), probe: modelProbe(config.model) },
        "model (kept on destroy)": modelScripts({ ...config.model, keepOnDestroy: true }, config.python.venvPath),
        service: serviceScripts({
            config,
            plan: plan12,
            installPath: installPath(config.python, null),
            snapshotPath: l.snapshot,
            tiktokenDir: l.tiktokenDir,
            apiKeyId: "0123456789abcdef",
            runsOn: { cuda: "0123456789ab", packages: "0123456789ab", model: "0123456789ab" },
        }),
        // The docker runtime's: the venv for the model download only, and the container.
        "packages (docker runtime)": packageScripts(config.python, null, "docker"),
        container: containerScripts({ config: docker, plan: plan12, snapshotPath: l.snapshot, tiktokenDir: l.tiktokenDir, apiKeyId: "0123456789ab" }),
    };
    const scripts = Object.entries(pieces).flatMap(([name, s]) =>
        (["apply", "probe", "remove"] as const).map((step) => ({ label: `${name} ${step}`, text: renderStdin(s[step], { HF_TOKEN: "t" }) })),
    );
    const claims = [{ path: "/var/lib/vllm-workstation/hf", kind: "dir" as const, sha256: null, option: "model.cacheDir" }];
    return [
        ...scripts,
        { label: "preflight probe", text: gatherFacts() },
        { label: "preflight probe with claims", text: gatherFacts({ claims }) },
        { label: "docker preflight probe", text: renderStdin(dockerPreflightProbe(docker).probe) },
    ];
}

test("every shell script of components/assets is clean under shellcheck", (t) => {
    const files = assetFiles(".sh");
    t.true(files.includes("own.sh") && files.includes("preflight_probe.sh"), files.join(" "));
    t.is(shellcheck(files.map((f) => path.join("components", "assets", f))), "");
});

/**
 * Notes shellcheck makes on rendered scripts that stay as they are, by piece. A script's text is part of
 * its step's state: a change makes every workstation run the step again, so only a real fault earns one.
 */
const accepted: Readonly<Record<string, readonly string[]>> = {
    // The files the service runs with travel as single-quoted values, where `$` and backticks are text
    // (the managed header's `pulumi up`, the middleware's strings): nothing is meant to expand (SC2016).
    "service apply": ["SC2016"],
};

test("every script the stack runs on the workstation is clean under shellcheck, as rendered", (t) => {
    const scripts = renderedScripts();
    t.is(scripts.length, 30);
    const findings = scripts
        .map(({ label, text }) => {
            const excluded = accepted[label.replace(/ \(.*\)/, "")] ?? [];
            const found = shellcheck(excluded.length > 0 ? [`--exclude=${excluded.join(",")}`, "-"] : ["-"], text);
            return found === "" ? "" : `${label}:\n${found}`;
        })
        .filter((f) => f !== "");
    t.deepEqual(findings, []);
    // Each accepted note is still there to accept: a script changed since drops its exclusion.
    for (const [label, codes] of Object.entries(accepted)) {
        const text = scripts.find((s) => s.label === label)?.text ?? "";
        const found = shellcheck(["-"], text);
        t.deepEqual(
            codes.filter((c) => !found.includes(`[${c}]`)),
            [],
            `${label}: ${found}`,
        );
    }
});

test("every Python program the stack runs is clean under ruff, as rendered", (t) => {
    const programs = renderedScripts().flatMap(({ text }) => pythonPrograms(text));
    // The download and the uv fetch start with origin_auth.py; the probe runs in two scripts.
    t.true(programs.length >= 5, String(programs.length));
    const findings = [...new Set(programs)].map((p, i) => ruffCheck(["--stdin-filename", `components/assets/program-${i}.py`, "-"], p)).filter((f) => f !== "");
    t.deepEqual(findings, []);
});

test("every Python file of components/assets is clean under ruff, in the program it runs in", (t) => {
    const programs = renderedScripts().flatMap(({ text }) => pythonPrograms(text));
    const files = assetFiles(".py");
    t.true(files.length >= 6, files.join(" "));
    // A part of a rendered program was linted there (the test above); the rest are modules of their own
    // (the API key middleware vLLM imports), linted as files. A part no program holds would be linted
    // alone and fail on the names it expects from the rest: a script nothing renders is found out.
    const alone = files.filter((f) => !programs.some((p) => p.includes(fs.readFileSync(path.join(assets, f), "utf8").trim())));
    t.deepEqual(alone, ["vllm_workstation_auth.py"]);
    t.is(ruffCheck(alone.map((f) => path.join("components", "assets", f))), "");
});

test("a missing linter fails with a message naming it and how to install it", (t) => {
    t.throws(() => lint(path.join(cache, "lint", "no-such-linter"), []), { message: /no-such-linter is not installed: scripts\/lint-tools\.sh installs it/ });
});

test("the linters find what they are there for", (t) => {
    // Without these, a linter that reads nothing (a wrong path, stdin ignored) would pass everything.
    t.regex(shellcheck(["-"], "echo $1\n"), /SC2086/);
    t.regex(ruffCheck(["--stdin-filename", "components/assets/x.py", "-"], "print(undefined_name)\n"), /F821/);
});
