import test from "ava";
import { runScript, syntaxOk } from "../helpers/script";
import { tempDir } from "../helpers/tempDir";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../../components/config/schema";
import { serviceEnvPath } from "../../components/pieces/cudaEnv";
import { expectFile, managedHeader, q } from "../../components/host/shell";
import {
    apiKeyId,
    authMiddleware,
    authModulePath,
    configPath,
    endpointUrl,
    envPath,
    probeHost,
    renderConfigYaml,
    renderEnv,
    renderRunsOn,
    renderUnit,
    runsOnPath,
    secretsPath,
    servedModelName,
    serviceFlags,
    servicePiece,
    serviceScripts,
    ServingPlan,
    unitPath,
    vllmFlags,
} from "../../components/pieces/vllmService";
import { installPath } from "../../components/pieces/python";
import { plan12, revision, snapshot, tiktokenDir } from "../helpers/plans";
import { ensureServersVenv } from "../infra/servers/index";

const config = parseConfig({ model: { revision } });
const apiKey = "sk-local-0123456789abcdef-SECRET";


const plan24: ServingPlan = {
    gpuMemoryUtilization: 0.92,
    cpuOffloadGb: 0,
    maxModelLen: 32768,
    maxNumSeqs: 16,
    maxNumBatchedTokens: 8192,
    enforceEager: false,
    attentionBackend: "TRITON_ATTN",
    kvCacheDtype: "auto", requiresPinnedMemory: false,
};

const strict = (script: string, env: NodeJS.ProcessEnv = {}) => runScript(script, env);

const runsOn = { cuda: "c0ffee000001", packages: "c0ffee000002", model: "c0ffee000003" };

function scriptsFor(key: string | null, c = config, plan = plan12, on: Record<string, string> = runsOn) {
    return serviceScripts({ config: c, plan, installPath: installPath(c.python, null), snapshotPath: snapshot, tiktokenDir, apiKeyId: key === null ? null : apiKeyId(key), runsOn: on });
}

/** The lines of `script` from the first line that starts with `from` to the first after it that starts with `to`. */
function block(script: string, from: string, to: string): string {
    const lines = script.split("\n");
    const start = lines.findIndex((l) => l.startsWith(from));
    const end = lines.findIndex((l, i) => i >= start && l.startsWith(to));
    if (start < 0 || end < 0) throw new Error(`no block ${from}..${to}`);
    return lines.slice(start, end + 1).join("\n");
}

test("the served model name defaults to the repository's name and follows server.servedModelName", (t) => {
    t.is(servedModelName(config), "gpt-oss-20b");
    t.is(servedModelName(parseConfig({ model: { revision }, server: { servedModelName: "gpt-oss" } })), "gpt-oss");
});

test("a 12 GB-like plan emits cpu-offload-gb and a bare enforce-eager flag", (t) => {
    const flags = vllmFlags(config, plan12);
    t.is(flags["cpu-offload-gb"], 4);
    t.is(flags["enforce-eager"], true);
    t.is(flags["max-num-batched-tokens"], 1024);
    t.deepEqual(Object.keys(flags), [
        "served-model-name",
        "host",
        "port",
        "gpu-memory-utilization",
        "max-model-len",
        "max-num-seqs",
        "kv-cache-dtype",
        "max-num-batched-tokens",
        "cpu-offload-gb",
        "enforce-eager",
    ]);
});

test("a 24 GB-like plan emits neither cpu-offload-gb nor enforce-eager", (t) => {
    const flags = vllmFlags(config, plan24);
    t.false("cpu-offload-gb" in flags);
    t.false("enforce-eager" in flags);
    t.is(flags["gpu-memory-utilization"], 0.92);
    t.is(flags["max-model-len"], 32768);
});

test("the flags carry the configured listen address and port", (t) => {
    const c = parseConfig({ model: { revision }, server: { host: "0.0.0.0", port: 8001 }, apiKey });
    const flags = vllmFlags(c, plan24);
    t.is(flags.host, "0.0.0.0");
    t.is(flags.port, 8001);
});

test("the --config YAML for a 12 GB-like plan is exactly this text", (t) => {
    t.is(
        renderConfigYaml(vllmFlags(config, plan12)),
        "# Managed by vllm-workstation (Pulumi). Local edits show as drift and are undone by `pulumi up`.\n" +
            'served-model-name: "gpt-oss-20b"\n' +
            'host: "127.0.0.1"\n' +
            "port: 8000\n" +
            "gpu-memory-utilization: 0.9\n" +
            "max-model-len: 4096\n" +
            "max-num-seqs: 2\n" +
            'kv-cache-dtype: "auto"\n' +
            "max-num-batched-tokens: 1024\n" +
            "cpu-offload-gb: 4\n" +
            "enforce-eager: true\n",
    );
});

test("the --config YAML for a 24 GB-like plan is exactly this text", (t) => {
    t.is(
        renderConfigYaml(vllmFlags(config, plan24)),
        "# Managed by vllm-workstation (Pulumi). Local edits show as drift and are undone by `pulumi up`.\n" +
            'served-model-name: "gpt-oss-20b"\n' +
            'host: "127.0.0.1"\n' +
            "port: 8000\n" +
            "gpu-memory-utilization: 0.92\n" +
            "max-model-len: 32768\n" +
            "max-num-seqs: 16\n" +
            'kv-cache-dtype: "auto"\n' +
            "max-num-batched-tokens: 8192\n",
    );
});

// PyYAML, as vLLM reads --config with it: the servers' venv has it (huggingface_hub depends on it).
test("the --config YAML parses back to the same flags, even for an awkward served model name", async (t) => {
    // Past the schema, which refuses such a name: the YAML must hold whatever string it is given.
    const c = { ...config, server: { ...config.server, servedModelName: 'gpt-oss: "20b" # local' } };
    const flags = vllmFlags(c, plan12);
    const r = spawnSync((await ensureServersVenv()).python, ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))"], {
        input: renderConfigYaml(flags),
        encoding: "utf8",
    });
    t.is(r.status, 0, r.stderr);
    t.deepEqual(JSON.parse(r.stdout), flags);
});

