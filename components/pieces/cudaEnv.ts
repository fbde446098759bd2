// The CUDA toolkit environment: PATH, LD_LIBRARY_PATH and CUDA_HOME for login shells and for the service.
//
// The guides put these exports in ~/.bashrc. A systemd unit never reads .bashrc, and FlashInfer compiles
// kernels with nvcc at run time and fails without CUDA_HOME, so the same values also go to an
// EnvironmentFile that the unit loads. Login shells get an /etc/profile.d file of their own, which
// never touches the user's lines.
import type { WorkstationConfig } from "../config/schema";
import type { Piece } from "./observe";
import { contentSha, expectFile, fillFragment, managedHeader, ownFile, probeFile, q, writeFile } from "../host/shell";

export const profilePath = "/etc/profile.d/vllm-workstation-cuda.sh";
/** The stack's own config directory; the service's files live here too. */
export const etcDir = "/etc/vllm-workstation";
export const serviceEnvPath = `${etcDir}/cuda.env`;

/** For login shells (components/pieces/assets/cuda_profile.sh): prepends without duplicating. */
export function renderProfile(cuda: WorkstationConfig["cuda"]): string {
    return `${managedHeader()}${fillFragment("cuda_profile.sh", { CUDA_HOME: q(cuda.home), WSL_LIB: q(cuda.wslLibDir) })}\n`;
}

/** For systemd's EnvironmentFile= (components/pieces/assets/cuda.env): plain KEY=value lines, no shell expansion. */
export function renderServiceEnv(cuda: WorkstationConfig["cuda"]): string {
    // Unquoted: the config's grammar keeps these paths to characters neither systemd nor a shell reads.
    return `${managedHeader()}${fillFragment("cuda.env", { CUDA_HOME: cuda.home, WSL_LIB: cuda.wslLibDir })}\n`;
}

export function scripts(cuda: WorkstationConfig["cuda"]) {
    const profile = renderProfile(cuda);
    const env = renderServiceEnv(cuda);
    return {
        // /etc/profile.d is shared with the distribution: the stack takes only its own file there.
        apply: [`own_dir ${q(etcDir)}`, ownFile(profilePath, profile), writeFile(profilePath, profile), writeFile(serviceEnvPath, env)].join("\n"),
        probe: [probeFile("profile", profilePath), probeFile("service-env", serviceEnvPath)].join("\n"),
        expected: [expectFile("profile", profile), expectFile("service-env", env)].join("\n"),
        remove: fillFragment("cuda_remove.sh", { PROFILE: q(profilePath), SERVICE_ENV: q(serviceEnvPath), ETC_DIR: q(etcDir) }),
    };
}

/** The CUDA environment as a piece: what the program looks at first (observe.ts) and the workstation declares (declarePieces). */
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
