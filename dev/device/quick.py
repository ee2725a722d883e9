"""A short GPU check: a handful of fixtures and hostile candidates through one Evaluator.

Prints one line per candidate (verdict, error, speedup, wall split). For tight device
budgets; the full suite is dev/device/gpu_suite.sh.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernelsmith.config import EvalConfig  # noqa: E402
from kernelsmith.evaluate.evaluator import Evaluator  # noqa: E402
from kernelsmith.sandbox.local import LocalSandbox  # noqa: E402
from kernelsmith.task import Task  # noqa: E402

SOL = ROOT / "tests" / "fixtures" / "solutions"
HOS = ROOT / "tests" / "fixtures" / "hostile"
ITEMS = [
    ("tasks/level1/001_leaky_relu_scale.py", SOL / "level1_001_leaky_relu_scale" / "correct_cupy.py"),
    ("tasks/level1/001_leaky_relu_scale.py", SOL / "level1_001_leaky_relu_scale" / "wrong.py"),
    ("tasks/level1/002_row_softmax.py", SOL / "level1_002_row_softmax" / "correct_cupy.py"),
    ("tasks/level1/004_matmul.py", SOL / "level1_004_matmul" / "correct_cupy.py"),
    ("tests/fixtures/hostile/task.py", HOS / "good_cupy.py"),
    ("tests/fixtures/hostile/task.py", HOS / "11_partial_write.py"),
    ("tests/fixtures/hostile/task.py", HOS / "14_return_input.py"),
    ("tests/fixtures/hostile/task.py", HOS / "63_null_write.py"),
    ("tests/fixtures/hostile/task.py", HOS / "good_cupy.py"),
    ("tests/fixtures/hostile/task.py", HOS / "70_nan_output.py"),
    ("tests/fixtures/hostile/task.py", HOS / "19_cache_by_ptr.py"),
]


def main() -> None:
    cache = Path(tempfile.mkdtemp(prefix="ks-quick-", dir="/tmp"))
    cache.chmod(0o755)
    cfg = EvalConfig(cache_dir=cache, use_cache=False, compile_baseline=False, eval_timeout=40,
                     timing={"max_seconds": 1.0})
    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        t0 = time.perf_counter()
        info = ev.probe()
        print(f"probe {time.perf_counter() - t0:.1f} s; ceilings {info.get('ceilings')}", flush=True)
        for task, cand in ITEMS:
            t0 = time.perf_counter()
            r = ev.evaluate(Task.load(ROOT / task), cand.read_text())
            w = " ".join(f"{k}={v:.2f}" for k, v in r.wall.items())
            t = r.timing
            sp = (f"speedup {t.speedup_eager:.3f} CI [{t.speedup_eager_ci[0]:.3f},{t.speedup_eager_ci[1]:.3f}] "
                  f"cand {t.candidate.median_ms:.4f} ms n={len(t.candidate.samples_ms)} floor-frac "
                  f"{t.bound.fraction if t.bound else float('nan'):.2f}") if t and t.candidate else ""
            print(f"{cand.name:24s} {r.verdict.value:13s} {r.error.value:14s} total {time.perf_counter() - t0:5.2f}s "
                  f"[{w}] {sp} | {r.message[:140]!r}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
