import test from "ava";
import { ConfigError, hostKeyProblem, isLoopback, nearestKey, ownedDirProblem, parseConfig, secretOptions } from "../../components/config/schema";

const revision = "0123456789abcdef0123456789abcdef01234567";
const minimal = { model: { revision } };

function problemsOf(raw: unknown): string[] {
    try {
        parseConfig(raw);
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    throw new Error("expected the config to be rejected");
}

test("a config with only the model revision gets every default filled", (t) => {
    const c = parseConfig(minimal);
    t.deepEqual(c.target, { kind: "local" });
    t.is(c.runtime, "systemd");
    t.is(c.server.host, "127.0.0.1");
    t.is(c.server.port, 8000);
    t.is(c.python.version, "3.12");
    t.is(c.python.vllmVersion, "0.11.0");
    t.is(c.python.flashinferVersion, "0.3.1");
    t.is(c.python.indexStrategy, "first-index");
    t.is(c.gpu.tier, "auto");
    t.is(c.gpu.gpuMemoryUtilization, null);
    t.is(c.model.repo, "openai/gpt-oss-20b");
    t.false(c.model.keepOnDestroy);
    t.is(c.model.connections, 4);
    t.is(c.apiKey, null);
});

test("numbers and booleans set as strings by `pulumi config set --path` are accepted", (t) => {
    const c = parseConfig({ ...minimal, server: { port: "8001" }, gpu: { enforceEager: "true", maxModelLen: "4096" } });
    t.is(c.server.port, 8001);
    t.true(c.gpu.enforceEager);
    t.is(c.gpu.maxModelLen, 4096);
});

test("the seeds' preview wheels from two extra indexes can be expressed", (t) => {
    const c = parseConfig({
        ...minimal,
        python: {
            vllmVersion: "0.10.1+gptoss",
            extraIndexUrls: ["https://wheels.vllm.ai/gpt-oss/", "https://download.pytorch.org/whl/nightly/cu128"],
            indexStrategy: "unsafe-best-match",
        },
    });
    t.is(c.python.vllmVersion, "0.10.1+gptoss");
    t.is(c.python.extraIndexUrls.length, 2);
    t.is(c.python.indexStrategy, "unsafe-best-match");
});

test("an unknown tier is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ ...minimal, gpu: { tier: "8gb" } });
    t.regex(p, /^gpu\.tier: "8gb" /);
});

test("a port out of range is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ ...minimal, server: { port: 70000 } });
    t.regex(p, /^server\.port: 70000 /);
});

test("model.connections of 0 is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ ...minimal, model: { revision, connections: 0 } });
    t.regex(p, /^model\.connections: 0 /);
});

test("model.connections above 16 is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ ...minimal, model: { revision, connections: 64 } });
    t.regex(p, /^model\.connections: 64 /);
});

test("a fractional model.connections is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ ...minimal, model: { revision, connections: "2.5" } });
    t.regex(p, /^model\.connections: "2\.5" /);
});

test("gpu-memory-utilization above 1 is rejected because vLLM refuses it", (t) => {
    const [p] = problemsOf({ ...minimal, gpu: { gpuMemoryUtilization: 1.2 } });
    t.regex(p, /^gpu\.gpuMemoryUtilization: 1\.2 is outside \(0, 1\]: .*vLLM rejects more/);
});

test("an offload beyond the model's weights is rejected: there is nothing more to offload", (t) => {
    t.notThrows(() => parseConfig({ ...minimal, gpu: { cpuOffloadGb: 13.8 } }));
    t.deepEqual(problemsOf({ ...minimal, gpu: { cpuOffloadGb: 20 } }), ["gpu.cpuOffloadGb: 20 is more than the 13.8 GiB of weights gpt-oss-20b has"]);
});

test("fewer batched tokens than sequences is rejected, also beside another bad gpu option", (t) => {
    t.deepEqual(problemsOf({ ...minimal, gpu: { maxNumSeqs: 128, maxNumBatchedTokens: "64", tier: "8gb" } }), [
        'gpu.tier: "8gb" is not one of "auto", "12gb", "16gb", "24gb"',
        'gpu.maxNumBatchedTokens: "64" is less than gpu.maxNumSeqs 128; vLLM requires at least one token per sequence per step',
    ]);
});

