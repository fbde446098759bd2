// Reads the stack's config as one raw object for parseConfig, and hands its secrets on as Pulumi secrets.
import * as pulumi from "@pulumi/pulumi";
import { parseConfig, WorkstationConfig } from "./config";

/** Top-level keys that hold secrets; everything else is plain config. */
export const secretOptions = ["apiKey", "hfToken"] as const;

/** Turns Pulumi's `project:key -> string` map into the nested object the schema reads. */
export function rawFromPulumiConfig(all: Readonly<Record<string, string>>, project: string): Record<string, unknown> {
    const raw: Record<string, unknown> = {};
    for (const [fullKey, value] of Object.entries(all)) {
        const [ns, key] = fullKey.split(":", 2);
        if (ns !== project || key === undefined) continue;
        // Structured values (set with --path or written as YAML maps) arrive as JSON text.
        const looksStructured = /^\s*[[{]/.test(value);
        raw[key] = looksStructured ? JSON.parse(value) : value;
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
