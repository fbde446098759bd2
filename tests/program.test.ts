import test from "ava";
import { parseConfig } from "../components/config";
import { earlyFor, EarlyLook, lookFor } from "../components/program";

const revision = "6cee5e81ee83917806bbde320786a8fb61efebee";
const config = (raw: Record<string, unknown> = {}) => ({ ...parseConfig({ model: { revision }, ...raw }), apiKey: null, hfToken: null });
const seen = Promise.resolve({ first: "", observed: new Map<string, string>() });

test("an early look is used when it is the program's look: the same connection and script", (t) => {
    const look = lookFor(config(), null);
    const early: EarlyLook = { key: lookFor(config(), null).key, seen };
    t.is(earlyFor(look, early), seen);
});

test("an early look is not used when the config it was made from differs in what the look runs or where", (t) => {
    const look = lookFor(config(), null);
    for (const other of [{ model: { revision, cacheDir: "/srv/hf" } }, { target: { kind: "ssh", host: "10.0.0.5", user: "admin" } }, { runtime: "docker" }]) {
        t.is(earlyFor(look, { key: lookFor(config(other), null).key, seen }), null, JSON.stringify(other));
    }
    t.is(earlyFor(look, { key: lookFor(config(), "pinned==1.0\n").key, seen }), null, "another lock file changes the packages' probe");
});

test("an early look is not used when there is none", (t) => {
    t.is(earlyFor(lookFor(config(), null), null), null);
});

test("a look's key does not change with options the look does not run (the served port, the GPU tier)", (t) => {
    t.is(lookFor(config({ gpu: { tier: "12gb" } }), null).key, lookFor(config({ gpu: { tier: "24gb" } }), null).key);
    t.is(lookFor(config({ server: { port: 8001 } }), null).key, lookFor(config(), null).key);
});