test("the unit runs the venv's vllm on the snapshot with the --config file, as the service user", (t) => {
    const unit = renderUnit(config, snapshot);
    t.true(unit.startsWith(managedHeader()));
    const lines = unit.split("\n");
    t.true(lines.includes("User=vllm"));
    t.true(lines.includes("Group=vllm"));
    // The venv path links to the install in service: a switch of packages leaves the unit as it is.
    t.true(lines.includes(`ExecStart=/opt/vllm-workstation/venv/bin/vllm serve ${snapshot} --config /etc/vllm-workstation/vllm.yaml`));
    t.true(lines.includes("Restart=on-failure"));
    t.true(lines.includes("WantedBy=multi-user.target"));
});

test("the unit loads the CUDA env, the vLLM env and, optionally, the secrets file, in that order", (t) => {
    const envFiles = renderUnit(config, snapshot)
        .split("\n")
        .filter((l) => l.startsWith("EnvironmentFile="));
    t.deepEqual(envFiles, [`EnvironmentFile=${serviceEnvPath}`, `EnvironmentFile=${envPath}`, `EnvironmentFile=-${secretsPath}`]);
    t.is(serviceEnvPath, "/etc/vllm-workstation/cuda.env");
    t.is(secretsPath, "/etc/vllm-workstation/secrets.env");
});

test("the unit is locked down except where the GPU needs it", (t) => {
    const lines = renderUnit(config, snapshot).split("\n");
    for (const l of ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=", "UMask=0077"]) {
        t.true(lines.includes(l), l);
    }
    t.false(lines.some((l) => l.startsWith("PrivateDevices=")), "PrivateDevices would hide /dev/dxg and /dev/nvidia*");
    t.false(lines.some((l) => l.startsWith("MemoryDenyWriteExecute=")), "Triton and FlashInfer map JIT code executable");
    t.false(lines.some((l) => l.startsWith("SystemCallFilter=")));
});

test("the unit follows the configured user and venv", (t) => {
    const c = parseConfig({ model: { revision }, server: { user: "llm" }, python: { venvPath: "/srv/vllm/venv" } });
    const lines = renderUnit(c, snapshot).split("\n");
    t.true(lines.includes("User=llm"));
    t.true(lines.some((l) => l.startsWith("ExecStart=/srv/vllm/venv/bin/vllm serve ")));
});

test("the unit never contains an API key, even when the config holds one", (t) => {
    const c = parseConfig({ model: { revision }, server: { host: "0.0.0.0" }, apiKey });
    const unit = renderUnit(c, snapshot);
    t.false(unit.includes(apiKey));
    t.false(unit.includes("VLLM_API_KEY"));
    t.false(/--api-key/.test(unit));
});

test("the vLLM env keeps the service offline, points at the local encodings and sets the attention backend when planned", (t) => {
    const env = renderEnv(config, plan12, tiktokenDir);
    t.true(env.startsWith(managedHeader()));
    const lines = env.trimEnd().split("\n").slice(1);
    t.true(lines.includes("HF_HUB_OFFLINE=1"));
    t.true(lines.includes("HF_HUB_CACHE=/var/lib/vllm-workstation/hf"));
    t.true(lines.includes(`TIKTOKEN_ENCODINGS_BASE=${tiktokenDir}`));
    t.true(lines.includes("VLLM_ATTENTION_BACKEND=TRITON_ATTN"));
    t.true(lines.includes("VLLM_NO_USAGE_STATS=1"));
    t.true(lines.includes("HOME=/var/cache/vllm-workstation"));
    for (const l of lines) t.regex(l, /^[A-Z_]+=[^\s$`"']+$/, "plain KEY=value lines");
});

test("the vLLM env leaves VLLM_ATTENTION_BACKEND out where vLLM takes the flag", (t) => {
    const c = parseConfig({ model: { revision }, python: { vllmVersion: "0.24.0" } });
    t.false(renderEnv(c, plan24, tiktokenDir).includes("VLLM_ATTENTION_BACKEND"));
    t.is(vllmFlags(c, plan24)["attention-backend"], "TRITON_ATTN");
});

test("the service scripts are valid bash, with and without a key", (t) => {
    for (const key of [null, apiKey]) {
        const s = scriptsFor(key);
        t.is(syntaxOk(s.apply), "ok");
        t.is(syntaxOk(s.probe), "ok");
        t.is(syntaxOk(s.remove), "ok");
    }
});

test("the apply script takes the key from $VLLM_WS_API_KEY and never contains the key itself", (t) => {
    const s = scriptsFor(apiKey);
    for (const text of [s.apply, s.probe, s.expected, s.remove]) t.false(text.includes(apiKey));
    t.true(s.apply.includes('"$VLLM_WS_API_KEY"'));
    t.true(s.apply.split("\n").includes(`# api-key: ${apiKeyId(apiKey)}`));
    t.true(scriptsFor(null).apply.split("\n").includes("# api-key: none"));
});

test("a rotated key changes the apply script, so the service is converged again", (t) => {
    t.not(scriptsFor(apiKey).apply, scriptsFor(`${apiKey}-rotated`).apply);
    t.is(scriptsFor(apiKey).apply, scriptsFor(apiKey).apply);
});

test("expected has secrets=none without a key and secrets=600 root with one", (t) => {
    const without = scriptsFor(null).expected.split("\n");
    const withKey = scriptsFor(apiKey).expected.split("\n");
    t.true(without.includes("secrets=none"));
    t.true(withKey.includes("secrets=600 root"));
    t.false(withKey.includes("secrets=none"));
});

test("expected lists the three file hashes, the secrets, an active, enabled service, and the venv path linked to its install", (t) => {
    const s = scriptsFor(null, config, plan12);
    t.is(
        s.expected,
        [
            expectFile("unit", renderUnit(config, snapshot)),
            expectFile("config", renderConfigYaml(vllmFlags(config, plan12))),
            expectFile("env", renderEnv(config, plan12, tiktokenDir)),
            "secrets=none",
            "active=active",
            "enabled=enabled",
            "user=present",
            "group=present",
            expectFile("auth-module", fs.readFileSync(path.join(__dirname, "..", "..", "..", "components", "pieces", "assets", "vllm_workstation_auth.py"), "utf8")),
            `link=${installPath(config.python, null)}`,
        ].join("\n"),
    );
    t.is(s.probe.split("\n").length, 10, "one probe line per expected line");
});

test("the apply script writes the unit, the config and the env file to their fixed paths", (t) => {
    const lines = scriptsFor(null).apply.split("\n");
    for (const [name, p] of [["unit_path", unitPath], ["config_path", configPath], ["env_path", envPath]]) {
        t.true(lines.includes(`${name}='${p}'`), p);
        t.true(lines.some((l) => l.startsWith(`put_file "$${name}" `)), name);
    }
    t.is(unitPath, "/etc/systemd/system/vllm-workstation.service");
});

test("the secrets step writes VLLM_API_KEY=<key> root-only, and removes the file when there is no key", (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-svc-test-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const stepText = block(scriptsFor(apiKey).apply, 'if [ -n "${VLLM_WS_API_KEY:-}" ]; then', 'elif [ -e "$secrets_path" ]');
    t.false(stepText.includes("/etc/"));
    // With the switch's functions and the stat the step reads the file's mode from.
    // In a directory whose default ACL gives nobody everything: the key's file is root-only all the same.
    const acl = spawnSync("python3", ["-c", aclScript, dir], { encoding: "utf8" });
    t.is(acl.status, 0, acl.stderr);
    const step = `secrets_path=${q(path.join(dir, "secrets.env"))}\n${switchLib("")}\nstat_files "$secrets_path"\n${stepText}`;
    const key = "k3y with spaces, 'quotes', $dollar and %s";
    const written = strict(step, { VLLM_WS_API_KEY: key });
    t.is(written.code, 0, written.stderr);
    t.is(fs.readFileSync(path.join(dir, "secrets.env"), "utf8"), `VLLM_API_KEY=${key}\n`);
    t.is(fs.statSync(path.join(dir, "secrets.env")).mode & 0o777, 0o600);
    t.deepEqual(fs.readdirSync(dir), ["secrets.env"], "no .part file is left");
    const asNobody = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "cat", path.join(dir, "secrets.env")], { encoding: "utf8" });
    t.not(asNobody.status, 0, "the ACL's named user cannot read the key");
    const inode = fs.statSync(path.join(dir, "secrets.env")).ino;
    t.is(strict(step, { VLLM_WS_API_KEY: key }).code, 0);
    t.is(fs.statSync(path.join(dir, "secrets.env")).ino, inode, "the same key in a root-only file is not written again");
    fs.chmodSync(path.join(dir, "secrets.env"), 0o644);
    t.is(strict(step, { VLLM_WS_API_KEY: key }).code, 0);
    t.is(fs.statSync(path.join(dir, "secrets.env")).mode & 0o777, 0o600, "a file others may read is written anew, root-only");
    t.is(strict(step, { VLLM_WS_API_KEY: "another key" }).code, 0);
    t.is(fs.readFileSync(path.join(dir, "secrets.env"), "utf8"), "VLLM_API_KEY=another key\n");
    const removed = strict(step, { VLLM_WS_API_KEY: "" });
    t.is(removed.code, 0, removed.stderr);
    t.deepEqual(fs.readdirSync(dir), []);
});

