// uv at a pinned version, a venv at a pinned Python, and the vLLM + FlashInfer wheels installed from a
// hash-locked requirements file.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "../config/schema";
import type { Connection } from "../host/connection";
import { HostState, ready } from "../host/hostState";
import type { Observed, Piece } from "./observe";
import { asset, q, say, sha256, writeFile } from "../host/shell";
import { redactUrl } from "../config/urls";

type PythonConfig = WorkstationConfig["python"];

/** The stack's own directory beside the venv (derived from it, so owned too): uv, the lock, the uv cache. */
export function layout(py: PythonConfig) {
    const home = `${py.venvPath}-tools`;
    return {
        home,
        uv: `${home}/uv`,
        requirementsIn: `${home}/requirements.in`,
        lock: `${home}/requirements.lock`,
        cache: `${home}/uv-cache`,
    };
}

type Runtime = WorkstationConfig["runtime"];

/**
 * What is asked for; the lock pins it and everything it pulls in, with hashes. The docker runtime's
 * vLLM is in its image: on the host it needs only huggingface_hub, for the model download, in the
 * range vLLM's transformers allows.
 */
export function renderRequirements(py: PythonConfig, runtime: Runtime = "systemd"): string {
    if (runtime === "docker") return "huggingface-hub>=0.34,<2.0\n";
    return `vllm==${py.vllmVersion}\nflashinfer-python==${py.flashinferVersion}\n`;
}

/** An index URL for messages: a private index's credentials (`https://user:token@host/simple`) left out. */
export const shownUrl = redactUrl;

/**
 * What to say when uv cannot find or fetch a pin: uv's own message names the package but not where it
 * looked, and a typo in a pin reads the same as an index that lacks the release.
 */
export function indexHint(py: PythonConfig, runtime: Runtime = "systemd"): string {
    const where = [py.indexUrl, ...py.extraIndexUrls].map(shownUrl).join(", ");
    if (runtime === "docker") {
        return `uv could not get huggingface-hub (for the model download) and its dependencies from the package index ${where} (strategy ${py.indexStrategy}): check python.indexUrl and python.extraIndexUrls, then run pulumi up again`;
    }
    return `uv could not get vllm==${py.vllmVersion} / flashinfer-python==${py.flashinferVersion} and their dependencies from the package index ${where} (strategy ${py.indexStrategy}): check that the index serves these versions (python.vllmVersion, python.flashinferVersion, python.indexUrl, python.extraIndexUrls), then run pulumi up again`;
}

/**
 * The indexes, as uv reads them from its environment (UV_INDEX_URL, and UV_EXTRA_INDEX_URL: a list
 * separated by spaces): they travel in the steps' secret environment, because they may carry
 * credentials, which a command line shows to every user on the box (ps, /proc/PID/cmdline) and the
 * state would hold in plain text. The fetch of uv itself reads UV_INDEX_URL too.
 */
export function indexEnv(py: PythonConfig): Record<string, string> {
    return { UV_INDEX_URL: py.indexUrl, ...(py.extraIndexUrls.length > 0 ? { UV_EXTRA_INDEX_URL: py.extraIndexUrls.join(" ") } : {}) };
}

/**
 * What the scripts say of the indexes: with their credentials left out, so that another index (host
 * or path) is a change that runs the step again, while a rotated password alone is not (like a rotated
 * token: nothing on the box depends on it, and a digest of it in the state could be guessed back from
 * a weak password).
 */
export function indexComment(py: PythonConfig): string {
    // Quoted like every value in a script, though a comment runs nothing: the shape stays the same.
    return `# indexes: ${[py.indexUrl, ...py.extraIndexUrls].map((u) => q(redactUrl(u))).join(" ")}`;
}

/** uv's index options beside the indexes of indexEnv, shared by compile and sync so both see the same packages. */
export function indexArgs(py: PythonConfig): string {
    return `--index-strategy ${py.indexStrategy}`;
}

