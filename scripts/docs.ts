// `npm run docs`: writes README.md's configuration table from the config schema (components/config/schema.ts),
// between its `<!-- options:begin -->` and `<!-- options:end -->` markers. tests/scripts/docs.test.ts fails when
// the README's table and the schema differ.
import * as fs from "fs";
import * as path from "path";
import { z } from "zod";
import { WorkstationConfig } from "../components/config/schema";

export const BEGIN = "<!-- options:begin -->";
export const END = "<!-- options:end -->";

export interface OptionRow {
    readonly option: string;
    readonly type: string;
    readonly default: string;
    readonly description: string;
}

type Def = z.core.$ZodTypeDef & {
    innerType?: z.core.$ZodType;
    in?: z.core.$ZodType;
    out?: z.core.$ZodType;
    defaultValue?: unknown;
    shape?: Record<string, z.core.$ZodType>;
    options?: z.core.$ZodType[];
    discriminator?: string;
    entries?: Record<string, string>;
    values?: unknown[];
    element?: z.core.$ZodType;
};

/** A check's definition, as far as the table reads it (bounds of numbers and lengths). */
interface CheckDef {
    readonly check: string;
    readonly value?: number;
    readonly inclusive?: boolean;
    readonly maximum?: number;
}

const checksOf = (d: Def): CheckDef[] => (d.checks ?? []).map((c) => c._zod.def as CheckDef);

const defOf = (s: z.core.$ZodType): Def => s._zod.def as Def;
const metaOf = (s: z.core.$ZodType): z.core.GlobalMeta => z.globalRegistry.get(s) ?? {};
const code = (v: unknown): string => `\`${typeof v === "string" ? v : JSON.stringify(v)}\``;

/** A schema under its wrappers, with what the wrappers say: its default, and the metadata of every layer (the outer wins). */
function peel(s: z.core.$ZodType): { base: z.core.$ZodType; meta: z.core.GlobalMeta; default?: { value: unknown } } {
    let meta: z.core.GlobalMeta = {};
    let dflt: { value: unknown } | undefined;
    for (;;) {
        meta = { ...metaOf(s), ...meta };
        const d = defOf(s);
        if ((d.type === "default" || d.type === "prefault") && dflt === undefined) dflt = { value: d.defaultValue };
        if (d.innerType !== undefined) s = d.innerType;
        else if (d.type === "pipe" && d.in !== undefined && d.out !== undefined) {
            // A value piped into a grammar (hostKey, trimmed first) is that grammar's kind; one piped into a transform, its input's.
            s = defOf(d.out).type === "transform" ? d.in : d.out;
        } else return { base: s, meta, default: dflt };
    }
}

function numberRange(d: Def): string {
    let lo = "";
    let hi = "";
    let int = false;
    for (const k of checksOf(d)) {
        if (k.check === "number_format") int = true;
        if (k.check === "greater_than") lo = k.inclusive ? `${k.value}` : `(${k.value}`;
        if (k.check === "less_than") hi = k.inclusive ? `${k.value}` : `${k.value})`;
    }
    const kind = int ? "int " : "";
    if (lo.startsWith("(")) return `${kind}${lo}, ${hi}]`;
    if (lo !== "" && hi !== "") return `${kind}${lo}–${hi}`;
    if (lo !== "") return `${kind}≥ ${lo}`;
    return int ? "int" : "number";
}

/** What a value of `s` looks like. */
function typeOf(s: z.core.$ZodType, meta: z.core.GlobalMeta): string {
    const d = defOf(s);
    const secret = meta.secret === true ? ", secret" : "";
    if (meta.format !== undefined) return meta.format + secret;
    switch (d.type) {
        case "enum":
            return Object.values(d.entries ?? {})
                .map(code)
                .join(", ");
        case "literal":
            return (d.values ?? []).map(code).join(", ");
        case "number":
            return numberRange(d);
        case "array": {
            const element = peel(d.element!);
            const max = checksOf(d).find((c) => c.check === "max_length")?.maximum;
            return `list of ${typeOf(element.base, element.meta)}${max !== undefined ? `, ≤ ${max}` : ""}`;
        }
        case "string":
            return "string" + secret;
        default:
            throw new Error(`no way to name a ${d.type} in the configuration table`);
    }
}