/** The switch's functions with the settings they read, and fakes (shell functions) before them. */
function switchLib(fakes: string, c = config): string {
    const apply = scriptsFor(null, c).apply.split("\n");
    const settings = apply.filter((l) => /^(base|served_name|health_timeout|unit_name)=/.test(l));
    return [fakes, ...settings, fs.readFileSync(path.join(__dirname, "..", "..", "..", "components", "pieces", "assets", "service_switch.sh"), "utf8")].join("\n");
}

test("the /v1/models check sends the key as one Authorization header from stdin, never on curl's command line, and no header without a key", (t) => {
    // The fake curl prints its arguments, then the config it reads from stdin with -K -.
    const fakeCurl = `curl() { printf '<%s>' "$@"; case " $* " in *" -K - "*) cat ;; esac; }`;
    const get = `models=$(authed_get "$base/v1/models")\nprintf '%s' "$models"`;
    const withKey = strict(`${switchLib(fakeCurl)}\n${get}`, { VLLM_WS_API_KEY: "key.with+token/chars=" });
    t.is(withKey.code, 0, withKey.stderr);
    t.is(withKey.stdout, `<-fsS><--max-time><10><-K><-><http://127.0.0.1:8000/v1/models>header = "Authorization: Bearer key.with+token/chars="`);
    const without = strict(`unset VLLM_WS_API_KEY\n${switchLib(fakeCurl)}\n${get}`);
    t.is(without.code, 0, without.stderr);
    t.is(without.stdout, "<-fsS><--max-time><10><http://127.0.0.1:8000/v1/models>");
    // Once a printf piped into a curl that never read stdin: when curl exited first, SIGPIPE and
    // pipefail failed the check now and then. Many rounds against a curl that exits at once.
    const rounds = strict(`unset VLLM_WS_API_KEY\n${switchLib("curl() { return 0; }")}\nfor i in $(seq 300); do authed_get "$base/v1/models"; done`);
    t.is(rounds.code, 0, rounds.stderr);
});

// curl answers /health, and /v1/models with $MODELS; systemd reports an active unit that never restarted.
const healthyFakes = `curl() { case "$*" in *"/v1/models"*) printf '%s' "$MODELS" ;; *) return 0 ;; esac; }
systemctl() { case "$*" in *"-p ActiveState"*) printf 'ActiveState=active\\nSubState=running\\nNRestarts=0\\n' ;; *NRestarts*) echo 0 ;; *) return 0 ;; esac; }`;

test("the health check passes when /v1/models lists the served model and fails naming it otherwise", (t) => {
    const check = `${switchLib(healthyFakes)}\nif wait_healthy; then echo fine; else echo "$why"; fi`;
    const ok = strict(check, { MODELS: '{"object":"list","data":[{"id":"gpt-oss-20b","object":"model"}]}' });
    t.is(ok.code, 0, ok.stderr);
    t.is(ok.stdout, "fine\n");
    const bad = strict(check, { MODELS: '{"data":[{"id":"gpt-oss-20b-other"}]}' });
    t.is(bad.stdout, 'GET /v1/models does not list gpt-oss-20b: {"data":[{"id":"gpt-oss-20b-other"}]}\n');
});

