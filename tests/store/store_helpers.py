"""Hand-built values for the run store tests (tasks, results, completions) and the
bodies of the writer processes the concurrency tests start."""

from __future__ import annotations

from kernelsmith.llm.types import Completion, Usage
from kernelsmith.results import (CheckResult, CompileResult, ErrorClass, EvalResult, StaticResult, SystemInfo,
                                 TimingResult, TimingStats, Verdict)
from kernelsmith.task import Task

TASK_SRC = """import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return x * {k}

def get_inputs():
    return [torch.randn(1024)]

def get_init_inputs():
    return []
"""


def make_task(k: int = 2, name: str = "scale") -> Task:
    return Task.from_source(TASK_SRC.format(k=k), f"tasks/level1/{name}_{k}.py")


SYSTEM = SystemInfo(gpu="NVIDIA H200", compute_capability="9.0", driver="580.65", torch="2.13.0",
                    cuda="13.0", cupy="13.6.0", python="3.11.7", sandbox="process", hostname="node-1")


def stats(median: float, n: int = 5) -> TimingStats:
    samples = [median * (1 + 0.01 * (i - n // 2)) for i in range(n)]
    return TimingStats(samples_ms=samples, median_ms=median, ci_low_ms=median * 0.99, ci_high_ms=median * 1.01,
                       mean_ms=median, stdev_ms=median * 0.01)


def _hash(task: Task | str) -> str:
    return task.hash if isinstance(task, Task) else task


def correct_result(task: Task | str, speedup: float, cached: bool = False,
                   system: SystemInfo = SYSTEM) -> EvalResult:
    eager = 2.0
    cand = eager / speedup
    return EvalResult(
        verdict=Verdict.CORRECT, task_hash=_hash(task), candidate_hash="",
        static=StaticResult(ok=True, seconds=0.01, warnings=["uses atomics"]),
        compile=CompileResult(ok=True, seconds=12.5, backend="load_inline", log="ok"),
        check=CheckResult(ok=True, seconds=0.8, trials=5, trials_passed=5, max_abs_error=1e-6, rel_error=2e-7,
                          atol=1e-4, rtol=1e-4),
        timing=TimingResult(ok=True, seconds=3.0, candidate=stats(cand), eager=stats(eager), speedup_eager=speedup,
                            speedup_eager_ci=(speedup * 0.95, speedup * 1.05), compiled_ms=1.5,
                            speedup_compile=speedup * 0.75, rechecked_outputs=3),
        system=system, wall={"compile": 12.5, "startup": 1.0, "check": 0.8, "time": 3.0},
        output="kernel says hi", cached=cached)


def failed_result(task: Task | str, verdict: Verdict = Verdict.INCORRECT, error: ErrorClass = ErrorClass.MISMATCH,
                  message: str = "output 0 differs at [3]: 1.5 vs 1.0") -> EvalResult:
    return EvalResult(
        verdict=verdict, task_hash=_hash(task), candidate_hash="",
        static=StaticResult(ok=True, seconds=0.01),
        compile=CompileResult(ok=True, seconds=10.0, backend="load_inline"),
        check=CheckResult(ok=False, seconds=0.5, error=error, message=message, trials=5, trials_passed=0,
                          max_abs_error=0.5, rel_error=float("nan")),
        system=SYSTEM, error=error, message=message, wall={"compile": 10.0, "check": 0.5})


def completions(texts: list[str], cost: float = 0.01) -> list[Completion]:
    usage = Usage(prompt_tokens=1000, completion_tokens=500 * len(texts), reasoning_tokens=200, cached_tokens=100)
    return [Completion(text=t, model="gpt-test", usage=usage, cost_usd=cost, latency_s=2.5, call_id="resp_123",
                       finish_reason="stop") for t in texts]


def code(i: int | str) -> str:
    return f"import torch\n\nclass ModelNew(torch.nn.Module):\n    # variant {i}\n    def forward(self, x):\n" \
           f"        return x * 2\n"


# --- writer processes ---------------------------------------------------------------------

def write_evaluated(url: str, run_id: str, task_hash: str, tag: str, n: int, store=None) -> None:
    """n candidates, each with an LLM call and a correct evaluation; strategy_info says who wrote it.
    Speedups are distinct across writers: 1 + i/100 + tag's ordinal/10000."""
    from kernelsmith.search.types import Candidate
    from kernelsmith.store import RunStore

    own = store is None
    store = store or RunStore(url)
    for i in range(n):
        text = code(f"{tag}-{i}")
        call = store.add_llm_call(run_id, "gpt-test", [{"role": "user", "content": f"{tag} {i}"}],
                                  completions([text]), task_hash=task_hash)
        cand = Candidate(code=text, strategy_info={"writer": tag, "i": i}, completion=completions([text])[0])
        cid = store.add_candidate(run_id, task_hash, cand, llm_call_id=call)
        store.mark_evaluating(cid)
        store.add_evaluation(cid, correct_result(task_hash, 1 + i / 100 + sum(map(ord, tag)) / 10000))
    if own:
        store.close()


def kill_writer(url: str, run_id: str, task_hash: str) -> None:
    """Write forever, printing "candidate_id evaluation_id i" after each committed evaluation."""
    from kernelsmith.search.types import Candidate
    from kernelsmith.store import RunStore

    store = RunStore(url)
    i = 0
    while True:
        text = code(i)
        call = store.add_llm_call(run_id, "gpt-test", [{"role": "user", "content": str(i)}], completions([text]))
        cid = store.add_candidate(run_id, task_hash, Candidate(code=text, strategy_info={"i": i}), llm_call_id=call)
        print(cid, "-", i, flush=True)
        eid = store.add_evaluation(cid, correct_result(task_hash, 1 + i / 1000))
        print(cid, eid, i, flush=True)
        i += 1


def open_store(url: str) -> str:
    """Open (and so migrate) a store; return its schema revision. Run in racing processes."""
    from kernelsmith.store import RunStore

    with RunStore(url) as store:
        return store.schema_revision() or ""
