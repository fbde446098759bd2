// Helpers for the workstation lifecycle tests on the box.
import * as fs from "fs";
import * as path from "path";
import type { Box } from "./box";
import { repoRoot } from "./box";
import type { HfEndpoint, PackageIndex } from "../servers";
import { sshTarget } from "./stack";

/** The wheelhouse versions the lifecycle tests pin: 0.24.0 is the first vLLM that can offload under WSL2. */
export const wheelhouse = { vllmVersions: ["0.11.0", "0.24.0"], flashinferVersions: ["0.3.1", "0.6.12"] };

/**
 * The stack config the lifecycle tests and the bench converge the box with: over SSH, Debian's Python
 * on the box (a WSL Ubuntu 24.04 has the default 3.12), the first vLLM that can offload under WSL2 (so
 * a tier switch needs no package change), the local index and Hub, and the 24 GB tier's plan.
 */
export function boxStackConfig(box: Box, index: PackageIndex, hub: HfEndpoint, port: number) {
    return {
        target: sshTarget(box),
        python: { version: "3.11", indexUrl: index.url, vllmVersion: "0.24.0", flashinferVersion: "0.6.12" },
        model: { revision: hub.commitSha, endpoint: hub.url, tiktoken: { baseUrl: hub.tiktoken.baseUrl, files: hub.tiktoken.files } },
        gpu: { tier: "24gb" },
        server: { port, healthTimeoutSeconds: 120 },
    };
}

/**
 * Bytes on disk in the partial files (`*.incomplete`: hf's, and the download script's) in a blobs
 * directory: 0 when there is none or no directory. Allocated blocks, not the length: the script writes
 * its ranges in place, so a file is as long as its last range's end long before its bytes are there.
 */
export function partialBytes(blobs: string): number {
    try {
        return fs
            .readdirSync(blobs)
            .filter((f) => f.endsWith(".incomplete"))
            .reduce((n, f) => n + fs.statSync(path.join(blobs, f)).blocks * 512, 0);
    } catch {
        return 0;
    }
}

/**
 * Test doubles for what only a real NVIDIA workstation has: the card nvidia-smi reports (a fixture
 * from tests/fixtures/nvidia-smi) and an nvcc that answers `--version` like CUDA 12.8's.
 */
export async function installGpuDoubles(box: Box, card: string): Promise<void> {
    // The card as the fixture has it, on a Windows driver new enough for every pinned vLLM's wheels
    // (R580 for 0.24.0's CUDA 13.0): the box stands in for a workstation that passes the driver check.
    const csv = fs.readFileSync(path.join(repoRoot, "tests", "fixtures", "nvidia-smi", `${card}.csv`), "utf8").replace(/, [\d.]+$/gm, ", 581.57");
    await box.sh(`cat > /etc/vllm-ws-test/nvidia-smi.csv`, { input: csv });
    await box.sh(
        `install -d /usr/local/cuda-12.8/bin /usr/local/cuda-12.8/lib64 && ln -sfn /usr/local/cuda-12.8 /usr/local/cuda && cat > /usr/local/cuda-12.8/bin/nvcc && chmod 755 /usr/local/cuda-12.8/bin/nvcc`,
        {
            input: `#!/bin/sh
# TEST DOUBLE for CUDA 12.8's nvcc (no toolkit in the throwaway box): answers --version only.
if [ "$1" = --version ]; then
  echo "nvcc: NVIDIA (R) Cuda compiler driver"
  echo "Cuda compilation tools, release 12.8, V12.8.93"
  exit 0
fi
echo "nvcc test double: only --version is implemented" >&2; exit 1
`,
        },
    );
}

/**
 * What the stack could have touched, as one comparable text: files under the system directories
 * with their mode and owner, and the users and groups. Left out: state that changes by itself
 * (systemd's timestamps and journals) and shadow-utils' backup copies (/etc/passwd- and friends).
 */
export async function boxSnapshot(box: Box): Promise<string> {
    return box.sh(
        `{ find /etc /opt /usr/local /var/lib /var/cache /home -xdev -printf '%p %m %u:%g\\n' 2>/dev/null ` +
            // sudo's first-use marker in the SSH user's home is sudo's doing, not the stack's.
            `| grep -vE '^/var/lib/(systemd|dbus|apt|dpkg)/|^/etc/(passwd|group|shadow|gshadow|subuid|subgid)- |^/var/cache/(ldconfig|apt|debconf)/|^/etc/ld.so.cache |/\\.sudo_as_admin_successful ' | sort; ` +
            `getent passwd | sort; getent group | sort; }`,
    );
}

export interface StandinRecord {
    readonly argv: string[];
    /** Every --flag, from the command line and the --config file merged, values as strings. */
    readonly flags: Record<string, string>;
    readonly config: Record<string, string>;
    readonly env: Record<string, string>;
    readonly user: string;
}

/** The last start of the vLLM test double, from the record it prints to the journal. */
export async function serviceRecord(box: Box): Promise<StandinRecord> {
    const line = (await box.sh(`journalctl -u vllm-workstation -o cat --no-pager | grep '^vllm-standin-record: ' | tail -n 1`)).trim();
    const raw = JSON.parse(line.slice("vllm-standin-record: ".length));
    const flags: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw.args as Record<string, unknown>)) flags[k] = String(v);
    const user = (await box.sh(`getent passwd ${Number(raw.uid)} | cut -d: -f1`)).trim();
    // The double masks anything secret-looking in its record (TIKTOKEN_* included); the kernel does not.
    const environ = await box.sh(`tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value vllm-workstation)/environ`);
    const env = Object.fromEntries(environ.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    return { argv: raw.argv, flags, config: raw.config ?? {}, env, user };
}
