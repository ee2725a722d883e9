"""The torch.compile baseline: eager and compiled reference timed interleaved.

Run once per task, GPU, driver and torch version (the orchestrator caches it). The
candidate's own session measures eager again, so its speedup over torch.compile is
(eager / candidate) from that session times (compiled / eager) from this one: both
ratios come from paired, interleaved samples, which cancels drift between sessions.
"""

from __future__ import annotations

import secrets
import time

import torch

from kernelsmith.harness import timing
from kernelsmith.harness.tensors import clone as _clone, fresh_inputs as _fresh_inputs
from kernelsmith.harness.loader import load_module


def run(args: dict) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    task = load_module(args["task_path"], "ks_task")
    torch.manual_seed(secrets.randbits(31))
    model = task.Model(*task.get_init_inputs()).to(dev)
    cfg = timing.TimingConfig(**args.get("timing", {}))
    sets = [_fresh_inputs(task, dev) for _ in range(cfg.input_sets)]
    out: dict = {"eager": None, "compiled": None, "ratio": None, "error": ""}
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(model, mode=args.get("mode", "default"))
        with torch.no_grad():
            compiled(*_clone(sets[0]))
        torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - e.g. no Triton: report, don't fail
        out["error"] = f"torch.compile failed: {type(exc).__name__}: {str(exc)[:500]}"
        compiled = None
    out["compile_seconds"] = time.perf_counter() - t0

    def eager(*a):
        with torch.no_grad():
            return model(*a)

    sides = {"eager": eager}
    if compiled is not None:
        def comp(*a):
            with torch.no_grad():
                return compiled(*a)
        sides["compiled"] = comp
    flush = timing.L2Flusher(dev, cfg.hide_launch, cfg.warm_ms)
    state = {"i": 0}

    def next_args():
        state["i"] += 1
        return _clone(sets[(state["i"] // len(sides)) % len(sets)])

    for fn in sides.values():
        timing.warmup(fn, _clone(sets[0]), cfg)
    samples = timing.interleave(sides, [next_args], flush, cfg)
    out["eager"] = timing.summarize(samples["eager"].event_ms)
    if compiled is not None:
        out["compiled"] = timing.summarize(samples["compiled"].event_ms)
        out["ratio"] = out["compiled"]["median_ms"] / out["eager"]["median_ms"]
    return out
