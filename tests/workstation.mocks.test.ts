import test from "ava";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { MockMonitor } from "@pulumi/pulumi/runtime/mocks";

interface Registered {
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    readonly inputs: any;
}

const registered: Registered[] = [];

// The mocks must be in place before any component module creates a resource, so the components are
// loaded with require() below, after this call.
pulumi.runtime.setMocks(
    {
        newResource: (args) => {
            registered.push({ type: args.type, name: args.name, custom: args.custom ?? false, inputs: args.inputs });
            return { id: `${args.name}_id`, state: { ...args.inputs, observed: "x" } };
        },
        call: (args) => args.inputs,
    },
    "vllm-workstation",
    "test",
    false,
);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { declarePieces, Workstation, workstationPieces } = require("../components/workstation") as typeof import("../components/workstation");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parseConfig } = require("../components/config/schema") as typeof import("../components/config/schema");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { assetPath } = require("../components/host/shell") as typeof import("../components/host/shell");
import { plan12, revision, snapshot } from "./helpers/plans";

const apiKey = "sk-local-0123456789abcdef-SECRET";

const plan = plan12;

// How a secret value reaches the mocks: wrapped in an object tagged with Pulumi's secret signature.
const secretSig = "4dabf18193072939515e22adb298388d";
const secretTag = "1b47061264138c4ac30d75fd1eb44270";
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const isSecret = (v: any) => v !== null && typeof v === "object" && v[secretSig] === secretTag;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const plain = (v: any) => (isSecret(v) ? v.value : v);

function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Everything registered under a Workstation called `prefix`, once its endpoint has resolved. */
async function build(prefix: string, raw: Record<string, unknown>, key: string | null, observed: Map<string, string> | null = null) {
    // As loadStackConfig does: the key is checked by the schema, then the components get the config
    // without secrets and the key as a Pulumi secret.
    const parsed = parseConfig({ model: { revision }, ...raw, ...(key === null ? {} : { apiKey: key }) });
    const config = { ...parsed, apiKey: null, hfToken: null };
    const ws = new Workstation(prefix, {
        config,
        connection: { kind: "local" },
        plan,
        lockText: null,
        apiKey: key === null ? null : pulumi.secret(key),
        hfToken: null,
        observed,
    });
    const endpoint = await valueOf(ws.endpoint);
    const mine = registered.filter((r) => r.name === prefix || r.name.startsWith(`${prefix}-`));
    const byName = (name: string) => mine.find((r) => r.name === name);
    return { ws, config, endpoint, mine, byName };
}

test("a systemd workstation registers its pieces under stable names", async (t) => {
    const { mine } = await build("ws", {}, null);
    t.deepEqual(mine.map((r) => r.name).sort(), [
        "ws",
        "ws-cuda",
        "ws-cuda-files",
        "ws-model",
        "ws-model-files",
        "ws-python",
        "ws-python-packages",
        "ws-python-uv",
        "ws-vllm",
        "ws-vllm-unit",
    ]);
});

test("a systemd workstation's components and host states have the expected types", async (t) => {
    const { byName } = await build("types", {}, null);
    t.is(byName("types")!.type, "vllm-workstation:index:Workstation");
    t.is(byName("types-cuda")!.type, "vllm-workstation:index:CudaEnvironment");
    t.is(byName("types-python")!.type, "vllm-workstation:index:PythonEnvironment");
    t.is(byName("types-model")!.type, "vllm-workstation:index:ModelCache");
    t.is(byName("types-vllm")!.type, "vllm-workstation:index:VllmService");
    for (const hs of ["types-cuda-files", "types-python-uv", "types-python-packages", "types-model-files", "types-vllm-unit"]) {
        t.is(byName(hs)!.type, "hoststate:index:HostState", hs);
        t.true(byName(hs)!.custom, hs);
    }
});

