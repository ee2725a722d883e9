"""Where one candidate's seconds go: a diagnostic for the harness's overhead, not a test.

Part 1 evaluates CuPy fixtures through the Evaluator (process sandbox, uncached) and
prints, per candidate, the wall seconds of each stage the harness records plus the
sandbox's own share (job set-up before the harness runs, exit after it returned).
Part 2 runs the GPU stage under cProfile in a child forked from a server-like parent
(heavy modules pre-imported, as the fork server does) and prints the top functions.

    python benchmarks/harness_profile.py [--n 6] [--profile 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STAGES = ["job.setup", "startup.cuda_init", "startup.task_prepare", "startup.task_flops", "startup",
          "load.surface", "load", "check.trials", "check", "verify", "time", "job.exit", "job.total"]


def stages(n: int) -> list[dict]:
    from harness_overhead import items

    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.task import Task

    todo = items(n)
    cache = Path(tempfile.mkdtemp(prefix="ks-prof-"))
    cache.chmod(0o755)
    cfg = EvalConfig(cache_dir=cache, use_cache=False, compile_baseline=False, eval_timeout=120)
    pairs = [(Task.load(Path(x["task"])), x["code"]) for x in todo]
    rows = []
    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        ev.probe()
        ev.precompile(pairs)
        for x, (task, code) in zip(todo, pairs):
            t0 = time.perf_counter()
            r = ev.evaluate(task, code)
            secs = time.perf_counter() - t0
            d = r.to_dict()
            samples = len(((d.get("timing") or {}).get("candidate") or {}).get("samples_ms") or [])
            rows.append({"name": x["name"], "seconds": secs, "verdict": r.verdict.value, "samples": samples,
                         "wall": r.wall})
    print(f"{'candidate':44s} {'s':>6s} " + " ".join(f"{s.split('.')[-1][:9]:>9s}" for s in STAGES) + "  n")
    for row in rows:
        w = row["wall"]
        print(f"{row['name'][:44]:44s} {row['seconds']:6.3f} " + " ".join(f"{w.get(s, 0):9.3f}" for s in STAGES)
              + f"  {row['samples']} {row['verdict']}")
    med = {s: statistics.median(r["wall"].get(s, 0.0) for r in rows) for s in STAGES}
    secs = statistics.median(r["seconds"] for r in rows)
    print(f"{'median':44s} {secs:6.3f} " + " ".join(f"{med[s]:9.3f}" for s in STAGES))
    print(f"outside the job (evaluator, socket, conversion): median "
          f"{statistics.median(r['seconds'] - r['wall'].get('job.total', 0.0) for r in rows):.3f} s")
    return rows


def profiled(k: int, top: int = 40) -> list[str]:
    """cProfile of the GPU stage for the first k CuPy fixtures, each in a fresh forked child."""
    from harness_overhead import items

    from kernelsmith.config import EvalConfig
    from kernelsmith.harness import server

    server._preimport()  # what every job inherits (CUDA stays uninitialised here)
    reports = []
    cfg = EvalConfig()
    for x in items(k):
        work = Path(tempfile.mkdtemp(prefix="ks-cprof-"))
        (work / "cand.py").write_text(x["code"])
        (work / "build").mkdir()
        args = {"task_path": x["task"], "candidate_path": str(work / "cand.py"), "build_dir": str(work / "build"),
                "trials": cfg.trials, "atol": cfg.atol, "rtol": cfg.rtol, "timing": cfg.timing, "ceilings": None}
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            from kernelsmith.harness import evaluate

            prof = cProfile.Profile()
            t0 = time.perf_counter()
            out = prof.runcall(evaluate.run, args)
            wall = time.perf_counter() - t0
            buf = io.StringIO()
            st = pstats.Stats(prof, stream=buf)
            st.sort_stats("cumulative").print_stats(top)
            st.sort_stats("tottime").print_stats(25)
            text = f"== {x['name']}: {out.get('verdict')} in {wall:.3f} s (under cProfile)\n" + buf.getvalue()
            os.write(wfd, text.encode())
            os._exit(0)
        os.close(wfd)
        chunks = []
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        os.waitpid(pid, 0)
        text = b"".join(chunks).decode()
        print(text)
        reports.append(text)
    return reports


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--profile", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = stages(args.n)
    reports = profiled(args.profile) if args.profile else []
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "profiles": reports}, indent=1, default=str))


if __name__ == "__main__":
    main()
