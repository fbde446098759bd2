import test, { ExecutionContext } from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError, parseConfig } from "../components/config/schema";
import { lockTextFor, lookFor } from "../components/program";

const revision = "6cee5e81ee83917806bbde320786a8fb61efebee";
const config = (raw: Record<string, unknown> = {}) => ({ ...parseConfig({ model: { revision }, ...raw }), apiKey: null, hfToken: null });

// The program uses an early look only when its key is the program's own look's key (program.ts, lookingAhead).
test("a look's key is the same for the same config, so an early look made from it is used", (t) => {
    t.is(lookFor(config(), null).key, lookFor(config(), null).key);
    t.is(lookFor(config({ runtime: "docker" }), null).key, lookFor(config({ runtime: "docker" }), null).key);
});

test("a look's key differs when the config differs in what the look runs or where, so an early look made from another config is not used", (t) => {
    const key = lookFor(config(), null).key;
    for (const other of [{ model: { revision, cacheDir: "/srv/hf" } }, { target: { kind: "ssh", host: "10.0.0.5", user: "admin" } }, { runtime: "docker" }]) {
        t.not(lookFor(config(other), null).key, key, JSON.stringify(other));
    }
    t.not(lookFor(config(), "pinned==1.0\n").key, key, "another lock file changes the packages' probe");
});

test("a look's key does not change with options the look does not run (the served port, the GPU tier)", (t) => {
    t.is(lookFor(config({ gpu: { tier: "12gb" } }), null).key, lookFor(config({ gpu: { tier: "24gb" } }), null).key);
    t.is(lookFor(config({ server: { port: 8001 } }), null).key, lookFor(config(), null).key);
});

function projectWithLock(t: ExecutionContext): { root: string; outside: string } {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "vllm-ws-lock-"));
    t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
    const root = path.join(base, "project");
    fs.mkdirSync(path.join(root, "locks"), { recursive: true });
    fs.writeFileSync(path.join(root, "locks", "pinned.txt"), "vllm==0.11.0 --hash=sha256:00\n");
    const outside = path.join(base, "admin-private.txt");
    fs.writeFileSync(outside, "PRIVATE admin notes\n");
    return { root, outside };
}

test("python.lockFile is read from inside the project", (t) => {
    const { root } = projectWithLock(t);
    t.is(lockTextFor(config({ python: { lockFile: "locks/pinned.txt" } }), root), "vllm==0.11.0 --hash=sha256:00\n");
    t.is(lockTextFor(config(), root), null);
});

test("python.lockFile that is a symlink out of the project is refused naming the option, and not read", (t) => {
    const { root, outside } = projectWithLock(t);
    fs.symlinkSync(outside, path.join(root, "locks", "link.txt"));
    const err = t.throws(() => lockTextFor(config({ python: { lockFile: "locks/link.txt" } }), root), { instanceOf: ConfigError });
    t.regex(err!.problems[0], /^python\.lockFile: "locks\/link\.txt" resolves to .*admin-private\.txt, outside the project /);
    t.false(err!.message.includes("PRIVATE"));
});

test("python.lockFile under a symlinked directory that leads out of the project is refused", (t) => {
    const { root, outside } = projectWithLock(t);
    fs.symlinkSync(path.dirname(outside), path.join(root, "elsewhere"));
    const err = t.throws(() => lockTextFor(config({ python: { lockFile: "elsewhere/admin-private.txt" } }), root), { instanceOf: ConfigError });
    t.regex(err!.problems[0], /^python\.lockFile: .* outside the project /);
});

test("a missing python.lockFile is refused naming the option", (t) => {
    const { root } = projectWithLock(t);
    const err = t.throws(() => lockTextFor(config({ python: { lockFile: "locks/absent.txt" } }), root), { instanceOf: ConfigError });
    t.regex(err!.problems[0], /^python\.lockFile: "locks\/absent\.txt" cannot be read in the project .*ENOENT/);
});

test("python.lockFile that is a directory is refused naming the option", (t) => {
    const { root } = projectWithLock(t);
    const err = t.throws(() => lockTextFor(config({ python: { lockFile: "locks" } }), root), { instanceOf: ConfigError });
    t.regex(err!.problems[0], /^python\.lockFile: "locks" is not a file/);
});
