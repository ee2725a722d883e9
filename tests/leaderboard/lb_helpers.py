"""A real SQLite runs.db filled through RunStore with hand-built results of known speedups.

Reference set A (5 tasks: relu, gelu, softmax at level 1; matmul, conv at level 2):
  run "a": gpt-a / refine, optimize, H200, 2 LLM calls of $0.50, 1000+500 tokens each
      relu 2.5 (best of incorrect, 1.2, 2.5)   gelu 0.8   matmul 1.6
      conv: first evaluated correct 3.0, then RE-evaluated incorrect (the latest counts: fails)
      softmax 1.0 (correct, not faster)
  run "b": gpt-b / best-of-n, optimize, H200, 1 replayed LLM call of $4.00, 2000+1000 tokens
      relu 1.1  gelu 1.8  matmul 3.0  conv 1.2  softmax incorrect
Reference set B: run "c": gpt-a / refine, bench, A100, label "v2", free:
      relu (ANOTHER VERSION of the reference: a different hash), gelu, softmax, matmul, conv
      all correct at 5.0x: it would top set A if the sets were mixed.
Every evaluation's wall time is compile 1 s (CPU, not counted) + time 2 s: 2 GPU seconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from kernelsmith.llm.types import Completion, Usage
from kernelsmith.results import (CheckResult, CompileResult, ErrorClass, EvalResult, StaticResult, SystemInfo,
                                 TimingResult, TimingStats, Verdict)
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task

SRC = """import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.{op}(x){extra}

def get_inputs():
    return [torch.randn(1024)]

def get_init_inputs():
    return []