test("a systemd workstation's endpoint resolves to the loopback OpenAI URL", async (t) => {
    const { endpoint } = await build("ep", {}, null);
    t.is(endpoint, "http://127.0.0.1:8000/v1");
});

test("a systemd workstation's outputs name the pinned model, the served name, the flags and the venv", async (t) => {
    const { ws } = await build("out", {}, null);
    t.is(await valueOf(ws.model), `openai/gpt-oss-20b@${revision}`);
    t.is(await valueOf(ws.servedModelName), "gpt-oss-20b");
    t.is((await valueOf(ws.vllmFlags))["cpu-offload-gb"], 4);
    t.is(await valueOf(ws.venvPath), "/opt/vllm-workstation/venv");
    const example = await valueOf(ws.exampleRequest);
    t.true(example.startsWith("curl -s 'http://127.0.0.1:8000/v1/chat/completions' "));
    t.false(example.includes("Authorization"));
});

test("each host state gets the connection, its scripts and a description", async (t) => {
    const { byName } = await build("hs", {}, null);
    for (const name of ["hs-cuda-files", "hs-python-uv", "hs-python-packages", "hs-model-files", "hs-vllm-unit"]) {
        const inputs = byName(name)!.inputs;
        t.deepEqual(inputs.connection, { kind: "local" }, name);
        for (const k of ["what", "apply", "probe", "expected", "remove"]) t.is(typeof inputs[k], "string", `${name}.${k}`);
        t.false("__provider" in inputs, `${name} needs no serialized provider`);
    }
    t.is(byName("hs-cuda-files")!.inputs.what, "the CUDA environment");
    t.is(byName("hs-vllm-unit")!.inputs.what, "the vLLM service");
    t.true(byName("hs-model-files")!.inputs.apply.includes(`'${"/opt/vllm-workstation/venv"}/bin/python' - 'openai/gpt-oss-20b'`), "the model downloads with the venv's huggingface_hub");
});

/** Each template's header (its leading comment lines, components/pieces/assets): what it does and why, for its readers. */
function templateHeaders(): Array<{ template: string; line: string }> {
    const dir = path.dirname(assetPath("own.sh"));
    return fs.readdirSync(dir).flatMap((template) => {
        const lines = fs.readFileSync(path.join(dir, template), "utf8").split("\n");
        const end = lines.findIndex((l) => !l.startsWith("#"));
        return lines.slice(0, end < 0 ? lines.length : end).map((line) => ({ template, line }));
    });
}

test("no probe, apply or remove script of a systemd workstation's host states carries a template's header comment, the service's included: the state holds what the steps run", async (t) => {
    const headers = templateHeaders();
    for (const template of ["service_remove.sh", "service_apply.sh", "service_switch.sh", "packages_probe.sh"]) t.true(headers.some((h) => h.template === template), `${template} has a header to leave out`);
    const states = (await build("rm", {}, null)).mine.filter((r) => r.type === "hoststate:index:HostState");
    t.deepEqual(states.map((s) => s.name).sort(), ["rm-cuda-files", "rm-model-files", "rm-python-packages", "rm-python-uv", "rm-vllm-unit"]);
    for (const s of states) {
        const remove: string = plain(s.inputs.remove);
        t.true(remove.length > 0 && !remove.startsWith("#"), `${s.name}'s remove starts with its first command`);
        for (const k of ["probe", "apply", "remove"]) {
            const script: string = plain(s.inputs[k]);
            t.deepEqual(
                headers.filter((h) => script.split("\n").includes(h.line)).map((h) => `${h.template}: ${h.line}`),
                [],
                `${s.name}'s ${k} holds no template's header line`,
            );
        }
    }
});