test("the /v1/models failure message shows a served model name with $ and quotes verbatim", (t) => {
    const name = 'my "$HOME" model';
    // Past the schema, which refuses such a name: the script must quote whatever it is given.
    const c = { ...config, server: { ...config.server, servedModelName: name } };
    const r = strict(`${switchLib(healthyFakes, c)}\nwait_healthy || echo "$why"`, { HOME: "/home/somebody", MODELS: '{"data":[]}' });
    t.is(r.stdout, `GET /v1/models does not list ${name}: {"data":[]}\n`);
});

test("the health check stops waiting as soon as the service exited and systemd waits to restart it", (t) => {
    const fakes = `curl() { return 7; }\nsystemctl() { case "$*" in *"-p ActiveState"*) printf 'NRestarts=0\\nActiveState=activating\\nSubState=auto-restart\\n' ;; *NRestarts*) echo 0 ;; *) return 1 ;; esac; }`;
    const started = Date.now();
    const r = strict(`${switchLib(fakes)}\nwait_healthy || echo "$why"`);
    t.is(r.stdout, "vllm-workstation.service exited before it served\n");
    t.true(Date.now() - started < 5000, "not the whole timeout");
});

test("the health check waits while the service starts, and fails once systemd counted a restart", (t) => {
    // Starting: no answer yet, systemd reports it activating with no restart; then it answers.
    const starting = `n=0\ncurl() { n=$((n + 1)); case "$*" in *"/v1/models"*) printf '%s' '{"data":[{"id":"gpt-oss-20b"}]}' ;; *) [ "$n" -gt 2 ] ;; esac; }
systemctl() { case "$*" in *"-p ActiveState"*) printf 'NRestarts=3\\nActiveState=activating\\nSubState=start\\n' ;; *NRestarts*) echo 3 ;; *) return 0 ;; esac; }`;
    const ok = strict(`${switchLib(starting)}\nif wait_healthy; then echo fine; else echo "$why"; fi`);
    t.is(ok.stdout, "fine\n", ok.stderr);
    // systemd counts 3 restarts at the first look (an earlier life of the unit), then 4. Its answers run
    // in a subshell ($(...)), so the fake counts its calls in a file.
    const calls = path.join(tempDir(t, "restarts"), "calls");
    const restarted = `curl() { return 7; }
systemctl() { echo x >>${q(calls)}; case "$*" in *"-p ActiveState"*) if [ "$(wc -l <${q(calls)})" -gt 1 ]; then n=4; else n=3; fi; printf 'NRestarts=%s\\nActiveState=active\\nSubState=running\\n' "$n" ;; *) return 0 ;; esac; }`;
    const started = Date.now();
    const bad = strict(`${switchLib(restarted)}\nwait_healthy || echo "$why"`);
    t.is(bad.stdout, "vllm-workstation.service exited before it served (restarted by systemd)\n");
    t.true(Date.now() - started < 5000, "not the whole timeout");
});

test("the health check waits on the loopback address of a wildcard listener and honours the timeout", (t) => {
    const c = parseConfig({ model: { revision }, server: { host: "0.0.0.0", port: 8001, healthTimeoutSeconds: 120 }, apiKey });
    const apply = scriptsFor(apiKey, c).apply;
    t.true(apply.split("\n").includes("base='http://127.0.0.1:8001'"));
    t.true(apply.split("\n").includes("health_timeout=120"));
    t.true(apply.includes('until curl -fs -o /dev/null --max-time 5 "$base/health"; do'));
    t.true(apply.includes("local deadline=$((SECONDS + health_timeout))"));
});

