"""Evaluator cost on one GPU: a mixed batch, run-to-run spread, and a 200-candidate soak.

Not a test: it prints figures (medians and ratios from this one run). Usage:
    python benchmarks/eval_throughput.py [--batch 24] [--spread 8] [--soak 200] [--deadline S] [--json OUT]
The batch is compared with KernelBench's harness on the same kind of machine (ANCHORS:
24 candidates, about 14 s each end to end on one H200).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kernelsmith.config import HARNESS_VERSION, EvalConfig  # noqa: E402
from kernelsmith.evaluate.evaluator import Evaluator  # noqa: E402
from kernelsmith.sandbox.base import physical_gpu  # noqa: E402
from kernelsmith.sandbox.local import LocalSandbox  # noqa: E402
from kernelsmith.task import Task  # noqa: E402

SOL = ROOT / "tests" / "fixtures" / "solutions"
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
FAST_HOSTILE = ["torch_op", "fallback", "nan", "shape", "dtype", "exception", "unwritten", "illegal", "alias"]


def fixtures() -> list[tuple[str, Task, str]]:
    manifest = json.loads((SOL / "manifest.json").read_text())
    out = []
    for stem, entry in manifest.items():
        task = Task.load(ROOT / entry["task"])
        for sol in entry["solutions"]:
            out.append((f"{stem}/{sol}", task, (SOL / stem / sol).read_text()))
    return out


def hostile() -> list[tuple[str, Task, str]]:
    path = HOSTILE / "manifest.json"
    if not path.exists():
        return []
    task = Task.load(HOSTILE / "task.py")
    picked = [e for e in json.loads(path.read_text()) if any(k in e["file"] for k in FAST_HOSTILE)]
    return [(f"hostile/{e['file']}", task, (HOSTILE / e["file"]).read_text()) for e in picked]


def gpu_state() -> str:
    """SM and memory clocks, power and active throttle reasons, to tell a drifting GPU
    from a drifting measurement."""
    try:
        out = subprocess.run(["nvidia-smi", "-i", physical_gpu(0), "--format=csv,noheader", "--query-gpu="
                              "clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active"],
                             capture_output=True, text=True)
    except OSError as exc:
        return f"nvidia-smi not run: {exc}"
    return out.stdout.strip() if out.returncode == 0 else f"nvidia-smi failed: {out.stderr.strip()[:100]}"


def _timing_record(r) -> dict:
    """What one evaluation's timing says, raw samples included, for offline analysis."""
    t = r.timing
    return {"speedup": r.speedup, "ci": t.speedup_eager_ci, "cand_ms": t.candidate.median_ms,
            "eager_ms": t.eager.median_ms, "cand_cv": t.candidate.cv, "eager_cv": t.eager.cv,
            "n": len(t.candidate.samples_ms), "cand_launch_ms": t.candidate_launch_ms,
            "eager_launch_ms": t.eager_launch_ms, "cand_samples": t.candidate.samples_ms,
            "eager_samples": t.eager.samples_ms}


