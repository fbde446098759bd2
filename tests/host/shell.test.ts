import test from "ava";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { asset, expectFile, fillAsset, fillFragment, managedHeader, probeFile, q, say, sha256, writeFile } from "../../components/host/shell";
import { tempDir } from "../helpers/tempDir";

/** Runs a script the way host/connection.ts does: `bash -s` reading it on stdin under `set -euo pipefail`. */
function runScript(script: string): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync("bash", ["-s"], { input: `set -euo pipefail\n${script}\n`, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const awkward = [
    "plain",
    "",
    "it's",
    "''",
    "'leading and trailing'",
    "$HOME and ${PATH} and $(echo pwned) and `echo pwned`",
    'double "quotes" and \\backslashes\\',
    "spaces   and\ttabs",
    "multi\nline\nvalue",
    "glob * ? [a-z] ~ !bang !! ;& | > <",
    "unicode: grüße ✓",
];

for (const value of awkward) {
    test(`q() makes bash see exactly ${JSON.stringify(value)}`, (t) => {
        const r = spawnSync("bash", ["-c", `printf %s ${q(value)}`], { encoding: "utf8" });
        t.is(r.status, 0, r.stderr);
        t.is(r.stdout, value);
    });
}

test("q() wraps the value in single quotes and escapes an embedded quote as '\\''", (t) => {
    t.is(q("abc"), "'abc'");
    t.is(q("it's"), "'it'\\''s'");
});

test("sha256 returns the hex digest of the UTF-8 text", (t) => {
    t.is(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    t.is(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
});

test("the managed header is one comment line that names the owner, with the comment marker asked for", (t) => {
    const hash = managedHeader();
    t.true(hash.startsWith("# Managed by vllm-workstation (Pulumi)."));
    t.true(hash.endsWith("\n"));
    t.is(hash.split("\n").length, 2);
    t.true(managedHeader(";").startsWith("; Managed by vllm-workstation"));
});

test("writeFile() writes exactly the content, with the mode asked for, and leaves no temp file behind", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "nested dir", "it's a file.conf");
    const content = "line with $HOME and `backticks` and $(subshell)\n'single' \"double\" \\back\\slash\n\n\tindented\n";
    const r = runScript(writeFile(target, content, "0600"));
    t.is(r.code, 0, r.stderr);
    t.is(fs.readFileSync(target, "utf8"), content);
    t.is(fs.statSync(target).mode & 0o777, 0o600);
    t.deepEqual(fs.readdirSync(path.dirname(target)), [path.basename(target)]);
});

test("writeFile() gives the default 0644 mode and root ownership", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "f");
    const r = runScript(writeFile(target, "x\n"));
    t.is(r.code, 0, r.stderr);
    const st = fs.statSync(target);
    t.is(st.mode & 0o777, 0o644);
    t.is(st.uid, 0);
    t.is(st.gid, 0);
});

test("writeFile() ends a file without a trailing newline with one, which is what expectFile() assumes", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "f");
    const r = runScript(writeFile(target, "a\nb"));
    t.is(r.code, 0, r.stderr);
    t.is(fs.readFileSync(target, "utf8"), "a\nb\n");
});

test("writeFile() renames a new file over an existing one instead of rewriting it, so a reader never sees it half-written", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "f");
    fs.writeFileSync(target, "old content\n");
    const inodeBefore = fs.statSync(target).ino;
    const r = runScript(writeFile(target, "new content\n"));
    t.is(r.code, 0, r.stderr);
    t.is(fs.readFileSync(target, "utf8"), "new content\n");
    // A rename puts a new inode at the path; an in-place rewrite would keep the old one.
    t.not(fs.statSync(target).ino, inodeBefore);
    t.deepEqual(fs.readdirSync(dir), ["f"]);
});

test("writeFile() keeps a line that looks like a heredoc end marker as content", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "f");
    const content = "EOF\nVLLM_WS_EOF\nVLLM_WS_PY\n";
    const r = runScript(writeFile(target, content));
    t.is(r.code, 0, r.stderr);
    t.is(fs.readFileSync(target, "utf8"), content);
});

const probeCases: Array<[string, string]> = [
    ["a unit file", "[Unit]\nDescription=x $HOME\n"],
    ["content without a trailing newline", "KEY=value"],
    ["content with blank lines at the end", "a\n\n\n"],
    ["an empty file", ""],
];

for (const [name, content] of probeCases) {
    test(`expectFile() matches what probeFile() prints for ${name} written by writeFile()`, (t) => {
        const dir = tempDir(t, "shell");
        const target = path.join(dir, "sub", "file");
        const r = runScript(`${writeFile(target, content)}\n${probeFile("label", target)}`);
        t.is(r.code, 0, r.stderr);
        t.is(r.stdout.trim(), expectFile("label", content));
    });
}

