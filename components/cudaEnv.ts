// The CUDA toolkit environment: PATH, LD_LIBRARY_PATH and CUDA_HOME for login shells and for the service.
//
// The guides put these exports in ~/.bashrc. A systemd unit never reads .bashrc, and FlashInfer compiles
// kernels with nvcc at run time and fails without CUDA_HOME, so the same values also go to an
// EnvironmentFile that the unit loads. Login shells get an /etc/profile.d file of their own, which
// never touches the user's lines.
import * as pulumi from "@pulumi/pulumi";
import type { WorkstationConfig } from "./config";
import type { Connection } from "./host";
import { HostState, ready } from "./hostState";
import type { Observed, Piece } from "./observe";
import { contentSha, expectFile, managedHeader, ownFile, probeFile, q, writeFile } from "./shell";

export const profilePath = "/etc/profile.d/vllm-workstation-cuda.sh";
/** The stack's own config directory; the service's files live here too. */
export const etcDir = "/etc/vllm-workstation";
export const serviceEnvPath = `${etcDir}/cuda.env`;

/** For login shells: prepends without duplicating, so sourcing it twice changes nothing. */
export function renderProfile(cuda: WorkstationConfig["cuda"]): string {
    return (
        managedHeader() +
        `export CUDA_HOME=${q(cuda.home)}\n` +
        `case ":$PATH:" in *":$CUDA_HOME/bin:"*) ;; *) export PATH="$CUDA_HOME/bin:$PATH" ;; esac\n` +
        // Each directory is prepended in turn, so WSL's libcuda comes last in the loop to end up first.
        `for d in "$CUDA_HOME/lib64" ${q(cuda.wslLibDir)}; do\n` +
        `  case ":\${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="$d\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac\n` +
        `done\n`
    );
}

/** For systemd's EnvironmentFile=: plain KEY=value lines, no shell expansion. */
export function renderServiceEnv(cuda: WorkstationConfig["cuda"]): string {
    const path = [`${cuda.home}/bin`, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    return (
        managedHeader() +
        `CUDA_HOME=${cuda.home}\n` +
        `PATH=${path.join(":")}\n` +
        // WSL's libcuda first: a stub libcuda from the toolkit would shadow the real driver.
        `LD_LIBRARY_PATH=${cuda.wslLibDir}:${cuda.home}/lib64\n`
    );
}

export function scripts(cuda: WorkstationConfig["cuda"]) {
    const profile = renderProfile(cuda);
    const env = renderServiceEnv(cuda);
    return {
        // /etc/profile.d is shared with the distribution: the stack takes only its own file there.
        apply: [`own_dir ${q(etcDir)}`, ownFile(profilePath, profile), writeFile(profilePath, profile), writeFile(serviceEnvPath, env)].join("\n"),
        probe: [probeFile("profile", profilePath), probeFile("service-env", serviceEnvPath)].join("\n"),
        expected: [expectFile("profile", profile), expectFile("service-env", env)].join("\n"),
        // The service's files are gone by now: destroy removes the service before the environment it uses.
        remove: [`own_remove_file ${q(profilePath)}`, `rm -f ${q(serviceEnvPath)}`, `own_release_dir ${q(etcDir)}`].join("\n"),
    };
}

/** The piece this component declares, as the program looks at it first (observe.ts). */
export function cudaPiece(cuda: WorkstationConfig["cuda"]): Piece {
    return {
        name: "cuda",
        what: "the CUDA environment",
        probe: scripts(cuda).probe,
        claims: [
            { path: etcDir, kind: "dir", sha256: null, option: null },
            { path: profilePath, kind: "file", sha256: contentSha(renderProfile(cuda)), option: null },
        ],
    };
}

export interface CudaEnvironmentArgs {
    readonly connection: Connection;
    readonly cuda: WorkstationConfig["cuda"];
    /** What the program saw of each piece this run, by name (observe.ts); null: the last refresh's. */
    readonly observed: Observed | null;
}

export class CudaEnvironment extends pulumi.ComponentResource {
    /** The EnvironmentFile the service loads. */
    public readonly serviceEnvFile: pulumi.Output<string>;

    constructor(name: string, args: CudaEnvironmentArgs, opts?: pulumi.ComponentResourceOptions) {
        super("vllm-workstation:index:CudaEnvironment", name, {}, opts);
        const piece = cudaPiece(args.cuda);
        const files = new HostState(
            `${name}-files`,
            { connection: args.connection, ...scripts(args.cuda), what: piece.what, observed: args.observed?.get(piece.name) },
            { parent: this },
        );
        this.serviceEnvFile = ready(files, serviceEnvPath);
        this.registerOutputs({ serviceEnvFile: this.serviceEnvFile });
    }
}