test("remove disables the service, deletes its files, cache and user", (t) => {
    const lines = scriptsFor(apiKey).remove.split("\n");
    t.true(lines.includes(`unit_path='${unitPath}'`));
    const disable = lines.indexOf('systemctl disable --now "$unit_name" 2>/dev/null || true');
    t.true(disable >= 0 && disable < lines.indexOf('own_remove_file "$unit_path"'));
    t.true(lines.some((l) => l.startsWith(`rm -f '${configPath}' '${envPath}' '${secretsPath}'`)));
    t.true(lines.includes('own_remove_tree "$cache_home"'), "the service's caches go only if the stack made them");
    t.true(lines.includes('own_remove_user "$user" "$etc_dir"'), "the user goes only if the stack made it");
    t.true(lines.includes('rm -rf "$etc_dir/previous" "$etc_dir/previous.next" "$etc_dir/previous.gone" "$etc_dir/switch.pending"'), "and the set kept to go back to, and a switch's mark");
    t.false(lines.some((l) => /rm -rf '\/etc/.test(l)));
});

test("apiKeyId is 12 hex characters, stable for a key and different for different keys", (t) => {
    const id = apiKeyId(apiKey);
    t.regex(id, /^[0-9a-f]{12}$/);
    t.is(apiKeyId(apiKey), id);
    t.not(apiKeyId(`${apiKey}x`), id);
    t.false(apiKey.includes(id));
});

test("probeHost maps wildcard listeners to loopback and brackets IPv6", (t) => {
    t.is(probeHost("0.0.0.0"), "127.0.0.1");
    t.is(probeHost("::"), "[::1]");
    t.is(probeHost("::1"), "[::1]");
    t.is(probeHost("fe80::1"), "[fe80::1]");
    t.is(probeHost("127.0.0.1"), "127.0.0.1");
    t.is(probeHost("192.168.1.20"), "192.168.1.20");
    t.is(probeHost("localhost"), "localhost");
});

test("endpointUrl is the OpenAI base URL the clients use", (t) => {
    t.is(endpointUrl(config), "http://127.0.0.1:8000/v1");
    t.is(endpointUrl(parseConfig({ model: { revision }, server: { host: "::", port: 8001 }, apiKey })), "http://[::1]:8001/v1");
    t.is(endpointUrl(parseConfig({ model: { revision }, server: { host: "0.0.0.0" }, apiKey })), "http://127.0.0.1:8000/v1");
});

test("the probe reports the service user and its group, present or missing, so a user deleted by hand is drift", (t) => {
    const probe = (user: string) => {
        // The schema refuses root as the service user; the probe is checked on an account every machine has.
        const c = { ...config, server: { ...config.server, user } };
        const lines = servicePiece(c).probe.split("\n").filter((l) => l.includes("getent"));
        const r = strict(lines.join("\n"));
        t.is(r.code, 0, r.stderr);
        return r.stdout;
    };
    t.is(probe("root"), "user=present\ngroup=present\n");
    t.is(probe("vllm-ws-no-such-user"), "user=missing\ngroup=missing\n");
    t.is(scriptsFor(null).probe, servicePiece(config).probe, "the program's early look runs the same probe");
});

test("a service user made again by up (it was deleted by hand) restarts the service", (t) => {
    const apply = scriptsFor(null).apply.split("\n");
    t.true(apply.includes("user='vllm'"));
    const saved = apply.findIndex((l) => l === 'uid_before=$(id -u "$user" 2>/dev/null || echo none)');
    const made = apply.findIndex((l) => l.trimStart().startsWith('own_user "$user"'));
    t.true(saved >= 0 && saved < made, "the uid is read before the user is made");
    t.true(apply.some((l) => l.startsWith('if [ "$before" != "$after" ] || [ "$interrupted" = yes ] || [ "$uid_before" != "$(id -u "$user")" ] ||')));
});

test("what the service runs on is stamped on the box, and a changed id changes the stamp and so restarts the service", (t) => {
    t.is(renderRunsOn({ packages: "b", cuda: "a" }), `${managedHeader()}cuda=a\npackages=b\n`);
    const a = scriptsFor(null).apply;
    t.true(a.split("\n").includes(`runs_on_path='${runsOnPath}'`));
    t.true(a.includes('put_file "$runs_on_path" "$runs_on_text" 0644'));
    t.true(a.includes(renderRunsOn(runsOn).trimEnd()));
    for (const piece of Object.keys(runsOn)) {
        const changed = scriptsFor(null, config, plan12, { ...runsOn, [piece]: "0123456789ab" }).apply;
        t.not(changed, a, piece);
    }
    // The stamp and the middleware are among the files whose change restarts the service.
    const served = a.split("\n").find((l) => l.startsWith("served_files() {"))!;
    for (const f of ["unit_path", "config_path", "env_path", "secrets_path", "runs_on_path", "auth_path"]) t.true(served.includes(`"$${f}"`), f);
    t.true(a.indexOf('served_state before "$link_before"') < a.indexOf('put_file "$runs_on_path"'), "the stamp is written after the before state");
    t.true(a.indexOf('put_file "$unit_path"') < a.indexOf('served_state after "$install"'));
});

test("with an API key the --config YAML loads the middleware that requires it on every route; without one it does not", (t) => {
    const withKey = serviceFlags(config, plan12, true);
    t.is(withKey.middleware, "vllm_workstation_auth.RequireApiKey");
    t.is(authMiddleware, "vllm_workstation_auth.RequireApiKey");
    t.false("middleware" in serviceFlags(config, plan12, false));
    t.deepEqual({ ...withKey, middleware: undefined }, { ...vllmFlags(config, plan12), middleware: undefined });
    t.true(scriptsFor(apiKey).apply.split("\n").includes('middleware: "vllm_workstation_auth.RequireApiKey"'));
    t.false(scriptsFor(null).apply.split("\n").includes('middleware: "vllm_workstation_auth.RequireApiKey"'));
});

test("the middleware module is written root-owned where the service's PYTHONPATH points, and remove takes it away", (t) => {
    t.is(authModulePath, "/etc/vllm-workstation/python/vllm_workstation_auth.py");
    t.true(renderEnv(config, plan12, tiktokenDir).split("\n").includes("PYTHONPATH=/etc/vllm-workstation/python"));
    const s = scriptsFor(apiKey);
    t.true(s.apply.split("\n").includes(`auth_path='${authModulePath}'`));
    t.true(s.apply.includes('put_file "$auth_path" "$auth_text" 0644'));
    t.true(s.apply.includes("class RequireApiKey:"));
    t.true(s.remove.includes(` '${authModulePath}' '${runsOnPath}'`));
    t.true(s.remove.split("\n").includes("python_dir='/etc/vllm-workstation/python'"));
    t.true(s.remove.includes('own_release_dir "$python_dir"'));
});

test("put_file writes a root-owned file with the mode asked in one rename, whatever the umask, a set-group-ID directory or its default ACL say, and leaves a file that holds the text", (t) => {
    const dir = tempDir(t, "put-file");
    fs.chownSync(dir, 0, 65534);
    fs.chmodSync(dir, 0o2755);
    // A default ACL that gives a named user (nobody) everything: new files would take its bits, not the umask's.
    const acl = spawnSync("python3", ["-c", aclScript, dir], { encoding: "utf8" });
    t.is(acl.status, 0, acl.stderr);
    const a = path.join(dir, "a");
    const r = strict(`${switchLib("")}\numask 0\nput_file ${q(a)} 'text' 0644\nput_file ${q(`${dir}/b`)} 'b' 0600`);
    t.is(r.code, 0, r.stderr);
    for (const [f, mode] of [[a, 0o644], [`${dir}/b`, 0o600]] as const) {
        const st = fs.statSync(f);
        t.is(st.mode & 0o7777, mode, f);
        t.deepEqual([st.uid, st.gid], [0, 0], f);
    }
    // As nobody, the named user of the ACL: it may not write either file, nor read the root-only one.
    for (const [f, op] of [[a, "w"], [`${dir}/b`, "r"]] as const) {
        const as = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", `open(${JSON.stringify(f)}, ${JSON.stringify(op)})`], { encoding: "utf8" });
        t.not(as.status, 0, `${f} (${op}) is closed to the ACL's named user`);
    }
    t.is(fs.readFileSync(a, "utf8"), "text");
    t.deepEqual(fs.readdirSync(dir).sort(), ["a", "b"], "no temporary file is left");
    const inode = fs.statSync(a).ino;
    t.is(strict(`${switchLib("")}\nstat_files ${q(a)}\nput_file ${q(a)} 'text' 0644`).code, 0);
    t.is(fs.statSync(a).ino, inode, "a file that holds the text with its mode and owner is left as it is");
    t.is(strict(`${switchLib("")}\nstat_files ${q(a)}\nput_file ${q(a)} 'other' 0644`).code, 0);
    t.is(fs.readFileSync(a, "utf8"), "other");
});

/** Sets a default ACL on the directory argv[1] (user::rwx, user:65534:rwx, group::r-x, mask::rwx, other::r-x) through its xattr. */
const aclScript = `import os, struct, sys
entries = [(0x01, 7, 0xFFFFFFFF), (0x02, 7, 65534), (0x04, 5, 0xFFFFFFFF), (0x10, 7, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)]
os.setxattr(sys.argv[1], "system.posix_acl_default", struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))`;

test("a switch saves and puts back every served file but the API key: a rollback never brings back a rotated key", (t) => {
    const dir = tempDir(t, "switch");
    const files = ["unit", "config", "cuda-env", "env", "secrets", "auth", "runs-on", "serves"];
    const settings = files.map((f) => `${f.replace("-", "_")}_path=${q(`${dir}/live/${f}`)}`).join("\n");
    const script = `${settings}\nserved_cuda_path=${q(`${dir}/served-cuda-env`)}\nvenv=${q(`${dir}/venv`)}\nown_link() { :; }\n${switchLib("")}
mkdir -p ${q(`${dir}/live`)}
for f in ${files.join(" ")}; do echo "old $f" >${q(`${dir}/live`)}/$f; done
save_served ${q(`${dir}/previous`)}
for f in ${files.join(" ")}; do echo "new $f" >${q(`${dir}/live`)}/$f; done
restore_served ${q(`${dir}/previous`)}`;
    const r = strict(script);
    t.is(r.code, 0, r.stderr);
    t.false(fs.readdirSync(path.join(dir, "previous")).some((f) => f.startsWith("secrets")), "no copy of the key is kept");
    t.is(fs.readFileSync(path.join(dir, "live", "secrets"), "utf8"), "new secrets\n", "the key in force stays");
    t.is(fs.readFileSync(path.join(dir, "live", "config"), "utf8"), "old config\n", "the rest goes back");
});

test("a switch saves the install its serves file names, not where the venv link has moved; without a serves file, the link's target", (t) => {
    const dir = tempDir(t, "switch");
    const files = ["unit", "config", "cuda-env", "env", "secrets", "auth", "runs-on", "serves"];
    const settings = files.map((f) => `${f.replace("-", "_")}_path=${q(`${dir}/live/${f}`)}`).join("\n");
    const script = `${settings}\nserved_cuda_path=${q(`${dir}/served-cuda-env`)}\nvenv=${q(`${dir}/venv`)}\n${switchLib("")}
mkdir -p ${q(`${dir}/live`)} ${q(`${dir}/served`)} ${q(`${dir}/moved`)}
ln -s ${q(`${dir}/moved`)} ${q(`${dir}/venv`)}
printf '# managed\\ninstall=%s\\nrevision=0123\\n' ${q(`${dir}/served`)} >${q(`${dir}/live/serves`)}
save_served ${q(`${dir}/with`)}
rm ${q(`${dir}/live/serves`)}
save_served ${q(`${dir}/without`)}`;
    const r = strict(script);
    t.is(r.code, 0, r.stderr);
    t.is(fs.readFileSync(path.join(dir, "with", "link"), "utf8"), `${dir}/served\n`);
    t.is(fs.readFileSync(path.join(dir, "without", "link"), "utf8"), `${dir}/moved\n`);
});

// --- the whole step, on this machine ---------------------------------------------------------------------
// service_apply.sh runs as on the box, with its paths moved into a temp dir and the TEST DOUBLES of
// tests/fixtures/service/doubles.sh for systemd and vLLM (this machine has neither to spare).

const doubles = fs.readFileSync(path.join(__dirname, "..", "..", "..", "tests", "fixtures", "service", "doubles.sh"), "utf8");
const optInstalls = "/opt/vllm-workstation/venv-tools/installs";

/** A rendered script of the service with its paths (and the paths in the texts it writes) under `dir`. */
function movedTo(dir: string, script: string): string {
    return script
        .replaceAll("/etc/systemd/system/", `${dir}/systemd/`)
        .replaceAll("/etc/vllm-workstation", `${dir}/etc`)
        .replaceAll("/opt/vllm-workstation/venv", `${dir}/venv`)
        .replaceAll("/var/lib/vllm-workstation/hf", `${dir}/hf`)
        .replaceAll("/var/cache/vllm-workstation", `${dir}/cache`);
}

interface Step {
    /** The install (a name in installs/) the set runs. */
    install: string;
    key?: string | null;
    server?: Record<string, unknown>;
    /** The CUDA environment the step before the service's wrote. */
    cuda?: string;
}

/** A box in `dir` on which the service's step runs: its installs a, b (and any named) exist, the venv link is claimed. */
function serviceBox(t: { teardown: (f: () => void) => void }, installs = ["a", "b"]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-step-test-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    for (const i of installs) fs.mkdirSync(path.join(dir, "venv-tools", "installs", i), { recursive: true });
    fs.mkdirSync(path.join(dir, "doubles"));
    const env = { VLLM_WS_RECORD: path.join(dir, "record"), DOUBLES: path.join(dir, "doubles") };
    // As the steps before the service's: the venv link claimed, the config directory made (the CUDA environment's).
    const claimed = runScript(`own_note made ${q(`${dir}/venv`)}\nown_dir ${q(`${dir}/etc`)}`, env);
    if (claimed.code !== 0) throw new Error(claimed.stderr);
    const run = (s: Step, extra = "") => {
        const c = parseConfig({ model: { revision }, server: { healthTimeoutSeconds: 5, ...(s.server ?? {}) }, ...(s.key ? { apiKey: s.key } : {}) });
        fs.writeFileSync(path.join(dir, "etc", "cuda.env"), s.cuda ?? "CUDA_HOME=/usr/local/cuda-12.8\n");
        const apply = serviceScripts({ config: c, plan: plan12, installPath: `${optInstalls}/${s.install}`, snapshotPath: snapshot, tiktokenDir, apiKeyId: s.key ? apiKeyId(s.key) : null, runsOn }).apply;
        return runScript(`${doubles}\n${extra}\n${movedTo(dir, apply)}`, { ...env, VLLM_WS_API_KEY: s.key ?? "" });
    };
    /** What the vLLM double started with, or {} when it does not run. */
    const running = (): Record<string, string> => {
        const f = path.join(dir, "doubles", "running");
        if (!fs.existsSync(f)) return {};
        const out: Record<string, string> = {};
        let last = "";
        for (const l of fs.readFileSync(f, "utf8").split("\n")) {
            const m = /^(base|name|key|install|cuda)=(.*)$/.exec(l);
            if (m) out[(last = m[1])] = m[2];
            else if (l) out[last] += `\n${l}`;
        }
        return out;
    };
    const read = (p: string) => fs.readFileSync(path.join(dir, p), "utf8");
    return { dir, run, running, read, env };
}

test("the whole step converges a first set with the doubles, and the service serves on it", (t) => {
    const box = serviceBox(t);
    const r = box.run({ install: "a", key: "sk-first-key-0123456789" });
    t.is(r.code, 0, r.stderr);
    t.like(box.running(), { base: "http://127.0.0.1:8000", name: '"gpt-oss-20b"', key: "sk-first-key-0123456789", install: `${box.dir}/venv-tools/installs/a` });
    t.regex(r.stderr, /serving gpt-oss-20b at http:\/\/127\.0\.0\.1:8000\/v1/);
});

const firstKey = "sk-first-key-0123456789";
const secondKey = "sk-second-key-9876543210";

test("a switch that rotates the key, moves the port and renames the model goes back, when the new set fails, to the set that served, on its own port and name, with the new key", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a", key: firstKey }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b", key: secondKey, server: { port: 8001, servedModelName: "gpt-oss" } });
    t.is(r.code, 75, r.stderr);
    t.regex(r.stderr, /rolled back: vllm-workstation\.service serves again on the previous packages \(.*\/installs\/a\)/);
    // The old set, seen with its own settings before anything was written: port 8000, its name, the first key.
    const calls = box.read("doubles/calls");
    t.true(calls.includes("GET http://127.0.0.1:8000/v1/models"), calls);
    t.like(box.running(), { base: "http://127.0.0.1:8000", name: '"gpt-oss-20b"', key: secondKey, install: `${box.dir}/venv-tools/installs/a` });
    t.is(box.read("etc/secrets.env"), `VLLM_API_KEY=${secondKey}\n`, "the rotated-away key is nowhere");
    t.true(box.read("etc/vllm.yaml").split("\n").includes('middleware: "vllm_workstation_auth.RequireApiKey"'));
    t.true(box.read("etc/vllm.yaml").split("\n").includes("port: 8000"));
});