test("expectFile() matches probeFile() for a newline-terminated file written by someone else", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "file with space");
    const content = "hello\nworld\n";
    fs.writeFileSync(target, content);
    const r = runScript(probeFile("cfg", target));
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, `${expectFile("cfg", content)}\n`);
});

test("probeFile() prints <label>=missing for an absent file and the probe still succeeds", (t) => {
    const dir = tempDir(t, "shell");
    const r = runScript(probeFile("unit", path.join(dir, "absent")));
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, "unit=missing\n");
});

test("probeFile() shows an edited file as a different value than expectFile()", (t) => {
    const dir = tempDir(t, "shell");
    const target = path.join(dir, "f");
    fs.writeFileSync(target, "edited by hand\n");
    const r = runScript(probeFile("f", target));
    t.not(r.stdout.trim(), expectFile("f", "original\n"));
    t.regex(r.stdout.trim(), /^f=[0-9a-f]{64}$/);
});

test("say() prints the message verbatim on stderr and nothing on stdout", (t) => {
    const message = "installing uv 0.9.5 from https://example.com/simple ($HOME, it's `here`)";
    const r = runScript(say(message));
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, "");
    t.is(r.stderr, `${message}\n`);
});

const probeValues = { WSL_LIB: "'/w'", NVIDIA_SMI_ARGS: "--x", NVCC: "'/c/bin/nvcc'", MODEL_DIR: "'/m'", VENV_DIR: "'/v'", CLAIMS: "" };

test("fillAsset() fills each placeholder of a template once, never a placeholder inside a value", (t) => {
    const text = fillAsset("preflight_probe.sh", { ...probeValues, MODEL_DIR: q("/m/@VENV_DIR@ $HOME") });
    t.true(text.includes(`disk model '/m/@VENV_DIR@ $HOME'\n`));
    t.true(text.includes("disk venv '/v'\n"));
    t.false(/@[A-Z_]+@/.test(text.replace("/m/@VENV_DIR@", "")));
    t.true(asset("preflight_probe.sh").includes("disk model @MODEL_DIR@\n"));
});

test("fillAsset() refuses a template placeholder without a value, and a value without a placeholder", (t) => {
    const { VENV_DIR: _, ...missing } = probeValues;
    t.throws(() => fillAsset("preflight_probe.sh", missing), { message: "components/pieces/assets/preflight_probe.sh: no value for @VENV_DIR@" });
    t.throws(() => fillAsset("preflight_probe.sh", { ...probeValues, EXTRA: "x" }), { message: "components/pieces/assets/preflight_probe.sh: no @NAME@ marker for EXTRA" });
});

test("fillFragment() leaves out the template's header and final newline, and keeps a comment after the header", (t) => {
    t.true(asset("write_file.sh").startsWith("# shellcheck shell=bash\n# A file written atomically"));
    const w = writeFile("/etc/x", "y\n");
    t.true(w.startsWith(`install -d -m 0755 "$(dirname '/etc/x')"\n`), w);
    t.false(w.includes("atomically") || w.includes("shellcheck") || w.endsWith("\n"));
    t.true(asset("model_apply.sh").includes("\n\n# endpoint: @ENDPOINT@;"));
    const apply = fillFragment("model_apply.sh", Object.fromEntries([...asset("model_apply.sh").split("\n\n").slice(1).join("\n\n").matchAll(/@([A-Z][A-Z0-9_]*)@/g)].map((m) => [m[1], "v"])));
    t.true(apply.startsWith("# endpoint: v; tiktoken: v\nown_dir v\n"), apply.slice(0, 80));
});

test("fillFragment() leaves out a header that runs straight into the script, with no empty line after it, and keeps the comments below", (t) => {
    const template = asset("packages_remove.sh");
    t.true(template.startsWith("# shellcheck shell=bash\n# Removes what the packages step made"));
    t.regex(template, /^(#[^\n]*\n)+home=@HOME@\n/, "no empty line between the header and the script");
    const remove = fillFragment("packages_remove.sh", { HOME: "h", CACHE: "c", VENV: "v", INSTALLS: "i" });
    t.true(remove.startsWith("home=h\ncache=c\nvenv=v\ninstalls=i\n# The link a switch cut off midway"), remove.slice(0, 120));
    t.false(remove.includes("shellcheck") || remove.includes("Removes what") || remove.endsWith("\n"));
});

test("fillFragment() refuses a marker without a value, and a value without a marker", (t) => {
    t.throws(() => fillFragment("write_file.sh", { PATH: "p", MARKER: "M", CONTENT: "c", MODE: "0644", OWNER: "root:root", EXTRA: "x" }), {
        message: "components/pieces/assets/write_file.sh: no @NAME@ marker for EXTRA",
    });
    t.throws(() => fillFragment("model_apply.sh", { ENDPOINT: "x" }), { message: /^components\/pieces\/assets\/model_apply\.sh: no value for @/ });
});
