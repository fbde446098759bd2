import test from "ava";
import { spawnSync } from "child_process";
import { exampleRequest } from "../components/workstation";

/** Runs the request with curl replaced by a function that prints each argument on its own line (NUL-separated). */
function curlArgs(request: string, env: NodeJS.ProcessEnv = {}): { code: number | null; args: string[]; stderr: string } {
    const r = spawnSync("bash", ["-c", `curl() { printf '%s\\0' "$@"; }\n${request}`], { encoding: "utf8", env: { PATH: process.env.PATH, ...env } });
    return { code: r.status, args: r.stdout.split("\0").slice(0, -1), stderr: r.stderr };
}

test("the example request posts to /chat/completions of the endpoint with a JSON content type", (t) => {
    const req = exampleRequest("http://127.0.0.1:8000/v1", "gpt-oss-20b", false);
    t.true(req.startsWith("curl -s 'http://127.0.0.1:8000/v1/chat/completions' "));
    const { code, args } = curlArgs(req);
    t.is(code, 0);
    t.deepEqual(args.slice(0, 4), ["-s", "http://127.0.0.1:8000/v1/chat/completions", "-H", "Content-Type: application/json"]);
});

test("the example request's body is valid JSON that names the model and asks one user message", (t) => {
    const { args } = curlArgs(exampleRequest("http://127.0.0.1:8000/v1", "gpt-oss-20b", false));
    t.is(args[args.length - 2], "-d");
    const body = JSON.parse(args[args.length - 1]);
    t.is(body.model, "gpt-oss-20b");
    t.deepEqual(body.messages, [{ role: "user", content: "Say hello in one sentence." }]);
});

test("the example request has no Authorization header without a key", (t) => {
    const req = exampleRequest("http://127.0.0.1:8000/v1", "gpt-oss-20b", false);
    t.false(req.includes("Authorization"));
    t.false(curlArgs(req).args.some((a) => a.startsWith("Authorization")));
});

test("the example request sends the key from $VLLM_API_KEY as a Bearer header, never the key itself", (t) => {
    const req = exampleRequest("http://[::1]:8001/v1", "gpt-oss-20b", true);
    t.true(req.includes(' -H "Authorization: Bearer $VLLM_API_KEY"'));
    const { args } = curlArgs(req, { VLLM_API_KEY: "sk-from-the-environment" });
    const i = args.indexOf("Authorization: Bearer sk-from-the-environment");
    t.true(i > 0);
    t.is(args[i - 1], "-H");
    t.is(args[1], "http://[::1]:8001/v1/chat/completions");
});

test("the example request keeps a custom model name intact in the body", (t) => {
    const { args } = curlArgs(exampleRequest("http://127.0.0.1:8000/v1", 'my "gpt" $HOME model', false));
    t.is(JSON.parse(args[args.length - 1]).model, 'my "gpt" $HOME model');
});

// Known bug: the body is wrapped in single quotes without escaping, so a served model name with a
// single quote breaks the printed command.
test("the example request stays a valid command for a model name with a single quote", (t) => {
    const { code, args } = curlArgs(exampleRequest("http://127.0.0.1:8000/v1", "bob's model", false));
    t.is(code, 0);
    t.is(JSON.parse(args[args.length - 1]).model, "bob's model");
});