test("no apply or remove script of a docker workstation's host states carries a template's header comment, the container's libraries included", async (t) => {
    const headers = templateHeaders();
    for (const lib of ["container_lib.sh", "container_switch.sh"]) t.true(headers.some((h) => h.template === lib), `${lib} has a header to leave out`);
    const states = (await build("drm", { runtime: "docker" }, null)).mine.filter((r) => r.type === "hoststate:index:HostState");
    t.true(states.some((s) => s.name === "drm-docker-container"), "the container is among the host states");
    for (const s of states) {
        for (const k of ["apply", "remove"]) {
            const script: string = plain(s.inputs[k]);
            t.true(script.length > 0, `${s.name}'s ${k} is not empty`);
            t.deepEqual(
                headers.filter((h) => script.split("\n").includes(h.line)).map((h) => `${h.template}: ${h.line}`),
                [],
                `${s.name}'s ${k} holds no template's header line`,
            );
        }
    }
});

test("with an API key the service's scripts hold only the key's id, and the example request asks for the key", async (t) => {
    const { byName, ws } = await build("key", { server: { host: "0.0.0.0" } }, apiKey);
    const unit = byName("key-vllm-unit")!.inputs;
    for (const k of ["apply", "probe", "expected", "remove"]) t.false(plain(unit[k]).includes(apiKey), k);
    t.true(plain(unit.apply).includes("# api-key: "));
    t.false(plain(unit.apply).includes("# api-key: none"));
    t.true(plain(unit.expected).split("\n").includes("secrets=600 root"));
    t.true(isSecret(unit.secretEnv), "the key travels as a secret");
    t.deepEqual(plain(unit.secretEnv), { VLLM_WS_API_KEY: apiKey });
    t.true((await valueOf(ws.exampleRequest)).includes('-H "Authorization: Bearer $VLLM_API_KEY"'));
});

test("a docker workstation runs vLLM in a container piece, with no service, no CUDA environment and no vLLM venv", async (t) => {
    const { byName, mine, endpoint } = await build("dk", { runtime: "docker" }, null);
    t.false(mine.some((r) => r.name === "dk-vllm" || r.name === "dk-vllm-unit"), "no systemd service");
    t.false(mine.some((r) => r.name.startsWith("dk-cuda")), "the image brings CUDA");
    t.is(byName("dk-docker")!.type, "vllm-workstation:index:DockerVllm");
    const container = byName("dk-docker-container")!;
    t.is(container.type, "hoststate:index:HostState");
    t.regex(container.inputs.apply, /'--gpus' 'all'/);
    t.regex(container.inputs.apply, /'--ipc' 'host'/);
    t.regex(container.inputs.apply, /'--name' 'vllm-workstation'/);
    t.regex(container.inputs.apply, /'vllm\/vllm-openai:v0\.11\.0' 'serve' /);
    t.regex(byName("dk-python-packages")!.inputs.apply, /huggingface-hub>=0\.34,<2\.0/);
    t.notRegex(byName("dk-python-packages")!.inputs.apply, /vllm==/);
    t.is(endpoint, "http://127.0.0.1:8000/v1");
});

test("a docker workstation's container serves the snapshot on the configured address with read-only model volumes", async (t) => {
    const { byName } = await build("dkv", { runtime: "docker", server: { port: 9001 } }, null);
    const inputs = byName("dkv-docker-container")!.inputs;
    t.true(inputs.apply.includes(`'serve' '${snapshot}'`));
    t.true(inputs.apply.includes("'--enforce-eager'"));
    t.true(inputs.apply.includes("'-p' '127.0.0.1:9001:8000'"));
    t.true(inputs.apply.includes("'-v' '/var/lib/vllm-workstation/hf:/var/lib/vllm-workstation/hf:ro'"));
    t.true(inputs.apply.includes("'-e' 'HF_HUB_OFFLINE=1'"));
    t.regex(inputs.expected, /^api-key=none$/m);
});