def gpu_mem_used_mib() -> int:
    out = subprocess.run(["nvidia-smi", "-i", physical_gpu(0), "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else -1


def rss_mib() -> float:
    with open("/proc/self/status") as f:  # no psutil on the GPU machine
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def batch(ev: Evaluator, items) -> dict:
    t0 = time.perf_counter()
    results = ev.evaluate_many([(t, c) for _, t, c in items])
    total = time.perf_counter() - t0
    rows = []
    for (name, _, _), r in zip(items, results):
        w = r.wall
        rows.append({"name": name, "verdict": r.verdict.value, "backend": r.compile.backend if r.compile else "",
                     "compile_s": w.get("compile", 0.0), "startup_s": w.get("startup", 0.0),
                     "load_s": w.get("load", 0.0), "check_s": w.get("check", 0.0), "time_s": w.get("time", 0.0),
                     "speedup": r.speedup, "cand_ms": r.timing.candidate.median_ms if r.timing and r.timing.candidate else None})
    return {"total_s": total, "n": len(items), "per_candidate_s": total / len(items),
            "candidates_per_hour": 3600 * len(items) / total, "rows": rows}


def spread(ev: Evaluator, items, want: int) -> list[dict]:
    """Each correct kernel of > 50 us evaluated twice: how far apart the two speedups land,
    whether the second falls inside the first's CI, and the raw samples and GPU state."""
    out = []
    for name, task, code in items:
        if len(out) >= want:
            break
        before = gpu_state()
        a = ev.evaluate(task, code)
        if not (a.correct and a.timing.candidate.median_ms > 0.05):
            continue
        between = gpu_state()
        b = ev.evaluate(task, code)
        if b.correct:
            lo, hi = a.timing.speedup_eager_ci
            out.append({"name": name, "ms": a.timing.candidate.median_ms, "s1": a.speedup, "s2": b.speedup,
                        "rel_diff": abs(b.speedup / a.speedup - 1), "inside_ci": lo <= b.speedup <= hi,
                        "gpu_state": [before, between, gpu_state()],
                        "runs": [_timing_record(a), _timing_record(b)]})
    return out


def soak(ev: Evaluator, items, n: int, stop_at: float | None = None, progress=None) -> dict:
    """n evaluations in a row (fewer if stop_at passes): GPU memory and the orchestrator's
    RSS read every 20, to show neither grows; progress(partial) after each reading, so a
    run cut by an outside limit keeps what it measured."""
    mem, rss = [], []
    verdicts: dict[str, int] = {}
    t0 = time.perf_counter()
    done = 0
    for i in range(n):
        if stop_at and time.perf_counter() > stop_at:
            break
        name, task, code = items[i % len(items)]
        r = ev.evaluate(task, code)
        done += 1
        verdicts[r.verdict.value] = verdicts.get(r.verdict.value, 0) + 1
        if i % 20 == 0:
            mem.append(gpu_mem_used_mib())
            rss.append(round(rss_mib(), 1))
            if progress:
                progress({"n": done, "asked": n, "seconds": time.perf_counter() - t0, "gpu_mem_used_mib": mem,
                          "orchestrator_rss_mib": rss, "verdicts": verdicts, "partial": True})
    mem.append(gpu_mem_used_mib())
    rss.append(round(rss_mib(), 1))
    return {"n": done, "asked": n, "seconds": time.perf_counter() - t0, "gpu_mem_used_mib": mem,
            "orchestrator_rss_mib": rss, "verdicts": verdicts}


def pick_batch(n: int) -> list[tuple[str, Task, str]]:
    """A KernelBench-sized mixed batch: every load_inline fixture, then CuPy fixtures
    (correct and wrong alternating) up to n."""
    allf = fixtures()
    inline = [x for x in allf if x[0].endswith("correct_inline.py")]
    rest = [x for x in allf if not x[0].endswith("correct_inline.py")]
    return (inline + rest)[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=24, help="candidates in the cold/warm batch (KernelBench's figure is for 24)")
    ap.add_argument("--spread", type=int, default=8, help="correct kernels timed twice for run-to-run spread")
    ap.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                    help="evaluate the batch a second time on a warm build cache")
    ap.add_argument("--soak", type=int, default=200)
    ap.add_argument("--deadline", type=float, default=0.0, help="stop the soak after this many seconds in all (0: none)")
    ap.add_argument("--hide-launch", action=argparse.BooleanOptionalAction, default=None,
                    help="repeat the L2 flush until it outlasts the host's launch (default: on; off together "
                         "with --warm-ms 0 is harness version 3's single flush; harness/timing.py)")
    ap.add_argument("--warm-ms", type=float, default=None,
                    help="keep the GPU busy this long before each timed call (default: 2 ms, TimingConfig's)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ks-bench"))
    args = ap.parse_args()
    start = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    args.cache.chmod(0o755)
    timing_opts = {k: v for k, v in (("hide_launch", args.hide_launch), ("warm_ms", args.warm_ms)) if v is not None}
    cfg = EvalConfig(cache_dir=args.cache, use_cache=False, compile_baseline=False, eval_timeout=60, timing=timing_opts)
    report: dict = {}

    def save() -> None:  # after every phase: a run cut short keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))

    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        t0 = time.perf_counter()
        ev.probe()
        report["probe_s"] = time.perf_counter() - t0
        report["gpu"] = ev.system().gpu
        # options not given are harness/timing.py's TimingConfig defaults of this harness version
        # (not imported here: this process stands for the orchestrator, which never loads torch)
        report["timing_options"] = {"harness_version": HARNESS_VERSION, **timing_opts}
        report["ceilings"] = ev.probe_info.get("ceilings")
        items = pick_batch(args.batch)
        if items:  # --batch 0: only the spread and the soak
            report["batch_cold"] = batch(ev, items)  # cold build cache: compiles included
            save()
        if items and args.warm:
            report["batch_warm"] = batch(ev, items)  # warm build cache: only the GPU side
            save()
        big = [x for x in fixtures() if "correct" in x[0]]
        if args.spread:  # build in parallel first: the spread times evaluations, not nvcc
            ev.precompile([(t, c) for _, t, c in big[:2 * args.spread]])
        report["spread"] = spread(ev, big, args.spread) if args.spread else []
        save()
        ev.config = EvalConfig(cache_dir=args.cache, use_cache=False, compile_baseline=False,
                               timing={"max_seconds": 0.3, "min_samples": 10, **timing_opts})
        # CuPy candidates first: the load_inline builds (about a minute each) run in the
        # background meanwhile, so the soak measures evaluations, not a queue behind nvcc
        pool = sorted(fixtures(), key=lambda x: "load_inline" in x[2]) + hostile()
        if args.soak:
            ev.precompile([(t, c) for _, t, c in pool], wait=False)
        stop_at = start + args.deadline if args.deadline else None
        def progress(partial: dict) -> None:
            report["soak"] = partial
            save()

        report["soak"] = soak(ev, pool, args.soak, stop_at, progress)
        save()
    print_report(report)