test("a switch that removes the key goes back, when the new set fails, to the set that served, without the key's middleware", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a", key: firstKey }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b", key: null });
    t.is(r.code, 75, r.stderr);
    t.like(box.running(), { base: "http://127.0.0.1:8000", key: "", install: `${box.dir}/venv-tools/installs/a` });
    t.false(fs.existsSync(path.join(box.dir, "etc", "secrets.env")));
    t.false(box.read("etc/vllm.yaml").includes("middleware"), "the middleware refuses to start without a key");
});

test("a switch that adds a key goes back, when the new set fails, to the set that served, which then requires the key on every route", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a", key: null }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b", key: secondKey });
    t.is(r.code, 75, r.stderr);
    t.like(box.running(), { key: secondKey, install: `${box.dir}/venv-tools/installs/a` });
    t.true(box.read("etc/vllm.yaml").split("\n").includes('middleware: "vllm_workstation_auth.RequireApiKey"'));
});

test("a run cut off where nothing was saved leaves no way back: the next run does not go back to an older switch's set", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a" }).code, 0);
    t.is(box.run({ install: "b" }).code, 0, "previous/ holds a's set now");
    // The service crashed; an up with nothing to change starts it and is killed while it starts.
    fs.rmSync(path.join(box.dir, "doubles", "running"));
    const killed = box.run({ install: "b" }, `systemctl() { case "$1" in restart) kill -KILL $$ ;; is-active) return 1 ;; *) return 0 ;; esac; }`);
    t.is(killed.code, null, killed.stderr);
    t.false(fs.existsSync(path.join(box.dir, "etc", "switch.pending")), "nothing switched: no mark is left");
    // b does not come up this time: nothing switched, so nothing is gone back to.
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b" });
    t.is(r.code, 1, r.stderr);
    t.notRegex(r.stderr, /rolled back/);
    t.is(fs.readlinkSync(path.join(box.dir, "venv")), `${box.dir}/venv-tools/installs/b`);
    t.false(fs.existsSync(path.join(box.dir, "etc", "switch.pending")));
});