test("a docker workstation hands the API key to the container through docker's environment, never a command line or a script", async (t) => {
    const { byName } = await build("dkk", { runtime: "docker", server: { host: "0.0.0.0" } }, apiKey);
    const inputs = byName("dkk-docker-container")!.inputs;
    t.true(isSecret(inputs.secretEnv));
    t.deepEqual(plain(inputs.secretEnv), { VLLM_WS_API_KEY: apiKey });
    for (const k of ["apply", "probe", "expected", "remove"]) t.false(String(plain(inputs[k])).includes(apiKey), k);
    t.true(inputs.apply.includes("create_fixed=('docker' 'create' "));
    t.true(inputs.apply.includes(`VLLM_API_KEY="\${VLLM_WS_API_KEY:-}" "\${create_fixed[@]}" `));
    t.true(inputs.apply.includes("${VLLM_WS_API_KEY:+-e VLLM_API_KEY}"));
});

test("a docker workstation with an API key mounts the key middleware read-only and loads it", async (t) => {
    const { byName } = await build("dkm", { runtime: "docker", server: { host: "0.0.0.0" } }, apiKey);
    const inputs = byName("dkm-docker-container")!.inputs;
    t.true(inputs.apply.includes("'--middleware' 'vllm_workstation_auth.RequireApiKey'"));
    t.true(inputs.apply.includes("'-v' '/opt/vllm-workstation/venv-tools/container-python:/opt/vllm-workstation/python:ro'"));
    t.true(inputs.apply.includes("'-e' 'PYTHONPATH=/opt/vllm-workstation/python'"));
    t.true(inputs.apply.includes("own_dir '/opt/vllm-workstation/venv-tools/container-python'"));
    t.regex(inputs.expected, /^auth-module=[0-9a-f]{64}$/m);
});

test("the service's apply carries ids of the CUDA environment, the packages and the model it runs on, each changing with its piece", async (t) => {
    const stamp = async (prefix: string, raw: Record<string, unknown>) => {
        const { byName } = await build(prefix, raw, null);
        const apply: string = byName(`${prefix}-vllm-unit`)!.inputs.apply;
        return Object.fromEntries([...apply.matchAll(/^(cuda|packages|model)=([0-9a-f]{12})$/gm)].map((m) => [m[1], m[2]]));
    };
    const base = await stamp("ro0", {});
    t.deepEqual(Object.keys(base).sort(), ["cuda", "model", "packages"]);
    const cuda = await stamp("ro1", { cuda: { home: "/usr/local/cuda-12.8" } });
    const packages = await stamp("ro2", { python: { flashinferVersion: "0.6.12" } });
    const model = await stamp("ro3", { model: { revision: "0".repeat(40) } });
    const plan = await stamp("ro4", { server: { port: 8123 } });
    t.deepEqual(cuda, { ...base, cuda: cuda.cuda });
    t.not(cuda.cuda, base.cuda);
    t.deepEqual(packages, { ...base, packages: packages.packages });
    t.not(packages.packages, base.packages);
    t.deepEqual(model, { ...base, model: model.model });
    t.not(model.model, base.model);
    t.deepEqual(plan, base, "a change of the service's own settings leaves the ids alone");
});

for (const runtime of ["systemd", "docker"] as const) {
    test(`every host state of a ${runtime} workstation is a declared piece, with the probe the program's look runs for that piece's name and what the look saw under it`, async (t) => {
        const config = { ...parseConfig({ model: { revision }, runtime }), apiKey: null, hfToken: null };
        const prefix = `obs-${runtime}`;
        const look = new Map(workstationPieces(config, null).map((p) => [p.name, p]));
        const seen = new Map([...look.keys()].map((n) => [n, `what the probe of ${n} printed`]));
        const { mine } = await build(prefix, { runtime }, null, seen);
        const declared = declarePieces(config, null);
        const states = mine.filter((r) => r.type === "hoststate:index:HostState");
        t.deepEqual(states.map((r) => r.name).sort(), declared.map((d) => `${prefix}-${d.group.name}-${d.role}`).sort(), "one host state per declared piece, and no other");
        t.deepEqual([...look.keys()], declared.map((d) => d.piece.name), "the look looks at exactly the declared pieces");
        for (const d of declared) {
            const state = states.find((r) => r.name === `${prefix}-${d.group.name}-${d.role}`)!;
            t.is(state.inputs.probe, look.get(d.piece.name)!.probe, d.piece.name);
            t.is(state.inputs.what, look.get(d.piece.name)!.what, d.piece.name);
            t.is(state.inputs.observed, seen.get(d.piece.name), d.piece.name);
        }
    });
}

