// Reads the stack's config as one raw object for parseConfig, and hands its secrets on as Pulumi secrets.
//
// A stack's config comes in two layers. The team's: the tracked Pulumi.<stack>.yaml in the project
// directory, the same for everyone with that stack. This machine's: the file the engine reads and
// writes (Pulumi.yaml's stackConfigDir, .stacks/), which holds the passphrase's salt the engine puts
// there at `pulumi stack init`, and whatever this machine sets with `pulumi config set`, its secrets
// among them. The program reads the team's file itself and lays this machine's config over it, so the
// engine never writes a tracked file (docs/onboarding.md).
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";
import { parseConfig, secretOptions, WorkstationConfig } from "./schema";

function parsedOrText(value: string): unknown {
    try {
        return JSON.parse(value);
    } catch {
        return value;
    }
}

/** Turns Pulumi's `project:key -> string` map into the nested object the schema reads. */
export function rawFromPulumiConfig(all: Readonly<Record<string, string>>, project: string): Record<string, unknown> {
    const raw: Record<string, unknown> = {};
    for (const [fullKey, value] of Object.entries(all)) {
        const [ns, key] = fullKey.split(":", 2);
        if (ns !== project || key === undefined) continue;
        // Structured values (set with --path or written as YAML maps) arrive as JSON text. A secret is
        // always a string, whatever it starts with; text that only looks like JSON stays the string it
        // is, and the schema then says, naming the option, what it should be.
        raw[key] = !secretOptions.includes(key) && /^\s*[[{]/.test(value) ? parsedOrText(value) : value;
    }
    return raw;
}

export interface StackConfig {
    /** Parsed, defaults filled; apiKey and hfToken are blanked to null here, see the fields below. */
    readonly config: WorkstationConfig;
    readonly apiKey: pulumi.Output<string> | null;
    readonly hfToken: pulumi.Output<string> | null;
}

/** Parses the running stack's config (the team's layer under this machine's), or throws a ConfigError that lists every problem. */
export function loadStackConfig(): StackConfig {
    const project = pulumi.getProject();
    const raw = withTeamLayer(rawFromPulumiConfig(pulumi.runtime.allConfig(), project), project, pulumi.getStack());
    const parsed = parseConfig(raw);
    const asSecret = (v: string | null) => (v === null ? null : pulumi.secret(v));
    // Components get the config without secrets, so no rendering function can ever put one in a file.
    return { config: { ...parsed, apiKey: null, hfToken: null }, apiKey: asSecret(parsed.apiKey), hfToken: asSecret(parsed.hfToken) };
}

/** What a secret's encrypted value stands in as where the stack file is read without the passphrase: valid for every secret option. */
export const SECRET_STAND_IN = "not-decrypted-here-0000";

/** The checkout the program runs from: where the tracked stack files are. */
export const checkoutRoot = path.resolve(__dirname, "..", "..", "..");

/** The team's layer of a stack: the tracked Pulumi.<stack>.yaml in the checkout. */
export function teamStackFile(stack: string, root: string = checkoutRoot): string {
    return path.join(root, `Pulumi.${stack}.yaml`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isSecure = (v: unknown) => isPlainObject(v) && Object.keys(v).length === 1 && "secure" in v;

/** `over` laid over `under`: maps merge key by key, anything else in `over` replaces what is under it. */
export function layered(under: Readonly<Record<string, unknown>>, over: Readonly<Record<string, unknown>>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...under };
    for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? layered(out[k] as Record<string, unknown>, v) : v;
    return out;
}

/**
 * A stack file's config as raw options (what rawFromPulumiConfig makes of the engine's), with every
 * encrypted value left out: `secrets` names them (option paths). Only the machine whose passphrase
 * encrypted a value can read it, so in the team's layer it can only be a mistake or this machine's own
 * file read twice. With `standIn`, each encrypted value reads as it instead: that is only for guessing
 * ahead of the engine (program.ts, guessLook), never for what the program declares.
 */
export function stackFileLayer(text: string, project: string, standIn: string | null = null): { raw: Record<string, unknown>; secrets: string[] } {
    const doc = (yaml.load(text) ?? {}) as { config?: Record<string, unknown> | null };
    const secrets: string[] = [];
    const strip = (v: unknown, at: string): unknown => {
        if (!isPlainObject(v)) return v;
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) {
            if (!isSecure(x)) out[k] = strip(x, `${at}.${k}`);
            else {
                secrets.push(`${at}.${k}`);
                if (standIn !== null) out[k] = standIn;
            }
        }
        return out;
    };
    const all: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        const option = key.split(":").slice(1).join(":");
        if (isSecure(value)) {
            if (key.startsWith(`${project}:`)) secrets.push(option);
            if (standIn !== null) all[key] = standIn;
            continue;
        }
        const v = strip(value, option);
        all[key] = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
    }
    return { raw: rawFromPulumiConfig(all, project), secrets };
}

function hasPath(raw: Readonly<Record<string, unknown>>, at: string): boolean {
    let v: unknown = raw;
    for (const k of at.split(".")) {
        if (!isPlainObject(v) || !(k in v)) return false;
        v = v[k];
    }
    return v !== undefined && v !== null;
}

/**
 * This machine's config laid over the team's tracked Pulumi.<stack>.yaml, if there is one. Where the
 * engine's stack file is that same file (a project without stackConfigDir), the layers are the same
 * and the result is the machine's config. A secret in the team's file that this machine does not set
 * is refused, naming the option: no other machine could decrypt it.
 */
export function withTeamLayer(machine: Readonly<Record<string, unknown>>, project: string, stack: string, root: string = checkoutRoot): Record<string, unknown> {
    const file = teamStackFile(stack, root);
    if (!fs.existsSync(file)) return { ...machine };
    const team = stackFileLayer(fs.readFileSync(file, "utf8"), project);
    const missing = team.secrets.filter((at) => !hasPath(machine, at));
    if (missing.length > 0) {
        throw new Error(
            missing
                .map((at) => `${at}: the tracked ${path.basename(file)} holds it encrypted with one machine's passphrase, which no other machine can read; set it on each machine instead: pulumi config set --secret --path ${at} <value> (and remove it from ${path.basename(file)})`)
                .join("\n"),
        );
    }
    return layered(team.raw, machine);
}