def print_report(r: dict) -> None:
    print(f"GPU {r['gpu']}; probe {r['probe_s']:.1f} s; ceilings {r['ceilings']}")
    for label in ("batch_cold", "batch_warm"):
        if label not in r:
            continue
        b = r[label]
        rows = b["rows"]
        med = {k: statistics.median(x[k] for x in rows) for k in ("compile_s", "startup_s", "load_s", "check_s", "time_s")}
        print(f"{label}: {b['n']} candidates in {b['total_s']:.1f} s = {b['per_candidate_s']:.2f} s/candidate, "
              f"{b['candidates_per_hour']:.0f}/hour; medians " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    for label in [x for x in ("batch_cold", "batch_warm") if x in r]:
        for backend in ("load_inline", "cupy"):
            rows = [x for x in r[label]["rows"] if x["backend"] == backend]
            if rows:
                gpu = [x["startup_s"] + x["load_s"] + x["check_s"] + x["time_s"] for x in rows]
                print(f"{label} {backend}: {len(rows)} candidates, GPU-side seconds per candidate median "
                      f"{statistics.median(gpu):.2f}, compile median {statistics.median(x['compile_s'] for x in rows):.2f}")
    cold = r.get("batch_cold", {"rows": []})["rows"]
    cupy = [x["compile_s"] + x["load_s"] for x in cold if x["backend"] == "cupy"]
    if cupy:
        print(f"CuPy path, compile (nvcc check) + load (NVRTC) median {statistics.median(cupy):.2f} s, max {max(cupy):.2f} s")
    print(f"{'candidate':55s} {'verdict':14s} {'compile':>8s} {'startup':>8s} {'load':>6s} {'check':>6s} {'time':>6s} {'speedup':>8s}")
    for x in cold:
        sp = f"{x['speedup']:.3f}" if x["speedup"] else "-"
        print(f"{x['name'][:55]:55s} {x['verdict']:14s} {x['compile_s']:8.2f} {x['startup_s']:8.2f} "
              f"{x['load_s']:6.2f} {x['check_s']:6.2f} {x['time_s']:6.2f} {sp:>8s}")
    for s in r["spread"]:
        a, b = s.get("runs") or [{}, {}]
        extra = (f"; cand {a['cand_ms']:.4f}/{b['cand_ms']:.4f} ms, eager {a['eager_ms']:.4f}/{b['eager_ms']:.4f} ms, "
                 f"launch {a['cand_launch_ms'] or 0:.3f}/{a['eager_launch_ms'] or 0:.3f} ms, n {a['n']}/{b['n']}; "
                 f"{s['gpu_state'][0]}" if a else "")
        print(f"spread {s['name']}: {s['ms']:.3f} ms, speedup {s['s1']:.4f} vs {s['s2']:.4f} ({s['rel_diff']:.2%}, "
              f"{'inside' if s.get('inside_ci') else 'outside'} the first CI){extra}")
    so = r["soak"]
    print(f"soak: {so['n']} of {so['asked']} candidates in {so['seconds']:.0f} s; verdicts {so['verdicts']}; "
          f"GPU memory used (MiB) {so['gpu_mem_used_mib']}; orchestrator RSS (MiB) {so['orchestrator_rss_mib']}")


if __name__ == "__main__":
    main()