// The URNs a stack converged by this package holds: another type, parent or name for any of them
// would make an upgraded checkout's preview delete that piece and create it again (the venv and the
// model included). The mocks' URNs name the parent's type, as the engine's name the whole chain.
const convergedUrns = {
    systemd: [
        "vllm-workstation:index:CudaEnvironment$hoststate:index:HostState::urn-systemd-cuda-files",
        "vllm-workstation:index:ModelCache$hoststate:index:HostState::urn-systemd-model-files",
        "vllm-workstation:index:PythonEnvironment$hoststate:index:HostState::urn-systemd-python-packages",
        "vllm-workstation:index:PythonEnvironment$hoststate:index:HostState::urn-systemd-python-uv",
        "vllm-workstation:index:VllmService$hoststate:index:HostState::urn-systemd-vllm-unit",
        "vllm-workstation:index:Workstation$vllm-workstation:index:CudaEnvironment::urn-systemd-cuda",
        "vllm-workstation:index:Workstation$vllm-workstation:index:ModelCache::urn-systemd-model",
        "vllm-workstation:index:Workstation$vllm-workstation:index:PythonEnvironment::urn-systemd-python",
        "vllm-workstation:index:Workstation$vllm-workstation:index:VllmService::urn-systemd-vllm",
        "vllm-workstation:index:Workstation::urn-systemd",
    ],
    docker: [
        "vllm-workstation:index:DockerVllm$hoststate:index:HostState::urn-docker-docker-container",
        "vllm-workstation:index:ModelCache$hoststate:index:HostState::urn-docker-model-files",
        "vllm-workstation:index:PythonEnvironment$hoststate:index:HostState::urn-docker-python-packages",
        "vllm-workstation:index:PythonEnvironment$hoststate:index:HostState::urn-docker-python-uv",
        "vllm-workstation:index:Workstation$vllm-workstation:index:DockerVllm::urn-docker-docker",
        "vllm-workstation:index:Workstation$vllm-workstation:index:ModelCache::urn-docker-model",
        "vllm-workstation:index:Workstation$vllm-workstation:index:PythonEnvironment::urn-docker-python",
        "vllm-workstation:index:Workstation::urn-docker",
    ],
};

for (const runtime of ["systemd", "docker"] as const) {
    test(`a ${runtime} workstation's resources keep the URNs that stacks converged before hold`, async (t) => {
        const prefix = `urn-${runtime}`;
        await build(prefix, { runtime }, null);
        const monitor = pulumi.runtime.getMonitor() as unknown as MockMonitor;
        const urns = [...monitor.resources.keys()].filter((u) => u.split("::").pop()!.startsWith(prefix));
        t.deepEqual(urns.map((u) => u.split("::").slice(2).join("::")).sort(), convergedUrns[runtime]);
    });
}

test("a docker workstation's program looks at the container instead of the service unit and the CUDA environment", (t) => {
    const config = { ...parseConfig({ model: { revision }, runtime: "docker" }), apiKey: null, hfToken: null };
    t.deepEqual(
        workstationPieces(config, null).map((p) => p.what),
        ["uv 0.9.5", "the venv /opt/vllm-workstation/venv", `the model openai/gpt-oss-20b@${revision.slice(0, 12)}`, "the vLLM container vllm-workstation"],
    );
});

test("without what the program saw, a host state has no observed input and diff falls back to the last refresh", async (t) => {
    const { byName } = await build("noobs", {}, null);
    t.is(byName("noobs-cuda-files")!.inputs.observed, undefined);
});
