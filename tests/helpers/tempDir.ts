// A fresh directory under the system temp dir for one test, removed when the test ends (pass or fail).
import type { ExecutionContext } from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export function tempDir(t: ExecutionContext, name: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vllm-ws-${name}-test-`));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
}