test("a run that changed nothing, cut off while it dropped its save, leaves the next switch its way back", (t) => {
    const box = serviceBox(t, ["a", "b", "c"]);
    t.is(box.run({ install: "a" }).code, 0);
    t.is(box.run({ install: "c" }).code, 0);
    // The same set again (the step ran for something else): killed in the middle of deleting its save,
    // with the save's link file gone already.
    const killed = box.run({ install: "c" }, `rm() { case "$*" in *previous.*) command rm -f "\${@: -1}/link"; kill -KILL $$ ;; esac; command rm "$@"; }`);
    t.is(killed.code, null, killed.stderr);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b" });
    t.is(r.code, 75, r.stderr);
    t.like(box.running(), { install: `${box.dir}/venv-tools/installs/c` });
    t.is(fs.readlinkSync(path.join(box.dir, "venv")), `${box.dir}/venv-tools/installs/c`);
    t.is(box.run({ install: "c" }).code, 0);
    t.deepEqual(fs.readdirSync(path.join(box.dir, "etc")).filter((f) => f.startsWith("previous.")), [], "the part of a save is gone");
});

test("a rollback that cannot put a file back fails saying so, never that it rolled back", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a" }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b", server: { port: 8001 } }, `cp() { case "$*" in *vllm.yaml.vllm-ws-back*) return 1 ;; esac; command cp "$@"; }`);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /could not put back .*vllm\.yaml from .*previous: the service is left on the new set/);
    t.notRegex(r.stderr, /rolled back:/);
});