"""

H200 = SystemInfo(gpu="NVIDIA H200", compute_capability="9.0", driver="580.65", torch="2.13.0", cuda="13.0",
                  python="3.11.7", sandbox="process", hostname="node-1")
A100 = SystemInfo(gpu="NVIDIA A100", compute_capability="8.0", driver="570.10", torch="2.13.0", cuda="13.0",
                  python="3.11.7", sandbox="process", hostname="node-2")

# name -> (op, level, problem_id)
TASKS = {"relu": ("relu", 1, 1), "gelu": ("tanh", 1, 2), "softmax": ("sigmoid", 1, 3),
         "matmul": ("abs", 2, 1), "conv": ("exp", 2, 2)}


def task(name: str, extra: str = "") -> Task:
    op = TASKS[name][0]
    return Task.from_source(SRC.format(op=op, extra=extra), f"tasks/level{TASKS[name][1]}/{name}.py")


def stats(median: float) -> TimingStats:
    samples = [median * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)]
    return TimingStats(samples_ms=samples, median_ms=median, ci_low_ms=median * 0.99, ci_high_ms=median * 1.01,
                       mean_ms=median, stdev_ms=median * 0.01)


def correct(t: Task, speedup: float, system: SystemInfo) -> EvalResult:
    eager = 2.0
    return EvalResult(
        verdict=Verdict.CORRECT, task_hash=t.hash, candidate_hash="",
        static=StaticResult(ok=True), compile=CompileResult(ok=True, seconds=1.0, backend="load_inline"),
        check=CheckResult(ok=True, trials=5, trials_passed=5, max_abs_error=1e-6, rel_error=1e-7),
        timing=TimingResult(ok=True, candidate=stats(eager / speedup), eager=stats(eager), speedup_eager=speedup,
                            speedup_eager_ci=(speedup * 0.95, speedup * 1.05), compiled_ms=1.0,
                            speedup_compile=speedup * 0.5),  # compile is 2x faster than eager here
        system=system, wall={"compile": 1.0, "time": 2.0})


def failed(t: Task, system: SystemInfo) -> EvalResult:
    return EvalResult(verdict=Verdict.INCORRECT, task_hash=t.hash, candidate_hash="",
                      compile=CompileResult(ok=True, seconds=1.0),
                      check=CheckResult(ok=False, error=ErrorClass.MISMATCH, message="differs"),
                      system=system, error=ErrorClass.MISMATCH, message="differs", wall={"compile": 1.0, "time": 2.0})


def completion(cost: float, prompt: int, completion_tokens: int, replayed: bool = False) -> list[Completion]:
    return [Completion(text="```python\n...\n```", model="m", usage=Usage(prompt, completion_tokens),
                       cost_usd=cost, replayed=replayed)]


@dataclass
class Fixture:
    db: Path
    store: RunStore
    ids: dict[str, str] = field(default_factory=dict)  # "a" | "b" | "c" -> run id
    tasks: dict[str, Task] = field(default_factory=dict)
    relu_v2: Task | None = None


def _add(store: RunStore, rid: str, t: Task, results: list[EvalResult | None], n: list[int]) -> list[str]:
    """One candidate per result (None: a second evaluation of the previous candidate)."""
    store.set_run_task(rid, t.hash, "running")
    cids: list[str] = []
    for r in results:
        if r is None:
            continue
        n[0] += 1
        cid = store.add_candidate(rid, t.hash, Candidate(code=f"# kernel {n[0]} for {t.name}\nclass ModelNew: ...\n"))
        store.add_evaluation(cid, r)
        cids.append(cid)
    store.set_run_task(rid, t.hash, "done")
    return cids


def fill(db: Path) -> Fixture:
    store = RunStore(db)
    fx = Fixture(db=db, store=store, tasks={k: task(k) for k in TASKS})
    fx.relu_v2 = task("relu", extra="  # v2: the reference changed")
    for k, (_, level, pid) in TASKS.items():
        store.upsert_task(fx.tasks[k], level=level, problem_id=pid, origin=f"kernelbench:L{level}/P{pid}")
    store.upsert_task(fx.relu_v2, level=1, problem_id=1, origin="kernelbench:L1/P1")
    T, n = fx.tasks, [0]

    a = fx.ids["a"] = store.create_run("optimize", "gpt-a", "refine", {}, {})
    for _ in range(2):
        store.add_llm_call(a, "gpt-a", [{"role": "user", "content": "hi"}], completion(0.5, 1000, 500))
    _add(store, a, T["relu"], [failed(T["relu"], H200), correct(T["relu"], 1.2, H200),
                               correct(T["relu"], 2.5, H200)], n)
    _add(store, a, T["gelu"], [correct(T["gelu"], 0.8, H200)], n)
    _add(store, a, T["matmul"], [correct(T["matmul"], 1.6, H200)], n)
    (conv_c,) = _add(store, a, T["conv"], [correct(T["conv"], 3.0, H200)], n)
    store.add_evaluation(conv_c, failed(T["conv"], H200))  # re-evaluated: now incorrect
    _add(store, a, T["softmax"], [correct(T["softmax"], 1.0, H200)], n)
    store.set_run_status(a, "finished")

    b = fx.ids["b"] = store.create_run("optimize", "gpt-b", "best-of-n", {}, {})
    store.add_llm_call(b, "gpt-b", [{"role": "user", "content": "hi"}], completion(4.0, 2000, 1000, replayed=True))
    for k, sp in (("relu", 1.1), ("gelu", 1.8), ("matmul", 3.0), ("conv", 1.2)):
        _add(store, b, T[k], [correct(T[k], sp, H200)], n)
    _add(store, b, T["softmax"], [failed(T["softmax"], H200)], n)
    store.set_run_status(b, "finished")

    c = fx.ids["c"] = store.create_run("bench", "gpt-a", "refine", {}, {}, label="v2")
    for t in (fx.relu_v2, T["gelu"], T["softmax"], T["matmul"], T["conv"]):
        _add(store, c, t, [correct(t, 5.0, A100)], n)
    store.set_run_status(c, "finished")
    return fx


def gm(*xs: float) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"
