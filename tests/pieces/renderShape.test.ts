// No config value that passes the schema can change the shape of what the stack writes or runs.
//
// fast-check draws many configs from the edges of the grammar (every character each option may hold,
// credentials in URLs, IPv6 listen addresses, lock files full of quotes and heredoc markers, ...); the
// ones parseConfig accepts are rendered into every script, unit, env file, YAML and argv the stack
// produces. Each rendering is compared with the rendering of a "twin": the same config with every free
// string (paths, URLs, names, versions the output does not branch on) replaced by a plain word, and
// everything the renderers branch on kept (counts of lists, null or not, numbers, enums, the vLLM
// version, the plan). The twin is what the renderer meant to write; the config may change only the
// quoted text inside that structure:
//
// - Shell: a small bash lexer turns a script into its shape: its text, with the contents of every
//   single-quoted string and of every here-document with a quoted delimiter (`<<'X'`) replaced by a
//   placeholder. Nothing inside either is ever expanded or split by bash. Everything else stays
//   verbatim: unquoted words, double-quoted strings (where `$`, backticks and `\` are live)
//   and `$(...)` inside double quotes (lexed anew, since a quote there starts a new string). Equal
//   shapes mean that every byte the config put in the script sits inside single quotes or a quoted
//   here-document, where bash takes it literally, and that no value ended a quote or a here-document
//   early (the rest of the script would then be lexed differently). `bash -n` parses every script too.
// - Env files: one KEY=VALUE a line, the same keys in the same order, values without the characters
//   systemd's EnvironmentFile= or a shell gives meaning to (quotes, backslash, `$`, whitespace).
// - Unit: the same sections and keys, exactly one ExecStart, every value with as many words as the
//   twin's, and none of systemd's specials (`%`, `$`, `\`, quotes, `;`).
// - YAML: js-yaml reads it back to exactly the flags map.
// - argv (the container's, ssh's): the same flags at the same places, and no value that reads as one.
import test from "ava";
import { spawnSync } from "child_process";
import fc from "fast-check";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { parseConfig, WorkstationConfig } from "../../components/config/schema";
import * as cudaEnv from "../../components/pieces/cudaEnv";
import { containerArgs, containerEnv, containerScripts, dockerPreflightProbe } from "../../components/pieces/dockerRuntime";
import { Connection, shellArgv } from "../../components/host/connection";
import { layout as modelLayout, modelProbe, modelScripts } from "../../components/pieces/model";
import { gatherFacts } from "../../components/preflight/facts";
import { installPath, packageScripts, renderRequirements, uvScripts } from "../../components/pieces/python";
import { endpointUrl, renderConfigYaml, renderEnv, renderUnit, servedModelName, serviceScripts, ServingPlan, vllmFlags } from "../../components/pieces/vllmService";
import { exampleRequest } from "../../components/workstation";

const QUOTED = "\u27e8Q\u27e9";
const HEREDOC = "\u27e8H\u27e9";

