import test from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { providerModule } from "../components/hostState";

// The engine's dynamic-provider process loads `__provider` with require-from-string and calls handler();
// the same loader here, over an implementation that records its calls.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const requireFromString: (code: string) => { handler: () => Record<string, (...a: unknown[]) => unknown> } = require("require-from-string");

test("the provider module loads as the engine loads it and hands every call to the implementation, delete to remove", (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-hoststate-test-"));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const impl = path.join(dir, "it's an impl.js");
    fs.writeFileSync(impl, ["create", "read", "diff", "update", "remove"].map((f) => `exports.${f} = (...a) => ["${f}", ...a];`).join("\n"));
    const provider = requireFromString(providerModule(impl)).handler();
    t.deepEqual(Object.keys(provider).sort(), ["create", "delete", "diff", "read", "update"]);
    t.deepEqual(provider.create({ a: 1 }), ["create", { a: 1 }]);
    t.deepEqual(provider.read("id", { p: 1 }), ["read", "id", { p: 1 }]);
    t.deepEqual(provider.diff("id", { o: 1 }, { n: 1 }), ["diff", { o: 1 }, { n: 1 }], "diff does not need the id");
    t.deepEqual(provider.update("id", { o: 1 }, { n: 1 }), ["update", "id", { o: 1 }, { n: 1 }]);
    t.deepEqual(provider.delete("id", { p: 1 }), ["remove", "id", { p: 1 }]);
});

test("the provider module is the same text on every run and names the implementation by absolute path only", (t) => {
    const text = providerModule("/opt/x/dist/components/hostStateProvider.js");
    t.is(text, providerModule("/opt/x/dist/components/hostStateProvider.js"));
    t.is(text.split('"/opt/x/dist/components/hostStateProvider.js"').length, 2, "the path appears once, JSON-quoted");
    t.false(/require\((?!impl\))/.test(text), "it requires nothing but the implementation");
});
