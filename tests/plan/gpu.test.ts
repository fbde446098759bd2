import test from "ava";
import * as fs from "fs";
import * as path from "path";
import { NVIDIA_SMI_QUERY, compareComputeCap, parseComputeCap, parseNvidiaSmiCsv, smName } from "../../components/plan/gpu";

const FIXTURES = path.resolve(__dirname, "../../../tests/fixtures/nvidia-smi");
const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), "utf8");

test("exports the exact query the fixtures were captured with", (t) => {
    t.is(
        NVIDIA_SMI_QUERY,
        "nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap,driver_version --format=csv,noheader,nounits",
    );
});

test("parses the real H100 capture", (t) => {
    const r = parseNvidiaSmiCsv(fixture("h100-real.csv"));
    t.deepEqual(r, {
        ok: true,
        gpus: [
            {
                index: 0,
                name: "NVIDIA H100 80GB HBM3",
                memoryTotalMiB: 81559,
                memoryFreeMiB: 81079,
                computeCap: "9.0",
                driverVersion: "580.159.04",
            },
        ],
    });
});

test("parses the real H200 capture", (t) => {
    t.deepEqual(parseNvidiaSmiCsv(fixture("h200-real.csv")), {
        ok: true,
        gpus: [{ index: 0, name: "NVIDIA H200", memoryTotalMiB: 143771, memoryFreeMiB: 143156, computeCap: "9.0", driverVersion: "580.159.04" }],
    });
});

const cards: Array<[string, string, number, string]> = [
    ["rtx3060.csv", "NVIDIA GeForce RTX 3060", 12288, "8.6"],
    ["rtx4070.csv", "NVIDIA GeForce RTX 4070", 12282, "8.9"],
    ["rtx4060ti.csv", "NVIDIA GeForce RTX 4060 Ti", 16380, "8.9"],
    ["rtx4080.csv", "NVIDIA GeForce RTX 4080", 16376, "8.9"],
    ["rtx3090.csv", "NVIDIA GeForce RTX 3090", 24576, "8.6"],
    ["rtx4090.csv", "NVIDIA GeForce RTX 4090", 24564, "8.9"],
    ["rtx5090.csv", "NVIDIA GeForce RTX 5090", 32607, "12.0"],
    ["t4.csv", "Tesla T4", 15360, "7.5"],
    ["rtx2080ti.csv", "NVIDIA GeForce RTX 2080 Ti", 11264, "7.5"],
];
for (const [file, name, total, cc] of cards) {
    test(`parses the ${name} fixture`, (t) => {
        const r = parseNvidiaSmiCsv(fixture(file));
        if (!r.ok) return t.fail(r.errors.join("\n"));
        t.is(r.gpus.length, 1);
        t.like(r.gpus[0], { index: 0, name, memoryTotalMiB: total, computeCap: cc });
        t.true(r.gpus[0].memoryFreeMiB < total);
    });
}

test("parses one record per GPU, skipping blank lines and CRLF endings", (t) => {
    const text = "0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02\r\n\r\n1, NVIDIA GeForce RTX 3090, 24576, 24010, 8.6, 576.02\r\n";
    const r = parseNvidiaSmiCsv(text);
    if (!r.ok) return t.fail(r.errors.join("\n"));
    t.deepEqual(
        r.gpus.map((g) => [g.index, g.name, g.driverVersion]),
        [
            [0, "NVIDIA GeForce RTX 4090", "576.02"],
            [1, "NVIDIA GeForce RTX 3090", "576.02"],
        ],
    );
});

test("treats empty output as no GPU rather than an error", (t) => {
    t.deepEqual(parseNvidiaSmiCsv("\n"), { ok: true, gpus: [] });
});

const malformed: Array<[string, string, string]> = [
    ["a driver error message", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "expected 6 fields"],
    ["a line with a missing field", "0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9", "found 5"],
    ["an index that is not a number", "x, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02", 'index "x"'],
    ["an empty name", "0, , 24564, 23975, 8.9, 576.02", "name is empty"],
    ["memory.total of [N/A]", "0, NVIDIA GeForce RTX 4090, [N/A], 23975, 8.9, 576.02", 'memory.total "[N/A]"'],
    ["memory.free with units", "0, NVIDIA GeForce RTX 4090, 24564, 23975 MiB, 8.9, 576.02", 'memory.free "23975 MiB"'],
    ["more free than total memory", "0, NVIDIA GeForce RTX 4090, 24564, 30000, 8.9, 576.02", "is more than memory.total"],
    ["a compute capability that is not MAJOR.MINOR", "0, NVIDIA GeForce RTX 4090, 24564, 23975, [N/A], 576.02", 'compute_cap "[N/A]"'],
    ["an empty driver version", "0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, ", "driver_version is empty"],
];
for (const [what, line, expected] of malformed) {
    test(`rejects ${what}, quoting the line`, (t) => {
        const r = parseNvidiaSmiCsv(line + "\n");
        if (r.ok) return t.fail("parsed");
        t.is(r.errors.length, 1);
        t.true(r.errors[0].includes(JSON.stringify(line.trim())), r.errors[0]);
        t.true(r.errors[0].includes(expected), r.errors[0]);
    });
}

test("reports every malformed line at once, with its line number", (t) => {
    const r = parseNvidiaSmiCsv("garbage\n0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02\n1, X, a, b, 8.6, 1\n");
    if (r.ok) return t.fail("parsed");
    t.is(r.errors.length, 3);
    t.true(r.errors[0].startsWith('line 1 "garbage"'));
    t.true(r.errors[1].startsWith("line 3 ") && r.errors[1].includes("memory.total"));
    t.true(r.errors[2].startsWith("line 3 ") && r.errors[2].includes("memory.free"));
});

test("rejects the same index twice", (t) => {
    const line = "0, NVIDIA GeForce RTX 4090, 24564, 23975, 8.9, 576.02";
    t.deepEqual(parseNvidiaSmiCsv(`${line}\n${line}\n`), { ok: false, errors: ["index 0 appears more than once"] });
});

test("names architectures the way CUDA does", (t) => {
    t.is(smName({ major: 8, minor: 9 }), "sm_89");
    t.is(smName({ major: 12, minor: 0 }), "sm_120");
    t.deepEqual(parseComputeCap("12.0"), { major: 12, minor: 0 });
    t.is(parseComputeCap("12"), null);
});

test("orders compute capabilities by major, then minor", (t) => {
    t.true(compareComputeCap({ major: 12, minor: 0 }, { major: 8, minor: 9 }) > 0);
    t.true(compareComputeCap({ major: 7, minor: 5 }, { major: 8, minor: 0 }) < 0);
    t.is(compareComputeCap({ major: 9, minor: 0 }, { major: 9, minor: 0 }), 0);
});
