// The API key middleware the service loads into vLLM (components/pieces/assets/vllm_workstation_auth.py),
// called as vLLM's ASGI server calls it, one scope per request (tests/helpers/asgi_call.py).
import test from "ava";
import { spawnSync } from "child_process";
import * as path from "path";
import { authMiddleware } from "../../components/pieces/vllmService";

const root = path.join(__dirname, "..", "..", "..");
const KEY = "k3y-0123456789abcdef";

interface Request {
    readonly path: string;
    readonly method?: string;
    readonly type?: "http" | "websocket";
    readonly root_path?: string;
    readonly headers?: Array<[string, string]>;
}
interface Result {
    readonly reached: boolean;
    readonly status: number | null;
    readonly headers: Record<string, string>;
    readonly body: string;
    readonly close: number | null;
}

function call(requests: Request[], env: Record<string, string> = { VLLM_API_KEY: KEY }): Result[] | { error: string } {
    const r = spawnSync("python3", [path.join(root, "tests", "helpers", "asgi_call.py"), authMiddleware], {
        input: JSON.stringify(requests),
        encoding: "utf8",
        env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: "1", PYTHONPATH: path.join(root, "components", "pieces", "assets"), ...env },
    });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout);
}

function results(requests: Request[]): Result[] {
    const out = call(requests);
    if (!Array.isArray(out)) throw new Error(out.error);
    return out;
}

const bearer = (key: string): Array<[string, string]> => [["Authorization", `Bearer ${key}`]];

// Every route of vLLM 0.11.0 and 0.24.0 that serves inference or controls the engine, guarded by
// --api-key or not (see the module's docstring), and those that only describe the server.
const inference = ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/invocations", "/tokenize", "/detokenize", "/pooling", "/classify", "/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank", "/v2/embed", "/inference/v1/generate", "/generative_scoring", "/v1/messages", "/v1/audio/transcriptions"];
const control = ["/sleep", "/wake_up", "/collective_rpc", "/reset_prefix_cache", "/scale_elastic_ep", "/start_profile", "/v1/load_lora_adapter", "/pause", "/abort_requests"];
const descriptive = ["/metrics", "/version", "/load", "/ping", "/v1/models", "/server_info", "/tokenizer_info", "/docs", "/openapi.json", "/"];

test("every route but /health answers 401 without the key and never reaches vLLM", (t) => {
    const paths = [...inference, ...control, ...descriptive];
    const out = results(paths.map((p) => ({ path: p, method: "POST" })));
    paths.forEach((p, i) => {
        t.false(out[i].reached, p);
        t.is(out[i].status, 401, p);
        t.is(out[i].headers["www-authenticate"], "Bearer", p);
        t.deepEqual(JSON.parse(out[i].body), { error: "Unauthorized" }, p);
    });
});

test("every route reaches vLLM with the key", (t) => {
    const paths = [...inference, ...control, ...descriptive, "/health"];
    const out = results(paths.map((p) => ({ path: p, method: "POST", headers: bearer(KEY) })));
    paths.forEach((p, i) => t.true(out[i].reached && out[i].status === null, p));
});

test("/health answers without the key; a path only like it does not", (t) => {
    const paths = ["/health", "/health/", "/healthz", "//health", "/v1/../health", "/HEALTH", "/health;x", "/health/../invocations"];
    const out = results(paths.map((p) => ({ path: p })));
    t.deepEqual(
        out.map((r) => r.reached),
        [true, false, false, false, false, false, false, false],
    );
});

test("a wrong key, another scheme, a key with extra characters or none at all is refused", (t) => {
    const headers: Array<Array<[string, string]>> = [
        bearer("wrong"),
        bearer(`${KEY}x`),
        bearer(KEY.slice(0, -1)),
        bearer(""),
        [["Authorization", `Basic ${KEY}`]],
        [["Authorization", KEY]],
        [["X-Api-Key", KEY]],
        [],
    ];
    const out = results(headers.map((h) => ({ path: "/invocations", method: "POST", headers: h })));
    out.forEach((r, i) => t.is(r.status, 401, JSON.stringify(headers[i])));
});

test("the scheme is case-insensitive and the header name too, as HTTP says", (t) => {
    const out = results([
        { path: "/invocations", method: "POST", headers: [["authorization", `bearer ${KEY}`]] },
        { path: "/invocations", method: "POST", headers: [["AUTHORIZATION", `BEARER ${KEY}`]] },
    ]);
    t.true(out.every((r) => r.reached));
});

test("OPTIONS passes, as vLLM's own check lets CORS preflights through (no route handles OPTIONS)", (t) => {
    t.true(results([{ path: "/invocations", method: "OPTIONS" }])[0].reached);
});

test("under a root path, the route is what follows it", (t) => {
    const out = results([
        { path: "/api/health", root_path: "/api" },
        { path: "/api/invocations", root_path: "/api", method: "POST" },
    ]);
    t.true(out[0].reached);
    t.is(out[1].status, 401);
});

test("a websocket without the key is closed before it is accepted (a 403 to the client)", (t) => {
    const out = results([
        { type: "websocket", path: "/v1/realtime" },
        { type: "websocket", path: "/health" },
        { type: "websocket", path: "/v1/realtime", headers: bearer(KEY) },
    ]);
    t.deepEqual(
        out.map((r) => [r.reached, r.close]),
        [
            [false, 1008],
            [false, 1008],
            [true, null],
        ],
    );
});

test("without VLLM_API_KEY the middleware refuses to start, so a lost key closes the server", (t) => {
    const envs: Array<Record<string, string>> = [{}, { VLLM_API_KEY: "" }];
    for (const env of envs) {
        const out = call([], env);
        t.false(Array.isArray(out));
        t.regex((out as { error: string }).error, /VLLM_API_KEY is not set/);
    }
});
