// The files of components/pieces/assets and the scripts the stack renders from them, through their languages'
// linters: shellcheck for bash and sh, ruff for Python (rules in ruff.toml), Go's text/template parser
// for docker's --format templates (tests/infra/lint/gotemplate.go), and systemd's KEY=value grammar for env
// files. shellcheck and ruff are installed by tests/infra/lint-tools.sh, which npm test runs, and go comes
// with the toolchain; a missing linter fails these tests, it never skips them. The last tests check that
// no TypeScript file holds another language's code instead.
import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ts from "typescript";
import { parseConfig } from "../../components/config/schema";
import * as cudaEnv from "../../components/pieces/cudaEnv";
import { containerScripts, dockerPreflightProbe } from "../../components/pieces/dockerRuntime";
import { renderStdin } from "../../components/host/connection";
import { layout as modelLayout, modelPiece, modelProbe, modelScripts } from "../../components/pieces/model";
import { renderProbeBatch } from "../../components/pieces/observe";
import { gatherFacts } from "../../components/preflight/facts";
import { installPath, packageScripts, uvScripts } from "../../components/pieces/python";
import { serviceScripts } from "../../components/pieces/vllmService";
import { plan12, revision } from "../helpers/plans";

const root = path.join(__dirname, "..", "..", "..");
const assets = path.join(root, "components", "pieces", "assets");
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
        throw new Error(`${cmd} is not installed: tests/infra/lint-tools.sh installs it (npm test runs it first)`);
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

/** Every script the stack runs on the workstation for `config`, each as it goes to bash (host/connection.ts). */
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
        { label: "probe batch", text: renderStdin(renderProbeBatch([cudaEnv.cudaPiece(config.cuda), modelPiece(config.model), dockerPreflightProbe(docker)])) },
    ];
}

