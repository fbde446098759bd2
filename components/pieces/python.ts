// uv at a pinned version, a venv at a pinned Python, and the vLLM + FlashInfer wheels installed from a
// hash-locked requirements file.
import type { WorkstationConfig } from "../config/schema";
import type { Piece } from "./observe";
import { asset, fillFragment, q, sha256 } from "../host/shell";
import { redactUrl } from "../config/urls";

type PythonConfig = WorkstationConfig["python"];

/**
 * The stack's own directory beside the venv path (derived from it, so owned too): uv, the uv cache, and
 * the installs, one venv per install key. The venv path itself is a link to the install in service.
 */
export function layout(py: PythonConfig) {
    const home = `${py.venvPath}-tools`;
    return {
        home,
        uv: `${home}/uv`,
        cache: `${home}/uv-cache`,
        installs: `${home}/installs`,
    };
}

/**
 * The key of an install: what decides the packages in it (the lock, or for a lock made on the box the
 * request and the indexes it is resolved from) and the Python and uv that made it. Another key is
 * another venv, made beside the one in service; the same key again (going back) finds it installed.
 */
export function installKey(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd"): string {
    const what = lockText === null ? `request\n${renderRequirements(py, runtime)}${indexComment(py)}\n${indexArgs(py)}` : `lock\n${withNewline(lockText)}`;
    return sha256(`${what}\npython ${py.version}\nuv ${py.uvVersion}\n`).slice(0, 16);
}

/** The venv of the packages a config asks for. */
export function installPath(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd"): string {
    return `${layout(py).installs}/${installKey(py, lockText, runtime)}`;
}

const withNewline = (text: string) => (text.endsWith("\n") ? text : `${text}\n`);

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
        apply: fillFragment("uv_apply.sh", {
            HOME: q(l.home),
            UV: q(l.uv),
            UV_VERSION: q(py.uvVersion),
            MESSAGE: q(`installing uv ${py.uvVersion} from ${redactUrl(py.indexUrl)}`),
            FETCH_PY: `${originAuthPy.trim()}\n${fetchUvPy.trim()}`,
        }),
        probe: `echo "uv=$(${q(l.uv)} --version 2>/dev/null | cut -d' ' -f2 || true)"`,
        expected: `uv=${py.uvVersion}`,
        remove: fillFragment("uv_remove.sh", { UV: q(l.uv), HOME: q(l.home) }),
    };
}

/**
 * The packages step: installs the lock into the install of its key (components/assets/packages_*.sh).
 * With the systemd runtime the service's step switches the venv link to it, health-gated; the docker
 * runtime's venv serves only the model download, so this step switches the link itself.
 */
export function packageScripts(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd") {
    const l = layout(py);
    const requirements = renderRequirements(py, runtime);
    const install = installPath(py, lockText, runtime);
    return {
        apply: fillFragment("packages_apply.sh", {
            INDEXES: indexComment(py),
            HOME: q(l.home),
            CACHE: q(l.cache),
            UV: q(l.uv),
            VENV: q(py.venvPath),
            INSTALLS: q(l.installs),
            INSTALL: q(install),
            PYTHON_VERSION: q(py.version),
            REQUIREMENTS: q(requirements),
            LOCK_TEXT: q(lockText === null ? "" : withNewline(lockText)),
            INDEX_STRATEGY: q(py.indexStrategy),
            HINT: q(indexHint(py, runtime)),
            SWITCH: runtime === "docker" ? "yes" : "no",
        }),
        probe: fillFragment("packages_probe.sh", { INSTALL: q(install), UV: q(l.uv), SHARED_LOCK: lockText === null ? "no" : "yes" }),
        expected: [`python=${py.version}`, `request=${sha256(requirements)}`, lockText === null ? "lock=present" : `lock=${sha256(withNewline(lockText))}`, "packages=as-locked"].join("\n"),
        remove: fillFragment("packages_remove.sh", { HOME: q(l.home), CACHE: q(l.cache), VENV: q(py.venvPath), INSTALLS: q(l.installs) }),
    };
}

/** uv and the venv as pieces: what the program looks at first (observe.ts) and the workstation declares (declarePieces). */
export function pythonPieces(py: PythonConfig, lockText: string | null, runtime: Runtime = "systemd"): { uv: Piece; packages: Piece } {
    const l = layout(py);
    const dir = (path: string) => ({ path, kind: "dir" as const, sha256: null, option: "python.venvPath" });
    return {
        uv: { name: "uv", what: `uv ${py.uvVersion}`, probe: uvScripts(py).probe, claims: [dir(l.home)] },
        packages: { name: "packages", what: `the venv ${py.venvPath}`, probe: packageScripts(py, lockText, runtime).probe, claims: [dir(l.home), dir(l.cache), dir(l.installs), dir(py.venvPath)] },
    };
}
