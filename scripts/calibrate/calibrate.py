#!/usr/bin/env python3
"""Runs real vLLM on a GPU for each plan in a plans file and records what it did, as one JSON fixture per plan.

The model is gpt-oss-20b's own config.json with dummy weights (no download, no tokenizer), so the memory vLLM
sizes is the real model's. A consumer card is emulated on a bigger GPU by its budget: vLLM sizes weights,
activations, CUDA graphs and KV cache into gpu_memory_utilization x the device's total memory, so the plan's
utilization is rescaled to card GiB x utilization / device GiB. What the emulation does not cover (the startup
check against the card's free memory, the CUDA context outside the budget) the planner models itself.

    python3 calibrate.py PLANS.json OUT_DIR [NAME ...]

Each plan runs in a process of its own (vLLM's memory profile must not see another engine's memory), one after
another, and is written to OUT_DIR/NAME.json whether vLLM started or not.
"""
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "..", "tests", "fixtures", "calibration", "gpt-oss-20b.config.json")
GIB = 1024**3

# What the child reads back from vLLM's log (vllm/v1/worker/gpu_worker.py, vllm/v1/core/kv_cache_utils.py,
# vllm/model_executor/offloader/uva.py in 0.24.0); every matching line is also kept verbatim in the fixture.
PATTERNS = {
    "weightsGiB": r"Model loading took ([\d.]+) GiB",
    "availableKvGiB": r"Available KV cache memory: (-?[\d.]+) GiB",
    "kvTokens": r"GPU KV cache size: ([\d,]+) tokens",
    "maxConcurrency": r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x",
    "nonKvGiB": r"Total non KV cache memory: (-?[\d.]+)GiB",
    "torchPeakIncreaseGiB": r"torch peak memory increase: (-?[\d.]+)GiB",
    "nonTorchIncreaseGiB": r"non-torch forward increase memory: (-?[\d.]+)GiB",
    "profiledWeightsGiB": r"weights memory: (-?[\d.]+)GiB",
    "cudaGraphsGiB": r"Graph capturing finished in \d+ secs?, took (-?[\d.]+) GiB",
    "cudaGraphsEstimateGiB": r"Estimated CUDA graph memory: (-?[\d.]+) GiB total",
    "cpuOffloadedGiB": r"Total CPU offloaded parameters: ([\d.]+)",
    "requestedGiB": r"worker requested memory: ([\d.]+)GiB",
}
FLAGS = {
    "asyncScheduling": (r"Asynchronous scheduling is (enabled|disabled)", None),
    "v2ModelRunner": (r"Using V2 Model Runner", True),
}
KEEP = re.compile(
    r"GiB|KV cache|Asynchronous scheduling|Model Runner|offload|backend|Error|error:|Exception|CUDA graph|"
    r"max_model_len|max_num_seqs|dtype|Marlin|Mxfp4|MXFP4|UVA|pin",
)


def run_all(plans_file: str, out_dir: str, names: list[str]) -> int:
    plans = json.load(open(plans_file))["plans"]
    if names:
        unknown = sorted(set(names) - {p["name"] for p in plans})
        if unknown:
            sys.exit(f"calibrate: no plan named {', '.join(unknown)} in {plans_file}")
        plans = [p for p in plans if p["name"] in names]
    os.makedirs(out_dir, exist_ok=True)
    for plan in plans:
        t0 = time.time()
        log_path = os.path.join(out_dir, plan["name"] + ".log")
        env = dict(os.environ)
        # In-process engine (its peak RSS is the child's), the memory profile in the log, nothing from the network.
        env.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_LOGGING_LEVEL="DEBUG", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", PYTHONUNBUFFERED="1")
        record = os.path.join(out_dir, plan["name"] + ".json")
        limit = plan.get("timeoutSeconds", 240)
        with open(log_path, "w") as log:
            try:
                rc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--one", json.dumps(plan), record],
                    env=env, stdout=log, stderr=subprocess.STDOUT, timeout=limit, check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = f"timeout after {limit} s"
        if not os.path.exists(record):
            # The child died before it could write (killed, timed out, crashed): record that from the outside.
            json.dump({"name": plan["name"], "plan": plan, "started": False, "error": f"exit {rc}"},
                      open(record, "w"), indent=2)
        finish(record, log_path)
        r = json.load(open(record))
        print(f"[calibrate] {plan['name']}: started={r['started']} kvTokens={r.get('measured', {}).get('kvTokens')} "
              f"({time.time() - t0:.0f}s)", flush=True)
    return 0


