"""Reference timings of the HPC suite (tasks/hpc/) on one GPU: the eager PyTorch reference of
each task timed the way the harness times the eager side of every evaluation (L2 flushed and
the launch hidden before each call, three input sets, medians to a 0.7% CI or 8 s), next to
the estimate each task file states (bytes / 4 TB/s or FLOPs / 60 TFLOP/s on an H200).

Not a test: it prints figures from this one run. About a minute on an H200 (eager only):
    python benchmarks/hpc_reference.py [--gpu 0] [--compile] [--json OUT]
--compile also times torch.compile through the harness's baseline job, in this process
(compiling the CG and Jacobi loops adds a minute or more).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HPC = ROOT / "tasks" / "hpc" / "level1"
BW, FLOPS = 4.0e12, 60.0e12  # the H200 figures the task files' estimates use


def estimate_us(name: str, mod, inputs) -> float:
    """The lower bound the task file's comment states: max(bytes / BW, FLOPs / FLOPS)."""
    nbytes = lambda *ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    if name == "001_axpy":
        b, f = nbytes(*inputs) * 3 / 2, 2 * inputs[0].numel()
    elif name == "002_gemv":
        b, f = nbytes(*inputs) + inputs[2].numel() * 4, 2 * inputs[0].numel()
    elif name == "003_gemm":
        A, B, C = inputs
        b, f = nbytes(A, B, C) + C.numel() * 4, 2 * A.shape[0] * A.shape[1] * B.shape[1]
    elif name == "004_spmv_csr":
        crow, col, values, x = inputs
        b, f = nbytes(crow, col, values, x) + x.numel() * 4, 2 * values.numel()
    elif name == "005_jacobi2d":
        b, f = mod.SWEEPS * 3 * inputs[0].numel() * 4, mod.SWEEPS * 6 * inputs[0].numel()
    elif name == "006_cg":
        A, bvec = inputs
        b, f = mod.ITERS * (nbytes(A) + 12 * bvec.numel() * 4), mod.ITERS * (2 * A.numel() + 10 * bvec.numel())
    else:
        raise ValueError(f"no estimate for {name}")
    return max(b / BW, f / FLOPS) * 1e6


def time_eager(path: Path, dev) -> tuple[dict, object, list]:
    import torch

    from kernelsmith.harness import timing
    from kernelsmith.harness.evaluate import _clone, _fresh_inputs
    from kernelsmith.harness.loader import load_module

    task = load_module(str(path), f"ks_hpc_{path.stem}")
    torch.manual_seed(secrets.randbits(31))
    model = task.Model(*task.get_init_inputs()).to(dev)
    cfg = timing.TimingConfig()
    sets = [_fresh_inputs(task, dev) for _ in range(cfg.input_sets)]

    def eager(*a):
        with torch.no_grad():
            return model(*a)

    flush = timing.L2Flusher(dev, cfg.hide_launch, cfg.warm_ms)
    state = {"i": 0}

    def next_args():
        state["i"] += 1
        return _clone(sets[state["i"] % len(sets)])

    timing.warmup(eager, _clone(sets[0]), cfg)
    samples = timing.interleave({"eager": eager}, [next_args], flush, cfg)
    return timing.summarize(samples["eager"].event_ms), task, sets[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (the harness's baseline job)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this benchmark times the references on a GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # as the harness: fp32 means fp32
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda", args.gpu)
    torch.cuda.set_device(dev)
    rows = []
    t_all = time.perf_counter()
    for path in sorted(HPC.glob("[0-9]*.py")):
        t0 = time.perf_counter()
        stats, mod, inputs = time_eager(path, dev)
        est = estimate_us(path.stem, mod, inputs)
        row = {"task": path.stem, "eager_ms": stats["median_ms"], "ci_ms": [stats["ci_low_ms"], stats["ci_high_ms"]],
               "samples": len(stats["samples_ms"]), "estimate_us": est,
               "eager_over_estimate": stats["median_ms"] * 1e3 / est}
        del inputs
        if args.compile:
            from kernelsmith.harness import baseline

            b = baseline.run({"task_path": str(path)})
            row["compiled_ms"] = (b.get("compiled") or {}).get("median_ms")
            row["compile_error"] = b.get("error", "")
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        torch.cuda.empty_cache()
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}, {time.perf_counter() - t_all:.0f} s")
    head = f"{'task':14s} {'eager ms':>10s} {'95% CI':>19s} {'n':>4s} {'estimate us':>12s} {'eager/est':>9s}"
    print(head + ("  compiled ms" if args.compile else ""))
    for r in rows:
        line = (f"{r['task']:14s} {r['eager_ms']:10.4f} [{r['ci_ms'][0]:8.4f},{r['ci_ms'][1]:8.4f}] {r['samples']:4d} "
                f"{r['estimate_us']:12.1f} {r['eager_over_estimate']:9.2f}")
        if args.compile:
            line += f"  {r['compiled_ms']:.4f}" if r.get("compiled_ms") else f"  n/a {r.get('compile_error', '')[:60]}"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(dev), "torch": torch.__version__,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
