import test from "ava";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { checkoutRoot, layered, rawFromPulumiConfig, SECRET_STAND_IN, stackFileLayer, withTeamLayer } from "../../components/config/stackFiles";
import { ConfigError, parseConfig } from "../../components/config/schema";
import { tempDir } from "../helpers/tempDir";

test("a stack file's scalars read as the strings the engine hands the program", (t) => {
    const { raw } = stackFileLayer("config:\n  vllm-workstation:runtime: systemd\n  vllm-workstation:port: 8000\n  vllm-workstation:flag: true\n", "vllm-workstation");
    t.deepEqual(raw, { runtime: "systemd", port: "8000", flag: "true" });
});

test("a stack file's maps, in YAML or JSON style, read as the engine's JSON text parsed back", (t) => {
    const text = ["config:", "  vllm-workstation:gpu:", "    tier: 24gb", "    maxModelLen: 32768", '  vllm-workstation:server: {"host":"127.0.0.1","port":8000}', ""].join("\n");
    t.deepEqual(stackFileLayer(text, "vllm-workstation").raw, { gpu: { tier: "24gb", maxModelLen: 32768 }, server: { host: "127.0.0.1", port: 8000 } });
});

test("with a stand-in, an encrypted value reads as it, top level or nested, and the stand-in passes as every secret option", (t) => {
    const text = ["config:", "  vllm-workstation:apiKey:", "    secure: v1:abc", "  vllm-workstation:hfToken:", "    secure: v1:def", "  vllm-workstation:model:", "    revision: 6cee5e81ee83917806bbde320786a8fb61efebee", "    token:", "      secure: v1:ghi", ""].join("\n");
    const { raw, secrets } = stackFileLayer(text, "vllm-workstation", SECRET_STAND_IN);
    t.is(raw.apiKey, SECRET_STAND_IN);
    t.is(raw.hfToken, SECRET_STAND_IN);
    t.deepEqual(raw.model, { revision: "6cee5e81ee83917806bbde320786a8fb61efebee", token: SECRET_STAND_IN });
    t.deepEqual(secrets, ["apiKey", "hfToken", "model.token"]);
    const parsed = parseConfig({ apiKey: raw.apiKey, hfToken: raw.hfToken, model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" }, server: { host: "0.0.0.0" } });
    t.is(parsed.apiKey, SECRET_STAND_IN, "it satisfies the API key's rules, so a guess does not fail where the real config would not");
});

test("a stack file with no config, or an empty one, reads as no config", (t) => {
    for (const text of ["", "config:\n", "# just a comment\n"]) t.deepEqual(stackFileLayer(text, "vllm-workstation"), { raw: {}, secrets: [] }, JSON.stringify(text));
});

test("secrets that look like JSON arrive as the strings they are", (t) => {
    const all = { "vllm-workstation:apiKey": '{"not":"json-to-parse"}', "vllm-workstation:hfToken": "[hf_abcdef0123456789" };
    const raw = rawFromPulumiConfig(all, "vllm-workstation");
    t.is(raw.apiKey, '{"not":"json-to-parse"}');
    t.is(raw.hfToken, "[hf_abcdef0123456789");
    t.is(parseConfig({ hfToken: raw.hfToken, model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" } }).hfToken, "[hf_abcdef0123456789");
});

test("a secret that looks like JSON and breaks the secret's rules is refused naming the option, never quoting it", (t) => {
    const raw = rawFromPulumiConfig({ "vllm-workstation:apiKey": "[sk-0123456789abcdef-SECRET" }, "vllm-workstation");
    const err = t.throws(() => parseConfig({ ...raw, model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" } }), { instanceOf: ConfigError });
    t.deepEqual(err!.problems.map((p) => p.split(":")[0]), ["apiKey"]);
    t.regex(err!.problems[0], /^apiKey: \(secret\) /);
    t.false(err!.message.includes("sk-0123456789abcdef"));
});

test("a structured option that is not valid JSON is left as text for the schema to refuse, naming it", (t) => {
    const raw = rawFromPulumiConfig({ "vllm-workstation:server": "{port: 8001" }, "vllm-workstation");
    t.is(raw.server, "{port: 8001");
    const err = t.throws(() => parseConfig({ ...raw, model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" } }), { instanceOf: ConfigError });
    t.regex(err!.problems[0], /^server: "\{port: 8001" /);
});

test("this machine's config lies over the team's key by key: maps merge, anything else replaces", (t) => {
    const team = { target: { kind: "ssh", host: "127.0.0.1", user: "dev" }, gpu: { tier: "24gb" }, model: { exclude: ["a/*", "b/*"] } };
    const machine = { target: { kind: "ssh", host: "10.0.0.9", port: 2222 }, model: { exclude: ["c/*"] }, apiKey: "k" };
    t.deepEqual(layered(team, machine), {
        target: { kind: "ssh", host: "10.0.0.9", user: "dev", port: 2222 },
        gpu: { tier: "24gb" },
        model: { exclude: ["c/*"] },
        apiKey: "k",
    });
    t.deepEqual(team.target, { kind: "ssh", host: "127.0.0.1", user: "dev" }, "the team's layer is not changed");
});

test("a layer over the same layer is that layer, so a project whose engine reads the tracked file itself sees no difference", (t) => {
    const text = fs.readFileSync(path.join(checkoutRoot, "Pulumi.workstation-24gb.yaml"), "utf8");
    const machine = stackFileLayer(text, "vllm-workstation").raw;
    t.deepEqual(withTeamLayer(machine, "vllm-workstation", "workstation-24gb"), machine);
});

test("the team's layer is the tracked Pulumi.<stack>.yaml of the checkout, read as the engine would hand it over", (t) => {
    const raw = withTeamLayer({ target: { kind: "ssh", host: "box.lan", user: "me", port: 2201 } }, "vllm-workstation", "dev");
    const tracked = yaml.load(fs.readFileSync(path.join(checkoutRoot, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
    t.deepEqual(raw.python, tracked.config["vllm-workstation:python"]);
    t.deepEqual(raw.server, tracked.config["vllm-workstation:server"]);
    t.deepEqual(raw.target, { kind: "ssh", host: "box.lan", user: "me", port: 2201 });
});

test("a stack with no tracked file is this machine's config alone", (t) => {
    const root = tempDir(t, "layers");
    t.deepEqual(withTeamLayer({ runtime: "docker" }, "vllm-workstation", "mine", root), { runtime: "docker" });
});

test("an encrypted value in the team's file is left out of its layer and named", (t) => {
    const text = ["config:", "  vllm-workstation:apiKey:", "    secure: v1:abc", "  vllm-workstation:model:", "    revision: r", "    token:", "      secure: v1:def", "  other:x: 1", ""].join("\n");
    const { raw, secrets } = stackFileLayer(text, "vllm-workstation");
    t.deepEqual(raw, { model: { revision: "r" } });
    t.deepEqual(secrets, ["apiKey", "model.token"]);
});

test("a secret in the tracked file that this machine does not set is refused, naming the option and not the value", (t) => {
    const root = tempDir(t, "layers");
    fs.writeFileSync(path.join(root, "Pulumi.team.yaml"), "config:\n  vllm-workstation:apiKey:\n    secure: v1:c2VjcmV0LWNpcGhlcg==\n");
    const e = t.throws(() => withTeamLayer({}, "vllm-workstation", "team", root));
    t.regex(e!.message, /^apiKey: the tracked Pulumi\.team\.yaml holds it encrypted with one machine's passphrase/);
    t.regex(e!.message, /pulumi config set --secret --path apiKey/);
    t.false(e!.message.includes("c2VjcmV0"));
    t.deepEqual(withTeamLayer({ apiKey: "set-here" }, "vllm-workstation", "team", root), { apiKey: "set-here" }, "this machine's own secret wins");
});
