// npm run up | preview | destroy | refresh | cancel [-- --stack NAME] [--expect-no-changes]
//
// Runs the workstation program through the real Pulumi engine with the local file backend, for machines
// where the CLI was built from source (see engine.ts). With an official Pulumi install, plain
// `pulumi up` / `pulumi preview` / `pulumi destroy` in the project directory do the same.
import { inProcess, openStack, projectRoot } from "./engine";
import { lookingAhead, workstationProgram } from "../components/program";

const usage = "usage: stack.js up|preview|destroy|refresh|cancel [--stack NAME] [--expect-no-changes]";

/** What the engine printed on stdout, already shown as it came. */
let streamed = "";

/**
 * What a failed command adds to what the engine already printed: its error carries the command line and
 * all of its output again, so only the lines not shown yet are kept (the CLI's own stderr).
 */
function unseen(errorText: string, shown: string): string {
    const seen = new Set(shown.split("\n").map((l) => l.trim()).filter((l) => l !== ""));
    return errorText
        .replace(/^Command failed with exit code \d+: .*\n?/, "")
        .split("\n")
        .filter((l) => !seen.has(l.trim()))
        .join("\n")
        .trim();
}

async function main(argv: string[]): Promise<number> {
    const [op, ...rest] = argv;
    let stack = process.env.PULUMI_STACK ?? "dev";
    let expectNoChanges = false;
    for (let i = 0; i < rest.length; i++) {
        if (rest[i] === "--stack") stack = rest[++i];
        else if (rest[i] === "--expect-no-changes") expectNoChanges = true;
        else throw new Error(`unknown argument ${rest[i]}\n${usage}`);
    }
    const s = await openStack({ stack, program: workstationProgram });
    const onOutput = (out: string) => {
        streamed += out;
        process.stdout.write(out);
    };
    // The program handed to the engine for this run replaces the one openStack guards: guarded too, so
    // a refusal is reported once (engine.ts, inProcess).
    const program = inProcess(lookingAhead(projectRoot, stack));
    switch (op) {
        case "up":
            await s.up({ onOutput, expectNoChanges, program });
            break;
        case "preview": {
            const r = await s.preview({ onOutput, expectNoChanges, program });
            // Exit 2 when something would change, so scripts can tell drift from failure.
            const changes = Object.entries(r.changeSummary).filter(([k]) => k !== "same").reduce((n, [, v]) => n + (v ?? 0), 0);
            return changes > 0 ? 2 : 0;
        }
        case "destroy":
            await s.destroy({ onOutput });
            break;
        case "refresh":
            await s.refresh({ onOutput });
            break;
        case "cancel":
            // Clears the lock a killed run (a closed lid, a lost SSH session) left in this project's
            // backend; a plain `pulumi cancel` would go to whatever backend the CLI is logged in to.
            await s.cancel();
            console.log(`stack ${stack}: no run holds the lock now; run up again to converge`);
            break;
        default:
            throw new Error(usage);
    }
    return 0;
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
        // The engine already printed the diagnostics; the command error's own text adds only noise.
        const text = unseen(String((err as { commandResult?: { stderr?: string } }).commandResult?.stderr ?? err.message), streamed);
        if (text !== "") console.error(text);
        if (/the stack is currently locked/.test(text)) {
            // The engine's advice (`pulumi cancel`) would reach another backend than this project's.
            console.error("If no other run is going on (a killed or interrupted one left the lock), clear it with: npm run cancel -- --stack <name>");
        }
        process.exit(1);
    },
);
