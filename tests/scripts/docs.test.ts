import test from "ava";
import * as fs from "fs";
import { z } from "zod";
import { BEGIN, END, optionRows, optionsTable, readmePath, withOptionsTable } from "../../scripts/docs";

test("README.md's configuration table is the one the schema renders", (t) => {
    const readme = fs.readFileSync(readmePath, "utf8");
    const shown = readme.slice(readme.indexOf(BEGIN) + BEGIN.length + 1, readme.indexOf(END));
    t.is(shown, optionsTable(), "README.md's configuration table differs from components/config/schema.ts: run `npm run docs` and commit README.md");
});

test("the table has a row for every option, the defaults and bounds taken from the schema", (t) => {
    const rows = new Map(optionRows().map((r) => [r.option, r]));
    t.like(rows.get("server.port"), { type: "int 1–65535", default: "`8000`" });
    t.like(rows.get("gpu.gpuMemoryUtilization"), { type: "(0, 1]", default: "null" });
    t.like(rows.get("gpu.cpuOffloadGb"), { type: "0–13.8" });
    t.like(rows.get("gpu.tier"), { type: "`auto`, `12gb`, `16gb`, `24gb`", default: "`auto`" });
    t.like(rows.get("model.revision"), { default: "required" });
    t.like(rows.get("model.exclude"), { default: "`original/*`, `metal/*`" });
    t.like(rows.get("target.kind"), { type: "`local`, `ssh`", default: "`local`" });
    t.regex(rows.get("target.hostKey")!.description, /^ssh: /);
    t.like(rows.get("apiKey"), { type: "token, secret", default: "null" });
    t.is(rows.size, optionRows().length, "each option once");
});

test("the table stays within a few kilobytes of the README", (t) => {
    t.true(Buffer.byteLength(optionsTable()) <= 5 * 1024, `${Buffer.byteLength(optionsTable())} bytes`);
});

test("an option without a description is refused by the renderer, naming it", (t) => {
    const schema = z.object({ server: z.object({ port: z.number().default(1).meta({ description: "a port" }), extra: z.string().default("x") }) });
    t.throws(() => optionRows(schema), { message: /^server\.extra has no description in the schema/ });
});

test("the markers must be there once each", (t) => {
    t.throws(() => withOptionsTable("# no markers\n"), { message: /must hold <!-- options:begin -->/ });
    t.throws(() => withOptionsTable(`${BEGIN}\n${END}\n${BEGIN}\n${END}\n`), { message: /once each/ });
    t.is(withOptionsTable(`a\n${BEGIN}\nold\n${END}\nb\n`), `a\n${BEGIN}\n${optionsTable()}${END}\nb\n`);
});
