import test from "ava";
import { allConfigFromStackFile, rawFromPulumiConfig, SECRET_STAND_IN } from "../components/stackConfig";
import { ConfigError, parseConfig } from "../components/config";

test("a stack file's scalars read as the strings the engine hands the program", (t) => {
    const all = allConfigFromStackFile("config:\n  vllm-workstation:runtime: systemd\n  vllm-workstation:port: 8000\n  vllm-workstation:flag: true\n");
    t.deepEqual(all, { "vllm-workstation:runtime": "systemd", "vllm-workstation:port": "8000", "vllm-workstation:flag": "true" });
});

test("a stack file's maps, in YAML or JSON style, read as JSON text that rawFromPulumiConfig parses back", (t) => {
    const text = ["config:", "  vllm-workstation:gpu:", "    tier: 24gb", "    maxModelLen: 32768", '  vllm-workstation:server: {"host":"127.0.0.1","port":8000}', ""].join("\n");
    const raw = rawFromPulumiConfig(allConfigFromStackFile(text), "vllm-workstation");
    t.deepEqual(raw, { gpu: { tier: "24gb", maxModelLen: 32768 }, server: { host: "127.0.0.1", port: 8000 } });
});

test("an encrypted value reads as the stand-in, top level or nested, and the stand-in passes as every secret option", (t) => {
    const text = ["config:", "  vllm-workstation:apiKey:", "    secure: v1:abc", "  vllm-workstation:hfToken:", "    secure: v1:def", "  other:thing:", "    nested:", "      secure: v1:ghi", ""].join("\n");
    const all = allConfigFromStackFile(text);
    t.is(all["vllm-workstation:apiKey"], SECRET_STAND_IN);
    t.deepEqual(JSON.parse(all["other:thing"]), { nested: SECRET_STAND_IN });
    const parsed = parseConfig({ ...rawFromPulumiConfig(all, "vllm-workstation"), model: { revision: "6cee5e81ee83917806bbde320786a8fb61efebee" }, server: { host: "0.0.0.0" } });
    t.is(parsed.apiKey, SECRET_STAND_IN, "it satisfies the API key's rules, so a guess does not fail where the real config would not");
});

test("a stack file with no config, or an empty one, reads as no config", (t) => {
    t.deepEqual(allConfigFromStackFile(""), {});
    t.deepEqual(allConfigFromStackFile("config:\n"), {});
    t.deepEqual(allConfigFromStackFile("# just a comment\n"), {});
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