function defaultText(meta: z.core.GlobalMeta, dflt: { value: unknown } | undefined): string {
    if (meta.shownDefault !== undefined) return meta.shownDefault;
    if (dflt === undefined) return "required";
    const v = dflt.value;
    if (v === null) return "null";
    if (Array.isArray(v)) return v.length === 0 ? "none" : v.map(code).join(", ");
    if (typeof v === "object") throw new Error(`an object default needs a shownDefault: ${JSON.stringify(v)}`);
    return code(v);
}

/** One row per leaf option of `s` at `at`; `only` names the variant of a union the option belongs to. */
function rowsOf(s: z.core.$ZodType, at: string[], only = ""): OptionRow[] {
    const { base, meta, default: dflt } = peel(s);
    const d = defOf(base);
    if (d.type === "object") return Object.entries(d.shape!).flatMap(([k, v]) => rowsOf(v, [...at, k], only));
    if (d.type === "union" && d.discriminator !== undefined) {
        const tag = d.discriminator;
        const variants = d.options!.map((o) => defOf(peel(o).base).shape!);
        const tags = variants.flatMap((v) => defOf(peel(v[tag]).base).values ?? []);
        const row = { option: [...at, tag].join("."), type: tags.map(code).join(", "), default: code((dflt?.value as Record<string, unknown>)[tag]), description: describe(meta, at) };
        const rest = variants.flatMap((v) => {
            const t = String(defOf(peel(v[tag]).base).values?.[0]);
            return Object.entries(v)
                .filter(([k]) => k !== tag)
                .flatMap(([k, o]) => rowsOf(o, [...at, k], `${t}: `));
        });
        return [row, ...rest];
    }
    return [{ option: at.join("."), type: typeOf(base, meta), default: defaultText(meta, dflt), description: only + describe(meta, at) }];
}

function describe(meta: z.core.GlobalMeta, at: string[]): string {
    if (meta.description === undefined) throw new Error(`${at.join(".")} has no description in the schema: add .meta({ description })`);
    return meta.description;
}

/** One row per leaf option of `schema` (the stack's by default); throws naming an option without a description. */
export function optionRows(schema: z.core.$ZodType = WorkstationConfig): OptionRow[] {
    return rowsOf(schema, []);
}

const cell = (s: string): string => s.replace(/\|/g, "\\|");

/** The table as README.md holds it between the markers. */
export function optionsTable(): string {
    const lines = [
        "<!-- generated from components/config/schema.ts by `npm run docs`: change the schema, not this table -->",
        "| option | type | default | what it is |",
        "|---|---|---|---|",
        ...optionRows().map((r) => `| \`${r.option}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`),
    ];
    return lines.join("\n") + "\n";
}

/** `readme` with the text between the markers replaced by the table; throws when the markers are not there once each. */
export function withOptionsTable(readme: string): string {
    const b = readme.indexOf(BEGIN);
    const e = readme.indexOf(END);
    if (b < 0 || e < b || readme.indexOf(BEGIN, b + 1) >= 0 || readme.indexOf(END, e + 1) >= 0) {
        throw new Error(`README.md must hold ${BEGIN} and then ${END}, once each`);
    }
    return readme.slice(0, b + BEGIN.length) + "\n" + optionsTable() + readme.slice(e);
}

export const readmePath = path.resolve(__dirname, "../../README.md");

if (require.main === module) {
    const before = fs.readFileSync(readmePath, "utf8");
    const after = withOptionsTable(before);
    if (after !== before) fs.writeFileSync(readmePath, after);
    console.log(after !== before ? "README.md: configuration table written" : "README.md: configuration table up to date");
}