/** The shape of a bash script (see the top of this file); throws where the lexer finds it malformed. */
export function shellShape(src: string): string {
    let i = 0;
    const out: string[] = [];
    const pending: Array<{ delim: string; quoted: boolean; strip: boolean }> = [];

    const bodies = () => {
        for (const h of pending.splice(0)) {
            const lines: string[] = [];
            for (;;) {
                if (i >= src.length) throw new Error(`the here-document ${h.delim} never ends`);
                let j = src.indexOf("\n", i);
                if (j < 0) j = src.length;
                const line = src.slice(i, j);
                i = j + 1;
                if ((h.strip ? line.replace(/^\t+/, "") : line) === h.delim) break;
                lines.push(line);
            }
            // An unquoted delimiter's body is expanded like a double-quoted string: kept verbatim.
            out.push(h.quoted ? `${HEREDOC}\n` : `${lines.join("\n")}\n${h.delim}\n`);
        }
    };
    const single = () => {
        const j = src.indexOf("'", i + 1);
        if (j < 0) throw new Error("a single quote never closes");
        out.push(QUOTED);
        i = j + 1;
    };
    const double = () => {
        out.push('"');
        i++;
        while (i < src.length && src[i] !== '"') {
            if (src[i] === "\\") {
                out.push(src.slice(i, i + 2));
                i += 2;
            } else if (src.startsWith("$(", i) && !src.startsWith("$((", i)) {
                out.push("$(");
                i += 2;
                top(true);
                out.push(")");
                i++;
            } else {
                out.push(src[i]);
                i++;
            }
        }
        if (i >= src.length) throw new Error("a double quote never closes");
        out.push('"');
        i++;
    };
    const heredoc = () => {
        // At "<<": an optional "-", then the delimiter word, quoted or not.
        i += 2;
        const strip = src[i] === "-";
        if (strip) i++;
        while (src[i] === " ") i++;
        let delim: string;
        let quoted = false;
        if (src[i] === "'") {
            const j = src.indexOf("'", i + 1);
            if (j < 0) throw new Error("a here-document's delimiter never closes");
            delim = src.slice(i + 1, j);
            quoted = true;
            i = j + 1;
            out.push(`<<${strip ? "-" : ""}${QUOTED}`);
        } else {
            const m = /^[A-Za-z0-9_]+/.exec(src.slice(i));
            if (m === null) throw new Error("a here-document without a delimiter");
            delim = m[0];
            i += delim.length;
            out.push(`<<${strip ? "-" : ""}${delim}`);
        }
        pending.push({ delim, quoted, strip });
    };
    function top(inSubstitution: boolean): void {
        let depth = 0;
        while (i < src.length) {
            const c = src[i];
            if (inSubstitution && c === ")" && depth === 0) return;
            if (c === "'") single();
            else if (c === '"') double();
            else if (c === "`") throw new Error("a backtick");
            else if (c === "\\") {
                out.push(src.slice(i, i + 2));
                i += 2;
            } else if (c === "#" && (i === 0 || /[\s;(|&]/.test(src[i - 1]))) {
                // A comment runs nothing up to its line's end, whatever it holds; a value that carried a
                // line break would put the rest on a line of its own, lexed as code and so seen.
                let j = src.indexOf("\n", i);
                if (j < 0) j = src.length;
                out.push("#⟨C⟩");
                i = j;
            } else if (src.startsWith("<<<", i)) {
                out.push("<<<");
                i += 3;
            } else if (src.startsWith("<<", i)) heredoc();
            else if (c === "\n") {
                out.push(c);
                i++;
                bodies();
            } else {
                if (c === "(") depth++;
                if (c === ")") depth--;
                out.push(c);
                i++;
            }
        }
        if (inSubstitution) throw new Error("a $( never closes");
    }
    top(false);
    if (pending.length > 0) throw new Error("a here-document never starts");
    // q() writes a quote inside a value as '\'' between two single-quoted strings: all of it literal.
    return out.join("").replace(new RegExp(`${QUOTED}(?:\\\\'${QUOTED})+`, "g"), QUOTED);
}

/** Keys of an env file, in order; throws on any line that is not a comment or a plain KEY=VALUE. */
export function envKeys(text: string): string[] {
    if (!text.endsWith("\n")) throw new Error("an env file without its last line break");
    const keys: string[] = [];
    for (const line of text.slice(0, -1).split("\n")) {
        if (line.startsWith("# ")) continue;
        const m = /^([A-Z_][A-Z0-9_]*)=([^\s"'\\$`]*)$/.exec(line);
        if (m === null) throw new Error(`not one plain assignment: ${JSON.stringify(line)}`);
        keys.push(m[1]);
    }
    return keys;
}

/** A unit's shape: section/key/number of words of each line; throws on systemd's special characters. */
export function unitShape(text: string): string[] {
    let section = "";
    const shape: string[] = [];
    for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#")) {
            shape.push(line === "" ? "" : "#");
            continue;
        }
        const s = /^\[([A-Za-z]+)\]$/.exec(line);
        if (s !== null) {
            section = s[1];
            shape.push(`[${section}]`);
            continue;
        }
        const m = /^([A-Za-z]+)=(.*)$/.exec(line);
        if (m === null) throw new Error(`not a unit line: ${JSON.stringify(line)}`);
        if (/[%$\\"';`\t\r]/.test(m[2])) throw new Error(`a value with a character systemd gives meaning to: ${JSON.stringify(line)}`);
        shape.push(`${section}/${m[1]}/${m[2] === "" ? 0 : m[2].split(" ").length}`);
    }
    return shape;
}

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const segment = fc.stringMatching(/^[A-Za-z0-9._+-]{1,10}$/).filter((s) => s !== "." && s !== "..");
const absPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => "/" + s.join("/"));
const ownedPath = fc.tuple(fc.constantFrom("/opt", "/srv", "/data", "/var/lib", "/var/opt"), fc.array(segment, { minLength: 1, maxLength: 3 })).map(([root, s]) => [root, ...s].join("/"));
const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?$/);
const hostName = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join("."));
const urlText = (max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9\\-._~:/?#[\\]@&+,=%]{0,${max}}$`));
const url = fc
    .record({
        scheme: fc.constantFrom("http", "https", "HTTPS"),
        userinfo: fc.option(fc.tuple(fc.stringMatching(/^[A-Za-z0-9\-._~%]{1,8}$/), fc.stringMatching(/^[A-Za-z0-9\-._~:&+,=%@]{0,12}$/)), { nil: null }),
        host: fc.oneof(hostName, fc.constantFrom("127.0.0.1", "[::1]", "[fd00::5]")),
        port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
        rest: urlText(24),
    })
    .map((u) => `${u.scheme}://${u.userinfo ? `${u.userinfo[0]}:${u.userinfo[1]}@` : ""}${u.host}${u.port ? `:${u.port}` : ""}/${u.rest}`);
const version = fc.stringMatching(/^[0-9]{1,2}(\.[0-9]{1,2}){0,3}[a-z0-9.+-]{0,8}$/);
const repoPart = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?$/);
const glob = fc.stringMatching(/^[A-Za-z0-9._+\-/*?[\]!]{1,12}$/);
const keyTypes = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com"];
const hostKey = fc
    .tuple(fc.constantFrom(...keyTypes), fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.option(fc.stringMatching(/^[A-Za-z0-9._@+=:-]{1,12}$/), { nil: null }))
    .map(([type, rest, comment]) => {
        const name = Buffer.from(type);
        const len = Buffer.alloc(4);
        len.writeUInt32BE(name.length);
        return `${type} ${Buffer.concat([len, name, rest]).toString("base64")}${comment ? ` ${comment}` : ""}`;
    });
// A lock file is any text: quotes, `$(...)`, and lines that look like the scripts' own heredoc markers.
const lockText = fc.option(
    fc.array(fc.oneof(fc.string(), fc.constantFrom("VLLM_WS_PY", "VLLM_WS_EOF_", "'", '"$(id)"', "`id`", "EOF", "\\")), { maxLength: 6 }).map((l) => l.join("\n")),
    { nil: null },
);

const rawConfig = fc.record({
    target: fc.oneof(
        fc.constant({ kind: "local" }),
        fc.record({
            kind: fc.constant("ssh"),
            host: fc.oneof(hostName, fc.constantFrom("10.0.0.5", "fd00::5", "::1")),
            port: fc.integer({ min: 1, max: 65535 }),
            user: fc.stringMatching(/^[a-z_][a-z0-9_-]{0,10}$/),
            privateKeyPath: fc.option(absPath, { nil: null }),
            hostKey: fc.option(hostKey, { nil: null }),
        }),
    ),
    runtime: fc.constantFrom("systemd", "docker"),
    dockerImage: fc
        .tuple(fc.option(hostName, { nil: null }), fc.stringMatching(/^[a-z0-9]+([._-][a-z0-9]+)*$/), fc.option(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}$/), { nil: null }))
        .map(([registry, name, tag]) => `${registry ? `${registry}/` : ""}${name}${tag ? `:${tag}` : ""}`),
    cuda: fc.record({ home: absPath, wslLibDir: absPath }),
    python: fc.record({
        uvVersion: version,
        version: fc.stringMatching(/^3\.[0-9]{1,2}$/),
        venvPath: ownedPath,
        indexUrl: url,
        extraIndexUrls: fc.array(url, { maxLength: 2 }),
        indexStrategy: fc.constantFrom("first-index", "unsafe-first-match", "unsafe-best-match"),
        vllmVersion: fc.constantFrom("0.11.0", "0.10.1+gptoss", "0.13.0", "0.24.0"),
        flashinferVersion: version,
    }),
    model: fc.record({
        repo: fc.tuple(repoPart, repoPart).map(([a, b]) => `${a}/${b}`),
        revision: hex(40),
        cacheDir: ownedPath,
        endpoint: fc.option(url, { nil: null }),
        tiktoken: fc.record({ baseUrl: url, files: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,8}$/).map((n) => `${n}.tiktoken`), hex(64), { minKeys: 1, maxKeys: 3 }) }),
        exclude: fc.array(glob, { maxLength: 3 }),
        connections: fc.integer({ min: 1, max: 16 }),
        keepOnDestroy: fc.boolean(),
    }),
    server: fc.record({
        host: fc.constantFrom("127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "10.1.2.3", "fd00::5"),
        port: fc.integer({ min: 1, max: 65535 }),
        servedModelName: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,16}$/), { nil: null }),
        user: fc.stringMatching(/^[a-z_][a-z0-9_-]{0,10}$/),
        healthTimeoutSeconds: fc.integer({ min: 5, max: 7200 }),
    }),
    apiKey: fc.stringMatching(/^[A-Za-z0-9._~+/=-]{16,40}$/),
});

const plan: fc.Arbitrary<ServingPlan> = fc.record({
    gpuMemoryUtilization: fc.double({ min: 0.05, max: 1, noNaN: true }),
    cpuOffloadGb: fc.integer({ min: 0, max: 8 }),
    maxModelLen: fc.integer({ min: 256, max: 131072 }),
    maxNumSeqs: fc.integer({ min: 1, max: 1024 }),
    maxNumBatchedTokens: fc.integer({ min: 16, max: 65536 }),
    enforceEager: fc.boolean(),
    attentionBackend: fc.constantFrom("TRITON_ATTN", "FLASH_ATTN", "FLASHINFER"),
    kvCacheDtype: fc.constantFrom("auto", "fp8"),
    requiresPinnedMemory: fc.boolean(),
});

/** The config with every free string a plain word, and everything the renderers branch on kept. */
function twinOf(c: WorkstationConfig): WorkstationConfig {
    const target: WorkstationConfig["target"] =
        c.target.kind === "local" ? c.target : { ...c.target, host: "h", user: "u", privateKeyPath: c.target.privateKeyPath && "/k", hostKey: c.target.hostKey && (c.target.hostKey.split(" ").length === 3 ? "t k c" : "t k") };
    return {
        ...c,
        target,
        dockerImage: "i",
        cuda: { home: "/c/h", wslLibDir: "/c/w" },
        python: { ...c.python, uvVersion: "1", version: "3.0", venvPath: "/p/v", indexUrl: "http://i/", extraIndexUrls: c.python.extraIndexUrls.map(() => "http://e/"), flashinferVersion: "1", lockFile: null },
        model: {
            ...c.model,
            repo: "o/n",
            revision: "r",
            cacheDir: "/m/c",
            endpoint: c.model.endpoint && "http://h/",
            tiktoken: { baseUrl: "http://t/", files: Object.fromEntries(Object.keys(c.model.tiktoken.files).map((_, n) => [`f${n}`, "s"])) },
            exclude: c.model.exclude.map(() => "x"),
        },
        server: { ...c.server, host: "h", servedModelName: c.server.servedModelName && "n", user: "u" },
    };
}

interface Rendered {
    readonly shell: Record<string, string>;
    readonly env: Record<string, string>;
    readonly unit: string;
    readonly flags: Record<string, string | number | boolean>;
    readonly yaml: string;
    readonly requirements: string;
    readonly containerArgs: string[];
    readonly containerEnv: string[];
    readonly sshArgv: string[];
    readonly knownHosts: string | null;
}

/** Everything the stack renders from a config, as it renders it. */
function render(c: WorkstationConfig, p: ServingPlan, lock: string | null, keyId: string | null, scratch: string): Rendered {
    const l = modelLayout(c.model);
    const cuda = cudaEnv.scripts(c.cuda);
    const uv = uvScripts(c.python);
    const pkgs = packageScripts(c.python, lock);
    const model = modelScripts(c.model, c.python.venvPath);
    const service = serviceScripts({ config: c, plan: p, installPath: installPath(c.python, lock), snapshotPath: l.snapshot, tiktokenDir: l.tiktokenDir, apiKeyId: keyId, runsOn: { cuda: "0123456789ab", packages: "0123456789ab", model: "0123456789ab" } });
    const container = containerScripts({ config: c, plan: p, snapshotPath: l.snapshot, tiktokenDir: l.tiktokenDir, apiKeyId: keyId });
    const flags = vllmFlags(c, p);
    fs.rmSync(path.join(scratch, "known_hosts"), { force: true });
    const sshArgv = c.target.kind === "ssh" ? shellArgv(c.target as Connection, scratch) : [];
    return {
        shell: {
            profile: cudaEnv.renderProfile(c.cuda),
            "cuda apply": cuda.apply,
            "cuda probe": cuda.probe,
            "cuda remove": cuda.remove,
            "uv apply": uv.apply,
            "uv probe": uv.probe,
            "uv remove": uv.remove,
            "packages apply": pkgs.apply,
            "packages probe": pkgs.probe,
            "packages remove": pkgs.remove,
            "model probe": modelProbe(c.model),
            "model apply": model.apply,
            "model remove": model.remove,
            "service apply": service.apply,
            "service probe": service.probe,
            "service remove": service.remove,
            "example request": exampleRequest(endpointUrl(c), servedModelName(c), keyId !== null),
            "container apply": container.apply,
            "container probe": container.probe,
            "container remove": container.remove,
            "docker preflight probe": dockerPreflightProbe(c).probe,
            "preflight probe": gatherFacts({
                modelDir: c.model.cacheDir,
                venvDir: c.python.venvPath,
                cudaHome: c.cuda.home,
                wslLibDir: c.cuda.wslLibDir,
                claims: [c.model.cacheDir, c.python.venvPath].map((p) => ({ path: p, kind: "dir" as const, sha256: null, option: "model.cacheDir" })),
            }),
        },
        env: { "cuda.env": cudaEnv.renderServiceEnv(c.cuda), "vllm.env": renderEnv(c, p, l.tiktokenDir) },
        unit: renderUnit(c, l.snapshot),
        flags,
        yaml: renderConfigYaml(flags),
        requirements: renderRequirements(c.python),
        containerArgs: containerArgs(c, p, l.snapshot),
        containerEnv: containerEnv(c, p, l.tiktokenDir),
        sshArgv,
        knownHosts: fs.existsSync(path.join(scratch, "known_hosts")) ? fs.readFileSync(path.join(scratch, "known_hosts"), "utf8") : null,
    };
}

/**
 * Scripts through `bash -n`, all at once (one bash for every config: a bash per config would be most of
 * the test's time), each as a function of its own; a syntax error is reported with the script's label.
 */
function bashParses(scripts: ReadonlyArray<{ label: string; text: string }>): string | null {
    const starts: Array<{ line: number; label: string }> = [];
    let line = 1;
    const text = scripts
        .map(({ label, text: s }, n) => {
            starts.push({ line, label });
            const f = `f${n}() {\n${s}\n}\n`;
            line += f.split("\n").length - 1;
            return f;
        })
        .join("");
    const r = spawnSync("bash", ["-n"], { input: text, encoding: "utf8", maxBuffer: 1 << 26 });
    if (r.status === 0) return null;
    const at = Number(/line (\d+)/.exec(r.stderr)?.[1] ?? 0);
    const where = [...starts].reverse().find((s) => s.line <= at);
    return `${where?.label ?? "?"}: ${r.stderr}`;
}

/** What about `real` breaks the structure `twin` has; empty when nothing does. */
function differences(real: Rendered, twin: Rendered): string[] {
    const out: string[] = [];
    const check = (what: string, f: () => void) => {
        try {
            f();
        } catch (e) {
            out.push(`${what}: ${(e as Error).message}`);
        }
    };
    const same = (a: unknown, b: unknown, what: string) => {
        if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what} differs:\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
    };
    for (const name of Object.keys(twin.shell)) check(name, () => same(shellShape(real.shell[name]), shellShape(twin.shell[name]), "the shape"));
    for (const name of Object.keys(twin.env)) check(name, () => same(envKeys(real.env[name]), envKeys(twin.env[name]), "the keys"));
    check("unit", () => {
        same(unitShape(real.unit), unitShape(twin.unit), "the lines");
        if (real.unit.split("\n").filter((line) => line.startsWith("ExecStart=")).length !== 1) throw new Error("not exactly one ExecStart");
    });
    check("vllm.yaml", () => same(yaml.load(real.yaml), real.flags, "what the YAML reads back as"));
    check("requirements.in", () => {
        if (!/^vllm==[A-Za-z0-9.+-]+\nflashinfer-python==[A-Za-z0-9.+-]+\n$/.test(real.requirements)) throw new Error(JSON.stringify(real.requirements));
    });
    // Each element of an argv reaches its program as it is; what matters is which are options.
    const options = (argv: string[]) => argv.map((a) => (a.startsWith("-") ? a : "·"));
    check("container argv", () => same(options(real.containerArgs), options(twin.containerArgs), "the flags"));
    check("container env", () => same(real.containerEnv.map((e) => /^([A-Z_][A-Z0-9_]*)=[^\n]*$/.exec(e)?.[1]), twin.containerEnv.map((e) => /^([A-Z_][A-Z0-9_]*)=/.exec(e)?.[1]), "the keys"));
    check("ssh argv", () => {
        same(options(real.sshArgv), options(twin.sshArgv), "the options");
        same(real.sshArgv.at(-1), twin.sshArgv.at(-1), "the remote command");
    });
    check("known_hosts", () => {
        const fields = (t: string | null) => (t === null ? null : t.split("\n").map((line) => line.split(" ").length));
        same(fields(real.knownHosts), fields(twin.knownHosts), "the lines and fields");
    });
    return out;
}

const scratchDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-shape-"));

test("no config that passes the schema changes the shape of a script, unit, env file, YAML or argv the stack renders", (t) => {
    const scratch = scratchDir();
    t.teardown(() => fs.rmSync(scratch, { recursive: true, force: true }));
    let rendered = 0;
    const scripts: Array<{ label: string; text: string }> = [];
    fc.assert(
        fc.property(rawConfig, plan, lockText, fc.option(hex(12), { nil: null }), (raw, p, lock, keyId) => {
            let c: WorkstationConfig;
            try {
                c = parseConfig(raw);
            } catch {
                fc.pre(false);
                return;
            }
            rendered++;
            const real = render(c, p, lock, keyId, scratch);
            const problems = differences(real, render(twinOf(c), p, lock, keyId, scratch));
            if (problems.length > 0) throw new Error(problems.join("\n"));
            for (const [name, text] of Object.entries(real.shell)) scripts.push({ label: `${name} of ${JSON.stringify(raw)}`, text });
        }),
        { numRuns: 100, includeErrorInReport: true },
    );
    t.is(bashParses(scripts), null);
    // The generators stay inside the grammar, so nearly every config is rendered, none thrown away.
    t.true(rendered >= 80, `only ${rendered} configs passed the schema`);
});

test("the shape check sees a value pasted into a double-quoted string or left unquoted", (t) => {
    t.not(shellShape(`echo 'x' a`), shellShape(`echo 'x' a;rm`));
    t.not(shellShape(`echo "a"`), shellShape(`echo "$(id)"`));
    t.is(shellShape(`echo 'a'`), shellShape(`echo 'b c $(d) "'`), "single-quoted text is all one shape");
    t.is(shellShape("echo 'it'\\''s'"), shellShape("echo 'its'"), "a quote written as '\\'' stays literal");
    t.not(shellShape("cat <<'E'\nbody\nE\necho x"), shellShape("cat <<'E'\nbody\nE\necho y"));
    t.is(shellShape("cat <<'E'\nbody $(x) '\nE\necho x"), shellShape("cat <<'E'\nother\nE\necho x"), "a quoted here-document's body is all one shape");
    t.not(shellShape("cat <<'E'\nE\nrm -rf /\nE\n"), shellShape("cat <<'E'\nabc\nE\n"), "a body that ends its own here-document changes the shape");
    t.not(shellShape(`x="$(echo 'a')"`), shellShape(`x="$(echo a)"`), "a single quote inside $() inside double quotes is a quote");
    t.throws(() => shellShape("echo 'never closed"));
    t.regex(bashParses([{ label: "fine", text: "echo ok" }, { label: "broken", text: "if then fi" }]) ?? "", /^broken: /);
});

test("the file checks see a second assignment, a quote, a specifier, a split word and a YAML that reads back otherwise", (t) => {
    t.deepEqual(envKeys("# header\nA=1\nB=/x:/y\n"), ["A", "B"]);
    t.deepEqual(envKeys("CUDA_HOME=/usr/local/cuda\nLD_PRELOAD=/lib/x.so\n"), ["CUDA_HOME", "LD_PRELOAD"]);
    t.throws(() => envKeys('A="quoted"\n'));
    t.throws(() => unitShape("[Service]\nExecStart=/opt/v%h/bin/vllm\n"));
    t.notDeepEqual(unitShape("[Service]\nExecStart=/opt/a b/bin/vllm serve\n"), unitShape("[Service]\nExecStart=/opt/ab/bin/vllm serve\n"));
    t.notDeepEqual(yaml.load(renderConfigYaml({ "served-model-name": "x\nport: 2" })), { "served-model-name": "x" });
});