def finish(record_path: str, log_path: str) -> None:
    """Folds what vLLM logged into the record: the numbers, the flags and the lines that carry them."""
    record = json.load(open(record_path))
    text = open(log_path, errors="replace").read()
    measured = record.setdefault("measured", {})
    for key, pattern in PATTERNS.items():
        hits = re.findall(pattern, text)
        if hits:
            v = hits[-1].replace(",", "")
            measured[key] = int(v) if key == "kvTokens" else float(v)
    for key, (pattern, value) in FLAGS.items():
        m = re.search(pattern, text)
        measured[key] = (value if value is not None else m.group(1)) if m else (False if value is True else None)
    lines = []
    for ln in text.splitlines():
        # The MoE layers log their config once each: keep one of every distinct message.
        msg = re.sub(r"^(?:\(\w+ pid=\d+\) )?(INFO|DEBUG|WARNING|ERROR) \d\d-\d\d [\d:.]+ \[[^\]]*\] ", r"\1 ", ln.strip())[:400]
        if KEEP.search(msg) and msg not in lines:
            lines.append(msg)
    # vLLM's log prefix (level, time, file) varies by run; the message is what the fixture keeps.
    record["log"] = lines[:120]
    if not record["started"]:
        errs = [ln for ln in text.splitlines() if re.search(r"(Error|Exception)\b.*:", ln)]
        if errs:
            record["error"] = errs[-1].strip()[:600]
    json.dump(record, open(record_path, "w"), indent=2)
    open(record_path, "a").write("\n")


def run_one(plan: dict, record_path: str) -> None:
    import tempfile

    import torch

    model_dir = tempfile.mkdtemp(prefix="gpt-oss-20b-config-")
    with open(CONFIG) as src, open(os.path.join(model_dir, "config.json"), "w") as dst:
        dst.write(src.read())
    free, total = torch.cuda.mem_get_info()
    card_gib = plan["cardTotalMiB"] / 1024
    emulated = card_gib * plan["gpuMemoryUtilization"] / (total / GIB)
    kwargs = dict(
        model=model_dir,
        load_format="dummy",
        skip_tokenizer_init=True,
        gpu_memory_utilization=round(emulated, 6),
        cpu_offload_gb=plan["cpuOffloadGb"],
        max_model_len=plan["maxModelLen"],
        max_num_seqs=plan["maxNumSeqs"],
        max_num_batched_tokens=plan["maxNumBatchedTokens"],
        enforce_eager=plan["enforceEager"],
        kv_cache_dtype=plan.get("kvCacheDtype", "auto"),
        attention_backend=plan.get("attentionBackend", "TRITON_ATTN"),
        moe_backend=plan.get("moeBackend", "marlin"),
    )
    if plan.get("asyncScheduling") is not None:
        kwargs["async_scheduling"] = plan["asyncScheduling"]
    record = {
        "name": plan["name"],
        "plan": plan,
        "command": " ".join(["python3", "scripts/calibrate/calibrate.py", "PLANS.json", "OUT_DIR", plan["name"]]),
        "emulation": {
            "device": torch.cuda.get_device_name(0),
            "deviceTotalGiB": round(total / GIB, 3),
            "deviceFreeGiBAtStart": round(free / GIB, 3),
            "cardGiB": round(card_gib, 3),
            "gpuMemoryUtilization": kwargs["gpu_memory_utilization"],
        },
        "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith("VLLM_")},
        "llmKwargs": {k: (v if k != "model" else "<dir with gpt-oss-20b.config.json>") for k, v in kwargs.items()},
        "started": False,
    }
    try:
        import vllm
        from vllm import LLM, SamplingParams

        record["versions"] = {"vllm": vllm.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}
        t0 = time.time()
        llm = LLM(**kwargs)
        record["startSeconds"] = round(time.time() - t0, 1)
        # Started means it also serves: a short batch, then one sequence's decode speed.
        greedy = dict(temperature=0.0, ignore_eos=True, detokenize=False)
        n = min(plan["maxNumSeqs"], 4)
        outs = llm.generate([{"prompt_token_ids": list(range(1000, 1000 + 64 + i))} for i in range(n)],
                            SamplingParams(max_tokens=16, **greedy), use_tqdm=False)
        assert all(len(o.outputs[0].token_ids) == 16 for o in outs), "a request came back short"
        decode = 128
        t1 = time.time()
        llm.generate([{"prompt_token_ids": list(range(2000, 2032))}], SamplingParams(max_tokens=decode, **greedy), use_tqdm=False)
        record["decodeTokensPerSecond"] = round(decode / (time.time() - t1), 1)
        record["started"] = True
    except BaseException as e:  # noqa: BLE001 - every way vLLM refuses a plan is a result here
        record["error"] = f"{type(e).__name__}: {e}"[:600]
    import resource

    record["hostPeakRssGiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
    json.dump(record, open(record_path, "w"), indent=2)
    sys.stdout.flush()
    os._exit(0)  # vLLM's engine threads can hold the interpreter open after a refusal


def link(record_path: str) -> None:
    """Host-to-GPU copy rate from pinned memory: what offloaded weights cross on every step."""
    import torch

    src = torch.empty(1 << 30, dtype=torch.uint8).pin_memory()
    dst = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst.copy_(src)
    torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(5):
        dst.copy_(src, non_blocking=True)
    torch.cuda.synchronize()
    rate = 5 * (1 << 30) / (time.time() - t0)
    json.dump({"device": torch.cuda.get_device_name(0), "pinnedHostToDeviceGiBps": round(rate / GIB, 1),
               "torch": torch.__version__}, open(record_path, "w"), indent=2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--link":
        link(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "--one":
        run_one(json.loads(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) >= 3:
        sys.exit(run_all(sys.argv[1], sys.argv[2], sys.argv[3:]))
    else:
        sys.exit(__doc__)