// The helpers every Python script of the stack that fetches over HTTP starts with: a URL may carry
// credentials (`https://user:token@host/...`), which urllib cannot use as they are. They are sent as
// HTTP basic auth to that URL's origin only: a redirect to another host (a CDN, files.pythonhosted.org)
// goes without them. Messages show a URL with its userinfo left out.
export const originAuthPy = asset("origin_auth.py");

// Fetches the uv wheel from the configured index (UV_INDEX_URL, from the step's secret environment)
// with the interpreter every WSL distribution ships (Ubuntu leaves out ensurepip, so no pip), checks
// the index's sha256 and unpacks the binary.
const fetchUvPy = asset("fetch_uv.py");

export function uvScripts(py: PythonConfig) {
    const l = layout(py);
    return {
        apply: [
            `own_dir ${q(l.home)}`,
            `if [ "$(${q(l.uv)} --version 2>/dev/null | cut -d' ' -f2)" != ${q(py.uvVersion)} ]; then`,
            `  ${say(`installing uv ${py.uvVersion} from ${redactUrl(py.indexUrl)}`)}`,
            `  UV_VERSION=${q(py.uvVersion)} UV_DEST=${q(l.uv)} python3 - <<'VLLM_WS_PY'`,
            originAuthPy.trim(),
            fetchUvPy.trim(),
            `VLLM_WS_PY`,
            `fi`,
        ].join("\n"),
        probe: `echo "uv=$(${q(l.uv)} --version 2>/dev/null | cut -d' ' -f2 || true)"`,
        expected: `uv=${py.uvVersion}`,
        remove: `rm -f ${q(l.uv)} ${q(l.uv)}.part\nown_release_dir ${q(l.home)}`,
    };
}

/** Lines `name==version`, normalized as pip does, sorted: what `uv pip freeze` must print for a lock. */
const pins = (cmd: string) => `${cmd} | grep -E '^[A-Za-z0-9._-]+==' | sed 's/[ ;\\\\].*//' | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/-/g' | sort`;

export function packageScripts(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd") {
    const l = layout(py);
    const requirements = renderRequirements(py, runtime);
    const uv = `UV_CACHE_DIR=${q(l.cache)} ${q(l.uv)}`;
    const python = `${py.venvPath}/bin/python`;
    const lockStep =
        lockText === null
            ? [
                  // No shared lock: resolve once on this box and keep it; a changed request resolves again.
                  `if [ ! -f ${q(l.lock)} ] || ! cmp -s ${q(l.requirementsIn)} "$req"; then`,
                  `  ${say("resolving the package set (uv pip compile --generate-hashes)")}`,
                  `  ${uv} pip compile "$req" --generate-hashes --python ${q(python)} ${indexArgs(py)} -o ${q(l.lock)}.part || { rm -f ${q(l.lock)}.part; echo ${q(indexHint(py, runtime))} >&2; exit 1; }`,
                  `  mv -f ${q(l.lock)}.part ${q(l.lock)}`,
                  `fi`,
              ].join("\n")
            : writeFile(l.lock, lockText);
    return {
        apply: [
            indexComment(py),
            `own_dir ${q(l.home)}`,
            `own_dir ${q(l.cache)}`,
            // uv makes the venv's directory itself; the stack claims it first (refused if someone else's).
            `own_claim_dir ${q(py.venvPath)}`,
            `if [ ! -x ${q(python)} ] || [ "$(${q(python)} -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != ${q(py.version)} ]; then`,
            `  ${say(`creating the venv ${py.venvPath} with Python ${py.version}`)}`,
            // --clear: a venv of another Python the stack made here before is replaced, in place.
            `  ${uv} venv --clear --python ${q(py.version)} ${q(py.venvPath)}`,
            `fi`,
            `req=$(mktemp)`,
            `printf '%s' ${q(requirements)} >"$req"`,
            lockStep,
            `mv -f "$req" ${q(l.requirementsIn)}`,
            say(`installing the locked packages into ${py.venvPath}`),
            // --compile-bytecode: the service runs as server.user under ProtectSystem=strict, so it cannot
            // write __pycache__ into this root-owned venv; without .pyc files every start of vLLM would
            // compile vllm, torch and transformers from source again (the hf download too, once).
            `${uv} pip sync --require-hashes --compile-bytecode --python ${q(python)} ${indexArgs(py)} ${q(l.lock)} || { echo ${q(indexHint(py, runtime))} >&2; exit 1; }`,
        ].join("\n"),
        probe: [
            `echo "python=$(${q(python)} -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo missing)"`,
            `echo "request=$(sha256sum ${q(l.requirementsIn)} 2>/dev/null | cut -c1-64 || echo missing)"`,
            lockText === null ? `[ -f ${q(l.lock)} ] && echo lock=present || echo lock=missing` : `echo "lock=$(sha256sum ${q(l.lock)} 2>/dev/null | cut -c1-64 || echo missing)"`,
            // Cheap: compares the venv's installed versions with the lock's pins; no network, no hashing.
            `if [ -x ${q(python)} ] && [ -f ${q(l.lock)} ] && diff -q <(${pins(`cat ${q(l.lock)}`)}) <(${pins(`${q(l.uv)} pip freeze --python ${q(python)} 2>/dev/null`)}) >/dev/null; then echo packages=as-locked; else echo packages=drifted; fi`,
        ].join("\n"),
        expected: [
            `python=${py.version}`,
            `request=${sha256(requirements)}`,
            lockText === null ? "lock=present" : `lock=${sha256(lockText.endsWith("\n") ? lockText : lockText + "\n")}`,
            "packages=as-locked",
        ].join("\n"),
        remove: [`own_remove_tree ${q(py.venvPath)}`, `own_remove_tree ${q(l.cache)}`, `rm -f ${q(l.lock)} ${q(l.requirementsIn)}`, `own_release_dir ${q(l.home)}`].join("\n"),
    };
}