test("the secret options are the schema's: apiKey and hfToken", (t) => {
    t.deepEqual(secretOptions, ["apiKey", "hfToken"]);
});

test("the root directory as the venv path is rejected", (t) => {
    const [p] = problemsOf({ ...minimal, python: { venvPath: "/" } });
    t.regex(p, /^python\.venvPath: "\/" is a shared root \(the whole disk\)/);
});

test("a home directory as the venv path is rejected", (t) => {
    const [p] = problemsOf({ ...minimal, python: { venvPath: "/home/alice" } });
    t.regex(p, /^python\.venvPath: "\/home\/alice" is inside \/home, which belongs to the system or to the machine's users/);
});

test("a relative venv path is rejected", (t) => {
    const [p] = problemsOf({ ...minimal, python: { venvPath: "venv" } });
    t.regex(p, /^python\.venvPath: "venv" must be an absolute path/);
});

test("a model cache inside the venv is rejected", (t) => {
    const [p] = problemsOf({ ...minimal, python: { venvPath: "/opt/v" }, model: { revision, cacheDir: "/opt/v/hf" } });
    t.regex(p, /^model\.cacheDir: "\/opt\/v\/hf" overlaps python\.venvPath/);
});

test("a non-loopback host without an API key is rejected", (t) => {
    const [p] = problemsOf({ ...minimal, server: { host: "0.0.0.0" } });
    t.regex(p, /^apiKey: \(secret\) is required when server\.host is "0\.0\.0\.0"/);
});

test("a non-loopback host with an API key is accepted", (t) => {
    const c = parseConfig({ ...minimal, server: { host: "0.0.0.0" }, apiKey: "k".repeat(32) });
    t.is(c.server.host, "0.0.0.0");
});

test("a short API key is rejected without quoting it", (t) => {
    const [p] = problemsOf({ ...minimal, apiKey: "hunter2" });
    t.regex(p, /^apiKey: \(secret\) .*16/);
    t.false(p.includes("hunter2"));
});

test("a malformed revision is rejected naming the field and the value", (t) => {
    const [p] = problemsOf({ model: { revision: "main" } });
    t.regex(p, /^model\.revision: "main" must be a full 40-character commit hash/);
});

test("a missing revision is rejected", (t) => {
    const [p] = problemsOf({});
    t.regex(p, /^model: \(not set\)|^model\.revision: \(not set\)/);
});

test("an unknown option is rejected with the nearest option suggested, its value not shown", (t) => {
    const [p] = problemsOf({ ...minimal, sever: { port: 1 } });
    t.is(p, "sever: is not an option of this stack (did you mean server?)");
});

test("docker over ssh is accepted: the container is driven through the same SSH connection", (t) => {
    const c = parseConfig({ ...minimal, runtime: "docker", target: { kind: "ssh", host: "ws1" } });
    t.is(c.runtime, "docker");
    t.is(c.target.kind, "ssh");
});

test("a docker image whose tag is not a vLLM version needs dockerVllmVersion", (t) => {
    const [p] = problemsOf({ ...minimal, runtime: "docker", dockerImage: "registry.lan/vllm:latest" });
    t.regex(p, /^dockerVllmVersion: \(not set\) is needed: the tag of dockerImage "registry\.lan\/vllm:latest" is not a vLLM version/);
    const c = parseConfig({ ...minimal, runtime: "docker", dockerImage: "registry.lan/vllm:latest", dockerVllmVersion: "0.24.0" });
    t.is(c.dockerVllmVersion, "0.24.0");
});

test("dockerHost must be a unix, tcp or ssh address", (t) => {
    const [p] = problemsOf({ ...minimal, runtime: "docker", dockerHost: "/var/run/docker.sock" });
    t.regex(p, /^dockerHost: "\/var\/run\/docker\.sock" must be the Docker engine's address: unix:\/\/\/run\/docker\.sock, tcp:\/\/<host>:<port> or ssh:\/\/\[user@\]<host>\[:port\]/);
    for (const ok of ["unix:///run/user/1000/docker.sock", "tcp://127.0.0.1:2375", "tcp://[::1]:2376", "ssh://ws1.lan", "ssh://dev@ws1.lan:2222"]) {
        t.is(parseConfig({ ...minimal, dockerHost: ok }).dockerHost, ok);
    }
});

test("dockerHost holds each part to its grammar: a socket path, a host name, a user and a port", (t) => {
    const problem = (v: string) => problemsOf({ ...minimal, runtime: "docker", dockerHost: v })[0] ?? null;
    t.regex(problem("unix:///run/docker sock")!, /^dockerHost: .* has a socket path that holds a space/);
    t.regex(problem("unix://run/docker.sock")!, /has a socket path that must be an absolute path/);
    t.regex(problem("tcp://127.0.0.1")!, /the port must be 1 to 65535 and is required/);
    t.regex(problem("tcp://dev@ws1.lan:2375")!, /must be the Docker engine's address/);
    t.regex(problem("ssh://-oProxyCommand=x")!, /has a host that .*must be a host name/);
    t.regex(problem("ssh://ws1.lan:99999")!, /the port must be 1 to 65535/);
    t.regex(problem("ssh://ws1.lan;id")!, /has a host that holds ";"/);
    t.regex(problem("ssh://$(id)@ws1.lan")!, /must be the Docker engine's address/);
});

test("dockerVllmVersion is a vLLM release, and dockerImage a Docker image reference", (t) => {
    t.is(parseConfig({ ...minimal, runtime: "docker", dockerVllmVersion: "0.10.1+gptoss" }).dockerVllmVersion, "0.10.1+gptoss");
    t.regex(problemsOf({ ...minimal, runtime: "docker", dockerVllmVersion: "0.11.0;id" })[0], /^dockerVllmVersion: .* must be a vLLM release like 0\.11\.0/);
    t.regex(problemsOf({ ...minimal, runtime: "docker", dockerImage: "vllm/vllm-openai:v0.11.0 --privileged" })[0], /^dockerImage: .* must be a Docker image reference/);
});

test("an ssh target gets port 22 and user root by default", (t) => {
    const c = parseConfig({ ...minimal, target: { kind: "ssh", host: "ws1.lan" } });
    t.deepEqual(c.target, { kind: "ssh", host: "ws1.lan", port: 22, user: "root", privateKeyPath: null, hostKey: null });
});

test("every problem is reported at once, each starting with its path", (t) => {
    const problems = problemsOf({
        model: { revision: "abc" },
        server: { host: "0.0.0.0", port: 0 },
        gpu: { tier: "8gb", gpuMemoryUtilization: 1.5 },
        python: { venvPath: "/" },
    });
    const paths = problems.map((p) => p.split(":")[0]).sort();
    t.deepEqual(paths, ["gpu.gpuMemoryUtilization", "gpu.tier", "model.revision", "python.venvPath", "server.port"]);
});

test("the error message lists every problem under one heading", (t) => {
    const err = t.throws(() => parseConfig({ model: { revision: "x" }, server: { port: -1 } }), { instanceOf: ConfigError });
    t.regex(err!.message, /^invalid stack config \(2 problems\):\n  - model\.revision: "x" .*\n  - server\.port: -1 /);
});

test("localhost, 127.0.0.0/8 and ::1 in any spelling are loopback and need no API key", (t) => {
    for (const host of ["localhost", "127.0.0.1", "127.0.0.2", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
        t.notThrows(() => parseConfig({ ...minimal, server: { host } }), host);
        t.true(isLoopback(host), host);
    }
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "::ffff:10.0.0.5", "128.0.0.1"]) t.false(isLoopback(host), host);
});

test("an IPv6 listen address is kept in its one canonical spelling", (t) => {
    t.is(parseConfig({ ...minimal, server: { host: "0:0:0:0:0:0:0:1" } }).server.host, "::1");
    t.is(parseConfig({ ...minimal, server: { host: "0:0:0:0:0:0:0:0" }, apiKey: "k".repeat(32) }).server.host, "::");
});

test("a nested option's typo is named by its full path with the nearest option suggested", (t) => {
    const problems = problemsOf({ model: { revision, keepOnDestory: true }, server: { prot: 8001 } });
    t.deepEqual(problems, ["model.keepOnDestory: is not an option of this stack (did you mean keepOnDestroy?)", "server.prot: is not an option of this stack (did you mean port?)"]);
});

test("an unknown key far from every option gets no suggestion", (t) => {
    t.deepEqual(problemsOf({ ...minimal, gpu: { colour: "green" } }), ["gpu.colour: is not an option of this stack"]);
    t.is(nearestKey("colour", ["tier", "maxModelLen"]), null);
});

test("a URL's credentials are never shown in a problem, whatever else is wrong with it", (t) => {
    const problems = problemsOf({ ...minimal, python: { indexUrl: "ftp://alice:Pa55-word@pypi.lan/simple", extraIndexUrls: ["https://bob:x y@pypi.lan/"] } });
    t.is(problems.length, 2);
    t.regex(problems[0], /^python\.indexUrl: "ftp:\/\/\*\*\*@pypi\.lan\/simple" must be an http:\/\/ or https:\/\/ URL/);
    t.regex(problems[1], /^python\.extraIndexUrls\.0: "https:\/\/\*\*\*@pypi\.lan\/" has credentials holding a character/);
    t.false(problems.join("\n").includes("Pa55-word"));
});

test("URLs with credentials, a port, a query and percent-encoding are accepted", (t) => {
    const c = parseConfig({ ...minimal, python: { indexUrl: "https://user:p%24ss@pypi.lan:8443/simple/?a=1&b=2", extraIndexUrls: ["http://[::1]:3141/root/pypi/+simple/"] } });
    t.is(c.python.indexUrl, "https://user:p%24ss@pypi.lan:8443/simple/?a=1&b=2");
});

test("owned directories inside a named directory of a shared root are accepted, the root itself is not", (t) => {
    for (const dir of ["/opt/venv", "/srv/vllm/venv", "/data/models/venv", "/var/lib/vllm-workstation/venv", "/var/opt/ws/venv"]) {
        t.is(parseConfig({ ...minimal, python: { venvPath: dir } }).python.venvPath, dir);
        t.is(ownedDirProblem(dir), null, dir);
    }
    for (const dir of ["/opt", "/data", "/var/lib", "/var/cache", "/usr/local/venv", "/var/tmp/venv", "/run/venv", "/media/usb/venv"]) t.not(ownedDirProblem(dir), null, dir);
});

test("a model cache inside the tools directory beside the venv is refused", (t) => {
    const [p] = problemsOf({ ...minimal, python: { venvPath: "/srv/x" }, model: { revision, cacheDir: "/srv/x-tools/cache" } });
    t.regex(p, /^model\.cacheDir: "\/srv\/x-tools\/cache" overlaps python\.venvPath "\/srv\/x"/);
});

test("the venv path is checked even when another python option is wrong, so every problem shows at once", (t) => {
    const paths = problemsOf({ ...minimal, python: { venvPath: "/etc", indexUrl: "file:///x" } }).map((p) => p.split(":")[0]);
    t.deepEqual(paths.sort(), ["python.indexUrl", "python.venvPath"]);
});

test("a real host key line, with or without its comment and line break, is accepted", (t) => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
    for (const hostKey of [key, `${key} root@ws-alice`, `${key}\n`]) {
        const c = parseConfig({ ...minimal, target: { kind: "ssh", host: "ws-alice.lan", hostKey } });
        t.true(c.target.kind === "ssh" && c.target.hostKey === hostKey.trim());
    }
    t.is(hostKeyProblem(key), null);
});

test("Docker references with a registry, a port, a tag and a digest are accepted", (t) => {
    for (const image of ["vllm/vllm-openai:v0.11.0", "registry.lan:5000/team/vllm-openai:gpt-oss_1", `ghcr.io/org/img@sha256:${"a".repeat(64)}`, "ubuntu"]) {
        t.is(parseConfig({ ...minimal, dockerImage: image }).dockerImage, image);
    }
});

test("host names and addresses for ssh are accepted as ssh takes them", (t) => {
    for (const host of ["ws1", "ws-alice.lan", "10.0.0.5", "fd00::5"]) {
        const c = parseConfig({ ...minimal, target: { kind: "ssh", host } });
        t.true(c.target.kind === "ssh" && c.target.host === host);
    }
});

test("a URL that is refused is quoted without the credentials it carries", (t) => {
    const err = t.throws(() => parseConfig({ model: { revision: "0123456789abcdef0123456789abcdef01234567" }, python: { extraIndexUrls: ["https://ci-user:s3cret-pw@exa mple.com/simple"] } }));
    t.true(err!.message.includes(`python.extraIndexUrls.0: "https://***@exa mple.com/simple"`), err!.message);
    t.false(/s3cret-pw|ci-user/.test(err!.message));
});
