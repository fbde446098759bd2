// scripts/toolchain.sh and scripts/npm-deps.sh as a user meets them: an official Pulumi install on PATH
// is used and left as it was, HostState's provider is this checkout's build (where Pulumi.yaml points
// the engine), and the npm dependencies are installed only where they are missing or stale.
import test from "ava";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { projectRoot } from "../../scripts/engine";
import { tempDir } from "../helpers/tempDir";

const listing = (dir: string) =>
    fs
        .readdirSync(dir)
        .sort()
        .map((f) => {
            const st = fs.statSync(path.join(dir, f));
            return `${f} ${st.size} ${st.mtimeMs} ${st.mode.toString(8)}`;
        });

test("with an official Pulumi install on PATH, the toolchain uses it and writes nothing beside it or into its plugin cache", (t) => {
    const home = tempDir(t, "toolchain");
    // An official install's folder: the CLI and the dynamic-provider shim it ships (here the project's
    // CLI and a stand-in shim; only what the script does to the folder is looked at).
    const official = path.join(home, "pulumi", "bin");
    fs.mkdirSync(official, { recursive: true });
    const cli = fs.realpathSync(execFileSync("sh", ["-c", "command -v pulumi"], { encoding: "utf8" }).trim());
    try {
        fs.linkSync(cli, path.join(official, "pulumi"));
    } catch {
        fs.copyFileSync(cli, path.join(official, "pulumi"));
        fs.chmodSync(path.join(official, "pulumi"), 0o755);
    }
    fs.writeFileSync(path.join(official, "pulumi-resource-pulumi-nodejs"), "#!/bin/sh\n# the official install's own shim\n", { mode: 0o755 });
    const before = listing(official);
    const cache = path.join(home, "cache");
    const r = spawnSync("bash", [path.join(projectRoot, "scripts", "toolchain.sh")], {
        cwd: projectRoot,
        encoding: "utf8",
        env: { ...process.env, PATH: `${official}:${process.env.PATH}`, VLLM_WS_CACHE: cache, PULUMI_HOME: path.join(home, "pulumi-home"), VLLM_WS_BUILD_PULUMI: "" },
        timeout: 5 * 60_000,
    });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stderr, new RegExp(`using the Pulumi CLI on PATH: ${official}/pulumi`));
    t.deepEqual(listing(official), before, "the official install's folder is as it was");
    t.false(fs.existsSync(path.join(home, "pulumi-home", "plugins")), "nothing went into the Pulumi plugin cache");
    const envFile = r.stdout.trim();
    t.is(envFile, path.join(cache, "toolchain", "env.sh"));
    t.true(fs.readFileSync(envFile, "utf8").startsWith(`export PATH="${official}:`), "the official install comes first on the env's PATH");
    t.true(fs.existsSync(path.join(projectRoot, "tools", "provider", "bin", "pulumi-resource-hoststate")));
});

test("Pulumi.yaml points every engine at the folder the toolchain builds HostState's provider into", (t) => {
    const project = yaml.load(fs.readFileSync(path.join(projectRoot, "Pulumi.yaml"), "utf8")) as { plugins: { providers: Array<{ name: string; path: string; version?: string }> } };
    t.deepEqual(project.plugins.providers, [{ name: "hoststate", path: "tools/provider/bin" }]);
    t.regex(fs.readFileSync(path.join(projectRoot, "scripts", "toolchain.sh"), "utf8"), /out=\$src\/bin\/pulumi-resource-hoststate\n/);
    for (const f of ["tools/provider/bin/pulumi-resource-hoststate", ".stacks/Pulumi.dev.yaml"]) {
        t.is(spawnSync("git", ["check-ignore", "-q", f], { cwd: projectRoot }).status, 0, `${f} is ignored by git`);
    }
});

test("npm-deps.sh leaves current node_modules alone and installs where package-lock.json is newer", (t) => {
    const dir = tempDir(t, "deps");
    fs.mkdirSync(path.join(dir, "scripts"));
    fs.copyFileSync(path.join(projectRoot, "scripts", "npm-deps.sh"), path.join(dir, "scripts", "npm-deps.sh"));
    // A project whose one dependency is a folder on this machine (this checkout's typescript), so npm
    // needs no registry.
    const ts = `file:${path.join(projectRoot, "node_modules", "typescript")}`;
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "deps-test", version: "1.0.0", private: true, devDependencies: { typescript: ts } }));
    const lock = spawnSync("npm", ["install", "--package-lock-only", "--offline", "--no-audit", "--no-fund"], { cwd: dir, encoding: "utf8" });
    t.is(lock.status, 0, lock.stderr);
    const run = () => spawnSync("bash", ["scripts/npm-deps.sh"], { cwd: dir, encoding: "utf8", env: { ...process.env, npm_config_offline: "true" } });
    const first = run();
    t.is(first.status, 0, first.stderr);
    t.regex(first.stderr, /\[deps\] npm ci/);
    t.true(fs.existsSync(path.join(dir, "node_modules", "typescript", "bin", "tsc")));
    const second = run();
    t.is(second.status, 0, second.stderr);
    t.false(/npm ci/.test(second.stderr), "current: nothing to do");
    const future = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(dir, "package-lock.json"), future, future);
    const third = run();
    t.is(third.status, 0, third.stderr);
    t.regex(third.stderr, /\[deps\] npm ci/, "a newer package-lock.json installs again");
});
