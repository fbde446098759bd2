// What the preflight probe reads on a workstation that is ready (components/preflight.ts Facts).
import type { GpuRecord } from "../../components/plan/gpu";
import type { Facts } from "../../components/preflight/facts";

export const WSL2 = "Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f) (gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP Tue Nov 5 00:21:55 UTC 2024\n";
export const NVCC_128 = "nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2025 NVIDIA Corporation\nBuilt on Fri_Feb_21_20:23:50_PST_2025\nCuda compilation tools, release 12.8, V12.8.93\nBuild cuda_12.8.r12.8/compiler.35583870_0\n";
export const RTX4090: GpuRecord = { index: 0, name: "NVIDIA GeForce RTX 4090", memoryTotalMiB: 24564, memoryFreeMiB: 23975, computeCap: "8.9", driverVersion: "576.02" };

/** A WSL2 box that is ready: every check passes with a 24 GB card. */
export const healthy: Facts = {
    gpus: [RTX4090],
    nvidiaSmiError: null,
    procVersion: WSL2,
    wslConf: "[boot]\nsystemd=true\n",
    libcudaPresent: true,
    nvccVersion: NVCC_128,
    memTotalKiB: 32 * 1024 * 1024,
    disks: [
        { role: "model", path: "/var/lib/vllm-workstation/hf", device: "2080", freeBytes: 200e9, usedBytes: 0 },
        { role: "venv", path: "/opt/vllm-workstation/venv", device: "2080", freeBytes: 200e9, usedBytes: 0 },
    ],
    pid1Comm: "systemd",
    claims: [],
};