test("a switch that changes the CUDA environment and the packages puts the CUDA environment the service served on back when the new set fails", (t) => {
    const box = serviceBox(t);
    const old = "CUDA_HOME=/usr/local/cuda-12.8\n";
    t.is(box.run({ install: "a", cuda: old }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b", cuda: "CUDA_HOME=/usr/local/cuda-13.0\n" });
    t.is(r.code, 75, r.stderr);
    t.is(box.read("etc/cuda.env"), old);
    t.like(box.running(), { cuda: old.trimEnd(), install: `${box.dir}/venv-tools/installs/a` });
});

test("a run cut off after it wrote the whole new set, before it kept what it saved, leaves the way back to the set that served", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a" }).code, 0);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    // Killed right after the venv link moved, the last thing it writes: nothing differs for the next run.
    const killed = box.run({ install: "b" }, `eval "own_link_done_$(declare -f own_link)"\nown_link() { own_link_done_own_link "$@"; kill -KILL $$; }`);
    t.is(killed.code, null, killed.stderr);
    t.true(fs.existsSync(path.join(box.dir, "etc", "previous.next")));
    const r = box.run({ install: "b" });
    t.is(r.code, 75, r.stderr);
    t.like(box.running(), { install: `${box.dir}/venv-tools/installs/a` });
});

test("a run cut off while it keeps what it saved, or right after the restart, leaves the way back to the set that served", (t) => {
    for (const [where, inject] of [
        ["right after the restart", `eval "restart_done_$(declare -f systemctl)"\nsystemctl() { restart_done_systemctl "$@"; if [ "$1" = restart ]; then kill -KILL $$; fi; }`],
        ["with the mark written and the older set removed", `mv() { case "$*" in *previous.next*) kill -KILL $$ ;; esac; command mv "$@"; }`],
        ["right after the saved set moved", `mv() { command mv "$@"; case "$*" in *previous.next*) kill -KILL $$ ;; esac; }`],
    ] as const) {
        const box = serviceBox(t, ["a", "b", "c"]);
        t.is(box.run({ install: "a" }).code, 0, where);
        // An older switch's set (a) is on disk: the cut-off run must not leave it as the way back.
        t.is(box.run({ install: "c" }).code, 0, where);
        fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
        const killed = box.run({ install: "b" }, inject);
        t.is(killed.code, null, `${where}: ${killed.stderr}`);
        const r = box.run({ install: "b" });
        t.is(r.code, 75, `${where}: ${r.stderr}`);
        t.like(box.running(), { install: `${box.dir}/venv-tools/installs/c` }, where);
    }
});

test("the first switch of a box an earlier release converged notes the revision it served before the health check, and names it when it rolls back", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a" }).code, 0);
    // An earlier release wrote no serves file, and the record did not hold the revision it served.
    fs.rmSync(path.join(box.dir, "etc", "service.serves"));
    const entry = runScript(`rm -f "$VLLM_WS_RECORD/$(own_key ${q(`hf-revision ${box.dir}/hf openai/gpt-oss-20b ${revision}`)})"`, box.env);
    t.is(entry.code, 0, entry.stderr);
    fs.writeFileSync(path.join(box.dir, "venv-tools", "installs", "b", "broken"), "");
    const r = box.run({ install: "b" });
    t.is(r.code, 75, r.stderr);
    t.regex(r.stderr, new RegExp(`model revision \\(${revision}\\)`));
    const recorded = runScript(`own_hf_revisions ${q(`${box.dir}/hf`)} openai/gpt-oss-20b`, box.env);
    t.true(recorded.stdout.split("\n").includes(revision), recorded.stdout);
});

test("the step refuses a config directory someone else owns or may write into, before it writes anything there", (t) => {
    for (const [what, prepare] of [
        ["writable by others", (d: string) => fs.chmodSync(d, 0o777)],
        ["owned by nobody", (d: string) => fs.chownSync(d, 65534, 65534)],
    ] as const) {
        const box = serviceBox(t);
        prepare(path.join(box.dir, "etc"));
        const r = box.run({ install: "a", key: firstKey });
        t.is(r.code, 1, what);
        t.regex(r.stderr, new RegExp(`refusing to use ${box.dir}/etc: root writes the API key`), what);
        t.deepEqual(fs.readdirSync(path.join(box.dir, "etc")), ["cuda.env"], what);
        t.false(fs.existsSync(path.join(box.dir, "doubles", "running")), what);
    }
});

test("the key is never written through a file or link someone left at the secrets file's temporary name", (t) => {
    const box = serviceBox(t);
    const loot = path.join(box.dir, "loot");
    fs.symlinkSync(loot, path.join(box.dir, "etc", "secrets.env.part"));
    const r = box.run({ install: "a", key: firstKey });
    t.is(r.code, 0, r.stderr);
    t.false(fs.existsSync(loot));
    t.is(box.read("etc/secrets.env"), `VLLM_API_KEY=${firstKey}\n`);
    t.false(fs.lstatSync(path.join(box.dir, "etc", "secrets.env")).isSymbolicLink());
});

test("remove takes away the temporary files a killed write leaves, the one with the key among them", (t) => {
    const box = serviceBox(t);
    t.is(box.run({ install: "a", key: firstKey }).code, 0);
    const left = ["etc/secrets.env.part", "etc/vllm.yaml.vllm-ws-new", "etc/cuda.env.vllm-ws-back", "etc/service.serves.vllm-ws-back", "systemd/vllm-workstation.service.vllm-ws-new"];
    for (const f of left) fs.writeFileSync(path.join(box.dir, f), "VLLM_API_KEY=leftover\n");
    fs.symlinkSync(`${box.dir}/venv-tools/installs/b`, path.join(box.dir, "venv.vllm-ws-switch"));
    const r = runScript(`${doubles}\n${movedTo(box.dir, scriptsFor(firstKey).remove)}`, box.env);
    t.is(r.code, 0, r.stderr);
    for (const f of [...left, "venv.vllm-ws-switch"]) t.false(fs.existsSync(path.join(box.dir, f)) || isLink(path.join(box.dir, f)), f);
    t.deepEqual(fs.readdirSync(path.join(box.dir, "etc")).sort(), ["cuda.env"], "the CUDA environment's step removes its own file");
});

function isLink(p: string): boolean {
    try {
        return fs.lstatSync(p).isSymbolicLink();
    } catch {
        return false;
    }
}
