// The README and docs/ point at what exists: every relative link reaches a file of the checkout (and a
// heading of it, when it names one), every path of the checkout they quote is there, every `npm run`
// they show is a script of package.json, and the README's first two commands are the ones CI runs.
import test from "ava";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const root = path.join(__dirname, "..", "..");

/** README.md and every Markdown file in docs/, relative to the root. */
const documents = ["README.md", ...fs.readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];

/** The text with fenced code blocks blanked out: their `[x](y)` and `# ...` are code, not links or headings. */
function prose(markdown: string): string {
    return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
}

/** Inline code spans of the prose. */
function codeSpans(markdown: string): string[] {
    return [...prose(markdown).matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
}

/** The targets of the inline links and link definitions in the prose, code spans left out. */
function linkTargets(markdown: string): string[] {
    const text = prose(markdown).replace(/`[^`\n]*`/g, "");
    const inline = [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
    const defined = [...text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((m) => m[1]);
    return [...inline, ...defined];
}

/** The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
    const seen = new Map<string, number>();
    const anchors = new Set<string>();
    for (const m of prose(markdown).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
        const base = m[1]
            .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
            .replace(/<[^>]*>/g, "")
            .toLowerCase()
            .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, "")
            .trim()
            .replace(/\s/g, "-");
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    return anchors;
}

/** What is wrong with each relative link of `file` (a path relative to `base`), one line per broken link. */
function brokenLinks(base: string, file: string, markdown: string): string[] {
    const problems: string[] = [];
    for (const target of linkTargets(markdown)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: and the like
        const [rawPath, anchor] = target.split("#", 2) as [string, string | undefined];
        if (rawPath === "") {
            if (!headingAnchors(markdown).has(anchor ?? "")) problems.push(`${file}: ${target} names no heading of ${file}`);
            continue;
        }
        const linked = path.posix.normalize(path.posix.join(path.posix.dirname(file), decodeURI(rawPath)));
        if (linked.startsWith("../") || path.posix.isAbsolute(linked)) {
            problems.push(`${file}: ${target} leads out of the checkout`);
            continue;
        }
        const full = path.join(base, linked);
        if (!fs.existsSync(full)) {
            problems.push(`${file}: ${target} points at ${linked}, which does not exist`);
            continue;
        }
        if (anchor === undefined) continue;
        if (!linked.endsWith(".md")) {
            problems.push(`${file}: ${target} names a heading of a file that is not Markdown`);
        } else if (!headingAnchors(fs.readFileSync(full, "utf8")).has(anchor)) {
            problems.push(`${file}: ${target} names no heading of ${linked}`);
        }
    }
    return problems;
}

/** Build outputs the documents may name: made by `npm run build`, absent from a fresh clone. */
const builtPaths = ["tools/provider/bin"];

/** Paths of the checkout quoted in the prose that are not there (placeholders such as `<name>` and build outputs aside). */
function missingPaths(base: string, markdown: string): string[] {
    const quoted = codeSpans(markdown)
        .map((span) => span.trim())
        .filter((span) => /^(\.ci|components|docs|locks|scripts|tests|tools)\/[^\s]*$/.test(span))
        .filter((p) => !/[<>{}]/.test(p) && !builtPaths.some((b) => p === b || p.startsWith(`${b}/`)));
    return [...new Set(quoted)].filter((p) => {
        if (!p.includes("*")) return !fs.existsSync(path.join(base, p));
        // A glob in the last part (`components/pieces/assets/*.sh`): at least one file matches.
        const dir = path.join(base, path.posix.dirname(p));
        const pattern = new RegExp(`^${path.posix.basename(p).replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
        return !fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => pattern.test(f));
    });
}

const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");

test("every relative link in the README and docs/ reaches a file of the checkout, and a heading of it where it names one", (t) => {
    const links = documents.flatMap((f) => linkTargets(read(f)));
    t.true(links.length >= 20, `only ${links.length} links found: the link parser misses some`);
    t.deepEqual(documents.flatMap((f) => brokenLinks(root, f, read(f))), []);
});

test("every path of the checkout the README and docs/ quote exists", (t) => {
    t.deepEqual(documents.flatMap((f) => missingPaths(root, read(f)).map((p) => `${f}: ${p}`)), []);
});

test("every `npm run` the README and docs/ show is a script of package.json", (t) => {
    const scripts = Object.keys((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts);
    const shown = documents.flatMap((f) => [...read(f).matchAll(/npm run ([a-z][\w:-]*)/g)].map((m) => ({ f, name: m[1] })));
    t.true(shown.length >= 10);
    t.deepEqual(shown.filter(({ name }) => !scripts.includes(name)).map(({ f, name }) => `${f}: npm run ${name}`), []);
});

test("the README's two commands for a fresh machine are the ones .ci/run runs, in the same order", (t) => {
    const readme = read("README.md");
    const section = readme.slice(readme.search(/^## Two commands on a fresh machine$/m));
    const block = /```bash\n([\s\S]*?)```/.exec(section);
    t.truthy(block, "the README has a '## Two commands on a fresh machine' section with a bash block");
    const commands = block![1].split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) => l !== "");
    const ci = read(".ci/run").split("\n").map((l) => l.trim()).filter((l) => /^npm /.test(l));
    t.deepEqual(commands, ["npm run demo", "npm test"]);
    t.deepEqual(ci, commands);
});

test("the link check finds a missing file, a missing heading and a link out of the checkout, and passes good links", (t) => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "links-"));
    try {
        fs.mkdirSync(path.join(base, "docs"));
        fs.writeFileSync(path.join(base, "docs", "a.md"), "# Title\n\n## Why not `@pulumi/docker`\n\n## Twice\n\n## Twice\n");
        const markdown = [
            "[ok](docs/a.md) [ok](docs/a.md#why-not-pulumidocker) [ok](docs/a.md#twice-1) [ok](#here) [web](https://example.com/x)",
            "[gone](docs/b.md) [no heading](docs/a.md#nowhere) [out](../elsewhere.md)",
            "`[not a link](docs/c.md)`",
            "```md\n[in a block](docs/d.md)\n# not a heading\n```",
            "## Here",
            "[ref]: docs/e.md",
        ].join("\n\n");
        t.deepEqual(brokenLinks(base, "README.md", markdown), [
            "README.md: docs/b.md points at docs/b.md, which does not exist",
            "README.md: docs/a.md#nowhere names no heading of docs/a.md",
            "README.md: ../elsewhere.md leads out of the checkout",
            "README.md: docs/e.md points at docs/e.md, which does not exist",
        ]);
        t.deepEqual(missingPaths(base, "`docs/a.md` `docs/*.md` `docs/z.md` `scripts/*.sh` `tools/provider/bin/x` `tests/<name>.json`"), ["docs/z.md", "scripts/*.sh"]);
    } finally {
        fs.rmSync(base, { recursive: true, force: true });
    }
});
