// The bench's options and the fixed facts of what it measures.
import { defaults } from "../../components/config/schema";

export const MiB = 1 << 20;
export const REPO = "openai/gpt-oss-20b";
export const WEIGHTS = "model-00000-of-00001.safetensors";
export const VENV = defaults.python.venvPath;
export const HF_CACHE = defaults.model.cacheDir;
export const RATE = 100e6;
export const MODEL_URN_SUFFIX = "::workstation-model-files";
/** The size the tests use; its fixture is shared with them and never deleted. */
export const SMALL = 8 * MiB;

export interface Options {
    runs: number;
    quick: boolean;
    large: boolean;
    keepFixtures: boolean;
    /** Weights of the fixture the lifecycle, throughput and kill phases use. */
    big: number;
    /** model.connections of the workstation stack: 1 leaves every file to huggingface_hub alone. */
    connections: number;
    /** One phase alone ("upgrade": its own box and stack), or null: every phase. */
    only: "upgrade" | null;
}

const usage = `usage: npm run bench -- [--runs N] [--quick] [--large] [--keep-fixtures] [--connections N] [--only upgrade]
  --runs N          samples per median (default 3; each run is a fresh converge, N no-op ups, N previews, destroy)
  --quick           1 run, 128 MB fixture instead of 1 GB (a smoke test of the bench)
  --large           also measure the drift probe with a 10 GB model fixture (needs ~25 GB of free disk)
  --keep-fixtures   keep generated model fixtures in $VLLM_WS_CACHE/hf-fixtures for the next run
  --connections N   the stack's model.connections (default: the config's default; 1: huggingface_hub alone)
  --only upgrade    just the upgrade phase: a switch against a plain restart, an install against uv pip sync
                    (its own box and stack; about 2 minutes; its table goes to bench/last-upgrade.json)`;

export function parseArgs(argv: string[]): Options {
    let runs: number | undefined;
    let quick = false;
    let large = false;
    let keepFixtures = false;
    // The config's own default, so the bench measures what a stack gets without the option.
    let connections = defaults.model.connections;
    let only: Options["only"] = null;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--runs") {
            runs = Number(argv[++i]);
            if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs wants a positive integer, got ${argv[i]}\n${usage}`);
        } else if (a.startsWith("--runs=")) {
            runs = Number(a.slice("--runs=".length));
            if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs wants a positive integer, got ${a}\n${usage}`);
        } else if (a === "--quick") quick = true;
        else if (a === "--large") large = true;
        else if (a === "--keep-fixtures") keepFixtures = true;
        else if (a === "--connections") {
            connections = Number(argv[++i]);
            if (!Number.isInteger(connections) || connections < 1 || connections > 16) throw new Error(`--connections wants an integer from 1 to 16, got ${argv[i]}\n${usage}`);
        }
        else if (a === "--only" || a.startsWith("--only=")) {
            const v = a === "--only" ? argv[++i] : a.slice("--only=".length);
            // The other phases share the workstation stack and the fixtures the first ones make.
            if (v !== "upgrade") throw new Error(`--only wants upgrade (the one phase that runs alone), got ${v}\n${usage}`);
            only = v;
        } else if (a === "--help" || a === "-h") {
            console.log(usage);
            process.exit(0);
        } else throw new Error(`unknown argument ${a}\n${usage}`);
    }
    return { runs: runs ?? (quick ? 1 : 3), quick, large, keepFixtures, big: quick ? 128e6 : 1e9, connections, only };
}
