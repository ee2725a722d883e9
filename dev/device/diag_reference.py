"""Why a launch-bound reference reads slower in the timed phase than before the candidate
loaded (hpc/006_cg on an H200, 2026-12-04: 0.80 ms pristine, 1.4-1.9 ms timed, for CUDA,
CuPy and Triton candidates alike, so `reference_slowed`).

Times the CG reference with the harness's own timing.interleave in the protocols the two
phases use, in one process, without the candidate: alone on two alternating input sets
(the pristine protocol), alone on fresh inputs per round, and paired with a fast second
side (what the timed phase does), then one real evaluation of the CUDA CG candidate with
its timing record. Usage: python3 dev/device/diag_reference.py [TASK] [CANDIDATE]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernelsmith.harness import timing  # noqa: E402
from kernelsmith.harness.tensors import clone, fresh_inputs  # noqa: E402
from kernelsmith.task import Task  # noqa: E402


def line(tag: str, s: timing.Samples, flush) -> None:
    med = timing.median_ci(s.event_ms)
    print(f"{tag:44s} event {med[0]:.4f} ms [{med[1]:.4f}, {med[2]:.4f}] n={len(s.event_ms)} "
          f"launch {timing.median_ci(s.launch_ms)[0]:.4f} ms  cover {flush.hide_ms:.3f} ms "
          f"passes {flush.passes()}", flush=True)


def alone(call, args, dev, cfg, tag: str) -> None:
    flush = timing.L2Flusher(dev, cfg.hide_launch, cfg.warm_ms)
    line(f"  {tag} (TEARDOWN_CUPTI={os.environ.get('TEARDOWN_CUPTI')})",
         timing.interleave({"reference": call}, [args], flush, cfg)["reference"], flush)


def main() -> None:
    task_path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "tasks/hpc/level1/006_cg.py")
    cand_path = Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "benchmarks/hpc/cuda/006_cg.py")
    task = Task.load(task_path)
    import importlib.util
    spec = importlib.util.spec_from_file_location("ks_diag_task", task_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dev = torch.device("cuda:0")
    ref = mod.Model(*mod.get_init_inputs()).to(dev).eval()
    cfg = timing.TimingConfig(max_seconds=1.5)

    def call(*a):
        with torch.no_grad():
            return ref(*a)

    sets = [fresh_inputs(mod, dev) for _ in range(2)]
    n = {"i": 0}

    def alternating():
        n["i"] += 1
        return clone(sets[n["i"] % 2])

    def fresh():
        return fresh_inputs(mod, dev)

    def fast(*a):
        return a[-1] * 2.0

    timing.warmup(call, clone(sets[0]), cfg)
    if os.environ.get("KS_DIAG_PROFILE_ONLY"):  # the child: before and after one profiled call
        alone(call, alternating, dev, cfg, "before any profiler")
        from torch.profiler import ProfilerActivity, profile  # Kineto as is (no kernelsmith setting)
        for k in range(2):
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                call(*alternating())
                torch.cuda.synchronize()
            kernels = sum(1 for e in prof.events() if "CUDA" in str(getattr(e, "device_type", "")))
            print(f"  profiled call {k + 1}: {kernels} GPU events seen", flush=True)
            alone(call, alternating, dev, cfg, f"after profiled call {k + 1}")
        return
    for tag, sides, args in [
        ("alone, 2 alternating sets (pristine)", {"reference": call}, alternating),
        ("alone, fresh inputs per round", {"reference": call}, fresh),
        ("with a fast side, alternating sets", {"reference": call, "fast": fast}, alternating),
        ("with a fast side, fresh inputs per round", {"reference": call, "fast": fast}, fresh),
    ]:
        flush = timing.L2Flusher(dev, cfg.hide_launch, cfg.warm_ms)
        s = timing.interleave(sides, [args], flush, cfg)
        line(tag, s["reference"], flush)
        if "fast" in s:
            line("  (the fast side)", s["fast"], flush)
    # CUPTI after torch.profiler: Kineto leaves it attached unless TEARDOWN_CUPTI=1
    # (pytorch/pytorch#144455); each setting in a fresh process
    for value in (None, "0", "1"):
        env = {k: v for k, v in os.environ.items() if k != "TEARDOWN_CUPTI"}
        if value is not None:
            env["TEARDOWN_CUPTI"] = value
        env["KS_DIAG_PROFILE_ONLY"] = "1"
        print(f"-- child, TEARDOWN_CUPTI={value}", flush=True)
        subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env, timeout=120)

    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox

    import tempfile
    cache = Path(tempfile.mkdtemp(prefix="ks-diag-", dir="/tmp"))
    cache.chmod(0o755)
    with Evaluator(EvalConfig(cache_dir=cache, use_cache=False, compile_baseline=False,
                              timing={"max_seconds": 1.0}), sandbox=LocalSandbox()) as ev:
        r = ev.evaluate(task, cand_path.read_text())
    print("EVAL", r.verdict.value, r.error.value, r.message[:300], flush=True)
    print("TIMING", json.dumps(r.to_dict().get("timing"), default=str)[:4000], flush=True)

if __name__ == "__main__":
    main()
