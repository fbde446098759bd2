// Reads the stack's config as one raw object for parseConfig, and hands its secrets on as Pulumi secrets.
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";
import { parseConfig, WorkstationConfig } from "./config";

/** Top-level keys that hold secrets; everything else is plain config. */
export const secretOptions = ["apiKey", "hfToken"] as const;

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
        raw[key] = !(secretOptions as readonly string[]).includes(key) && /^\s*[[{]/.test(value) ? parsedOrText(value) : value;
    }
    return raw;
}

export interface StackConfig {
    /** Parsed, defaults filled; apiKey and hfToken are blanked to null here, see the fields below. */
    readonly config: WorkstationConfig;
    readonly apiKey: pulumi.Output<string> | null;
    readonly hfToken: pulumi.Output<string> | null;
}

/** Parses the running stack's config, or throws a ConfigError that lists every problem. */
export function loadStackConfig(): StackConfig {
    const raw = rawFromPulumiConfig(pulumi.runtime.allConfig(), pulumi.getProject());
    const parsed = parseConfig(raw);
    const asSecret = (v: string | null) => (v === null ? null : pulumi.secret(v));
    // Components get the config without secrets, so no rendering function can ever put one in a file.
    return { config: { ...parsed, apiKey: null, hfToken: null }, apiKey: asSecret(parsed.apiKey), hfToken: asSecret(parsed.hfToken) };
}

/** What a secret's encrypted value stands in as where the stack file is read without the passphrase: valid for every secret option. */
export const SECRET_STAND_IN = "not-decrypted-here-0000";

/**
 * The `config:` of a stack file (Pulumi.<stack>.yaml) as the engine hands it to the program: every
 * value a string, structured ones as JSON text. Encrypted values (`secure:`) become SECRET_STAND_IN.
 * Config from elsewhere (the project file, an ESC environment) is not seen; this is only for guessing
 * ahead of the engine (program.ts, lookingAhead), never for what the program declares.
 */
export function allConfigFromStackFile(text: string): Record<string, string> {
    const doc = (yaml.load(text) ?? {}) as { config?: Record<string, unknown> | null };
    const isSecure = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;
    const unwrap = (v: unknown): unknown =>
        isSecure(v) ? SECRET_STAND_IN : Array.isArray(v) ? v.map(unwrap) : typeof v === "object" && v !== null ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)])) : v;
    const all: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        const v = unwrap(value);
        all[key] = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
    }
    return all;
}