test("every shell script and template of components/pieces/assets is clean under shellcheck, in the shell it names", (t) => {
    const files = assetFiles(".sh");
    t.true(files.includes("own.sh") && files.includes("preflight_probe.sh") && files.includes("model_apply.sh"), files.join(" "));
    const findings = files
        .map((f) => {
            const text = fs.readFileSync(path.join(assets, f), "utf8");
            // Each names its shell: bash for the steps' scripts, sh for what a login shell sources.
            if (!/^(#!\/usr\/bin\/env bash|# shellcheck shell=(bash|sh)\b)/.test(text)) return `${f}: names no shell (a #! line or a "# shellcheck shell=" directive)`;
            // A template's @NAME@ markers read as plain words: what fills them is linted as rendered below.
            const found = lint("shellcheck", ["--format=gcc", "-"], text.replace(/@([A-Z][A-Z0-9_]*)@/g, "$1"));
            return found === "" ? "" : found.replace(/^-:/gm, `components/pieces/assets/${f}:`);
        })
        .filter((f) => f !== "");
    t.deepEqual(findings, []);
});

test("every Go template of components/pieces/assets parses as the docker CLI's --format parses it", (t) => {
    const files = assetFiles(".tmpl");
    t.true(files.includes("container_inspect.tmpl"), files.join(" "));
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-tmpl-"));
    t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
    // Markers are filled with a Go string, as the code fills them (JSON.stringify of a label).
    const filled = files.map((f) => {
        const file = path.join(scratch, f);
        fs.writeFileSync(file, fs.readFileSync(path.join(assets, f), "utf8").replace(/^(#[^\n]*\n)+\n/, "").replace(/@([A-Z][A-Z0-9_]*)@/g, '"$1"'));
        return file;
    });
    t.is(lint("go", ["run", path.join("tests", "infra", "lint", "gotemplate.go"), ...filled]), "");
    fs.writeFileSync(path.join(scratch, "broken.tmpl"), "a={{index .Config.Labels}\n");
    t.regex(lint("go", ["run", path.join("tests", "infra", "lint", "gotemplate.go"), path.join(scratch, "broken.tmpl")]), /broken\.tmpl:1: bad character/);
});

test("every env file template of components/pieces/assets is KEY=value lines that systemd and a shell read alike", (t) => {
    const files = assetFiles(".env");
    t.true(files.includes("cuda.env"), files.join(" "));
    const bad = files.flatMap((f) =>
        fs
            .readFileSync(path.join(assets, f), "utf8")
            .replace(/^(#[^\n]*\n)+\n/, "")
            .replace(/\n$/, "")
            .split("\n")
            .filter((line) => !/^[A-Z_][A-Z0-9_]*=([A-Za-z0-9_.,:/+-]|@[A-Z][A-Z0-9_]*@)*$/.test(line))
            .map((line) => `${f}: ${line}`),
    );
    t.deepEqual(bad, []);
});

// A .service template is rendered and put through systemd-analyze verify on a booted box (unit.integration).
test("every file of components/pieces/assets is of a language these tests check", (t) => {
    t.deepEqual(
        fs
            .readdirSync(assets, { withFileTypes: true })
            .filter((e) => !e.isDirectory() || e.name !== "__pycache__")
            .map((e) => e.name)
            .filter((f) => ![".sh", ".py", ".tmpl", ".env", ".service"].some((ext) => f.endsWith(ext))),
        [],
    );
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
    t.is(scripts.length, 31);
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
    const findings = [...new Set(programs)].map((p, i) => ruffCheck(["--stdin-filename", `components/pieces/assets/program-${i}.py`, "-"], p)).filter((f) => f !== "");
    t.deepEqual(findings, []);
});

test("every Python file of components/pieces/assets is clean under ruff, in the program it runs in", (t) => {
    const programs = renderedScripts().flatMap(({ text }) => pythonPrograms(text));
    const files = assetFiles(".py");
    t.true(files.length >= 6, files.join(" "));
    // A part of a rendered program was linted there (the test above); the rest are modules of their own
    // (the API key middleware vLLM imports), linted as files. A part no program holds would be linted
    // alone and fail on the names it expects from the rest: a script nothing renders is found out.
    const alone = files.filter((f) => !programs.some((p) => p.includes(fs.readFileSync(path.join(assets, f), "utf8").trim())));
    t.deepEqual(alone, ["vllm_workstation_auth.py"]);
    t.is(ruffCheck(alone.map((f) => path.join("components", "pieces", "assets", f))), "");
});

test("a missing linter fails with a message naming it and how to install it", (t) => {
    t.throws(() => lint(path.join(cache, "lint", "no-such-linter"), []), { message: /no-such-linter is not installed: tests\/infra\/lint-tools\.sh installs it/ });
});

test("the linters find what they are there for", (t) => {
    // Without these, a linter that reads nothing (a wrong path, stdin ignored) would pass everything.
    t.regex(shellcheck(["-"], "echo $1\n"), /SC2086/);
    t.regex(ruffCheck(["--stdin-filename", "components/pieces/assets/x.py", "-"], "print(undefined_name)\n"), /F821/);
});

// --- one language per file ---------------------------------------------------------------------------
//
// No TypeScript file of components/ or scripts/ spells out another language's code longer than a line:
// scripts, programs, units and templates are files of components/pieces/assets, read by the code that fills
// them. The test reads each file's syntax tree (TypeScript's own parser) and looks at every stretch of
// text it spells out: a string or template literal, the literals of a `+` chain, the literal elements of
// an array (usually joined with newlines). Each such stretch is cut into lines, and a line counts as
// code when it carries a mark of a language:
//   - shell: a control word where a command may start or end (`if `, `then`, `do`, `fi`, `done`, `esac`,
//     `; then`, ...), an expansion or redirection (`$(`, `${`, `$name`, `>&2`, `2>/dev/null`, `||`, `&&`),
//     or a line that starts with a command the scripts use (own_*, rm, echo, curl, docker, ...);
//   - Python: `import`, `from x import`, `def f(`, `class C:`, `try:`, `except`;
//   - a systemd unit: a `[Unit]`, `[Service]` or `[Install]` line; a Go template: `{{ ... }}`.
// A stretch with two or more such lines is another language's code longer than a line.
//
// What it does not see: code built line by line from values that are not literals (`lines.push(x)`
// of computed text), a language without one of these marks (a YAML or env file spelled out as
// `KEY=value` lines, which would also match every list of container variables), and a single line with
// several commands (`a; b; c`), which is allowed on purpose: a one-line command built in TypeScript is
// fine. Prose with a newline passes unless two of its lines carry such a mark.

const shellMarks = [
    /(^|[;&|]\s*)(then|do|else|fi|done|esac)(\s|;|$)/,
    /^\s*(if|elif|while|until|for|case)\s/,
    /\$\(|\$\{|\$[A-Za-z_]|>&2|2>\/dev\/null|\s\|\|\s|\s&&\s/,
    /^\s*(own_[a-z_]+|rm|echo|printf|install|chmod|chown|mv|cp|mkdir|curl|docker|systemctl|sed|grep|cat|export|local|set|find|sha256sum|python3?)\s/,
];
const pythonMarks = [/^\s*(import [\w.]+|from [\w.]+ import |def \w+\(|class \w+[(:]|try:$|except\b)/];
const otherMarks = [/^\[(Unit|Service|Install)\]$/, /\{\{.*\}\}/];
const codeLine = (line: string) => [...shellMarks, ...pythonMarks, ...otherMarks].some((m) => m.test(line));

/** Stretches of another language's code a TypeScript source spells out: where each starts and its code lines. */
function embeddedCode(fileName: string, source: string): Array<{ line: number; code: string[] }> {
    const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
    const literal = (n: ts.Node): string | null => {
        if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) return n.text;
        if (ts.isTemplateExpression(n)) return n.head.text + n.templateSpans.map((s) => `\u00b7${s.literal.text}`).join("");
        return null;
    };
    const isPlus = (n: ts.Node): n is ts.BinaryExpression => ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.PlusToken;
    const operands = (n: ts.Expression): ts.Expression[] => (isPlus(n) ? [...operands(n.left), ...operands(n.right)] : [ts.isParenthesizedExpression(n) ? n.expression : n]);
    const found: Array<{ line: number; code: string[] }> = [];
    const look = (at: ts.Node, lines: string[]) => {
        const code = lines.filter(codeLine);
        if (code.length >= 2) found.push({ line: sf.getLineAndCharacterOfPosition(at.getStart()).line + 1, code });
    };
    const visit = (n: ts.Node): void => {
        if (ts.isArrayLiteralExpression(n)) {
            look(n, n.elements.flatMap((e) => literal(e)?.split("\n") ?? ["\u00b7"]));
        } else if (isPlus(n) && !isPlus(n.parent)) {
            look(n, operands(n).map((e) => literal(e) ?? "\u00b7").join("").split("\n"));
        } else if (literal(n) !== null && !ts.isArrayLiteralExpression(n.parent) && !isPlus(n.parent)) {
            look(n, (literal(n) ?? "").split("\n"));
        }
        ts.forEachChild(n, visit);
    };
    visit(sf);
    return found;
}

/**
 * Files that still hold another language's code, each with why. The list may only shrink: a file
 * named here that no longer needs it fails the test below.
 */
const embeddedExempt: Readonly<Record<string, string>> = {
};

const typescriptSources = (): string[] =>
    ["components", "scripts"].flatMap((d) =>
        (fs.readdirSync(path.join(root, d), { recursive: true }) as string[]).filter((f) => f.endsWith(".ts")).map((f) => path.join(d, f)),
    );

test("no TypeScript file of components/ or scripts/ holds another language's code longer than a line", (t) => {
    const files = typescriptSources();
    t.true(files.includes(path.join("components", "pieces", "model.ts")), files.join(" "));
    const found = files
        .map((f) => ({ file: f, stretches: embeddedCode(f, fs.readFileSync(path.join(root, f), "utf8")) }))
        .filter(({ stretches }) => stretches.length > 0);
    const report = (list: typeof found) => list.map(({ file, stretches }) => `${file}:${stretches.map((s) => `\n  line ${s.line}: ${s.code.slice(0, 3).join(" | ")}`).join("")}`);
    t.deepEqual(report(found.filter(({ file }) => !(file in embeddedExempt))), [], "move each into a file of components/pieces/assets (asset, fillAsset)");
    t.deepEqual(Object.keys(embeddedExempt).filter((f) => !found.some(({ file }) => file === f)), [], "exempt, yet holds no other language's code: take it off the list");
});

test("the one-language check finds shell, Python, a unit and a Go template spelled out in TypeScript", (t) => {
    const lines = (src: string) => embeddedCode("x.ts", src).map((s) => s.line);
    t.deepEqual(lines('const a = [\n  `if [ -f ${p} ]; then`,\n  "  rm -f x",\n  "fi",\n].join("\\n");'), [1]);
    t.deepEqual(lines("const py = `import sys\ndef main():\n    return 0\n`;"), [1]);
    t.deepEqual(lines('const unit = "[Unit]\\nDescription=x\\n" +\n  "[Service]\\nExecStart=/bin/true\\n";'), [1]);
    t.deepEqual(lines('const f = ["a={{.A}}", "b={{.B}}"].join("\\n");'), [1]);
    t.deepEqual(lines('const s = ["set -e", `echo ${x} >&2`];'), [1]);
    // A one-line command, prose and data stay.
    t.deepEqual(lines('const one = `if [ -f ${q(p)} ]; then echo ok; else echo missing; fi`;'), []);
    t.deepEqual(lines('const fix = "install the toolkit, then restart the engine\\nand run pulumi up again";'), []);
    t.deepEqual(lines('const env = ["HF_HUB_OFFLINE=1", `HF_HUB_CACHE=${dir}`, "DO_NOT_TRACK=1"];'), []);
});

/** The project's own shell scripts: its commands, the bench's, the test infrastructure, CI's (the assets and their rendered snapshots have tests of their own above). */
function projectShellScripts(): string[] {
    const tracked = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" }).stdout.split("\0");
    const isShell = (f: string) => {
        if (f.endsWith(".sh")) return true;
        const head = fs.existsSync(path.join(root, f)) && fs.statSync(path.join(root, f)).isFile() ? fs.readFileSync(path.join(root, f), "utf8").slice(0, 40) : "";
        return /^#!\/(usr\/)?bin\/(env )?(ba)?sh\b/.test(head);
    };
    return tracked.filter((f) => f !== "" && !f.startsWith("components/pieces/assets/") && !f.startsWith("tests/fixtures/rendered/") && !f.startsWith("node_modules/") && !f.startsWith("tools/pulumi/") && isShell(f)).sort();
}

test("every shell script of the project outside the assets is clean under shellcheck, sourced files followed", (t) => {
    const files = projectShellScripts();
    t.true(files.includes(".ci/run") && files.includes("scripts/toolchain.sh") && files.includes("tests/infra/box.sh"), files.join(" "));
    // Each in the shell its shebang or directive names (no --shell), so the box's POSIX sh doubles are read as sh.
    t.is(lint("shellcheck", ["--format=gcc", "-x", ...files]), "");
});