/** The pieces this component declares, uv and the venv, as the program looks at them first (observe.ts). */
export function pythonPieces(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd"): { uv: Piece; packages: Piece } {
    const l = layout(py);
    const dir = (path: string) => ({ path, kind: "dir" as const, sha256: null, option: "python.venvPath" });
    return {
        uv: { name: "uv", what: `uv ${py.uvVersion}`, probe: uvScripts(py).probe, claims: [dir(l.home)] },
        packages: { name: "packages", what: `the venv ${py.venvPath}`, probe: packageScripts(py, lockText, runtime).probe, claims: [dir(l.home), dir(l.cache), dir(py.venvPath)] },
    };
}

export interface PythonEnvironmentArgs {
    readonly connection: Connection;
    readonly python: PythonConfig;
    /** Contents of python.lockFile, read by the program; null when the lock is made on the box. */
    readonly lockText: string | null;
    /** What the program saw of each piece this run, by name (observe.ts); null: the last refresh's. */
    readonly observed: Observed | null;
    /** Default "systemd": vLLM and FlashInfer; "docker": only what the model download needs. */
    readonly runtime?: Runtime;
}

export class PythonEnvironment extends pulumi.ComponentResource {
    /** The venv's root; vllm and hf are in its bin/. Known once the packages are installed. */
    public readonly venvPath: pulumi.Output<string>;

    constructor(name: string, args: PythonEnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:PythonEnvironment", name, {}, opts);
        const pieces = pythonPieces(args.python, args.lockText, args.runtime);
        const secretEnv = indexEnv(args.python);
        const uv = new HostState(
            `${name}-uv`,
            { connection: args.connection, ...uvScripts(args.python), what: pieces.uv.what, observed: args.observed?.get(pieces.uv.name), secretEnv },
            { parent: this },
        );
        const packages = new HostState(
            `${name}-packages`,
            {
                connection: args.connection,
                ...packageScripts(args.python, args.lockText, args.runtime),
                what: pieces.packages.what,
                observed: args.observed?.get(pieces.packages.name),
                secretEnv,
            },
            { parent: this, dependsOn: [uv] },
        );
        this.venvPath = ready(packages, args.python.venvPath);
        this.registerOutputs({ venvPath: this.venvPath });
    }
}
