"""Fakes for search tests: a model that replies from a script and records its prompts, and
an evaluator that looks results up by the kernel's tag (no GPU, no network)."""

from __future__ import annotations

import re
import threading
import time

from kernelsmith.llm.types import Completion, LLMError, Usage
from kernelsmith.results import (
    Bound, CheckResult, CompileResult, ErrorClass, EvalResult, TimingResult, TimingStats, Verdict,
)
from kernelsmith.task import Task

TASK_SRC = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(1024)]


def get_init_inputs():
    return []
'''

TAG = re.compile(r"# kernel: (\S+)")


def task() -> Task:
    return Task.from_source(TASK_SRC, "relu.py")


def kernel(tag: str) -> str:
    return ("import torch\nimport torch.nn as nn\n\n"
            f"# kernel: {tag}\n"
            "class ModelNew(nn.Module):\n"
            "    def forward(self, x):\n"
            "        return torch.clamp_min(x, 0)\n")


def reply(tag: str) -> str:
    return f"Plan: a faster kernel.\n```python\n{kernel(tag)}```\n"


def diff_reply(old_tag: str, new_tag: str) -> str:
    return (f"Plan: tweak it.\n<<<<<<< SEARCH\n# kernel: {old_tag}\n=======\n# kernel: {new_tag}\n"
            ">>>>>>> REPLACE\n")


def tag_of(code: str) -> str | None:
    m = TAG.search(code or "")
    return m.group(1) if m else None


# --- results ---------------------------------------------------------------------------------

def _stats(ms: float) -> TimingStats:
    return TimingStats([ms] * 3, ms, ms, ms, ms, 0.0)


def correct(speedup: float, fraction: float | None = 0.5) -> EvalResult:
    bound = Bound(1e6, 8e6, 7.9e14, 4.3e12, 0.002, fraction) if fraction is not None else None
    timing = TimingResult(ok=True, candidate=_stats(1.0 / speedup), eager=_stats(1.0), speedup_eager=speedup,
                          bound=bound)
    return EvalResult(Verdict.CORRECT, "t", "c", compile=CompileResult(ok=True, backend="load_inline"),
                      check=CheckResult(ok=True, trials=5, trials_passed=5), timing=timing)


def incorrect(detail: str = "output 0 differs at index 7", speedup: float | None = None) -> EvalResult:
    timing = TimingResult(ok=True, speedup_eager=speedup) if speedup is not None else None
    return EvalResult(Verdict.INCORRECT, "t", "c", compile=CompileResult(ok=True),
                      check=CheckResult(ok=False, trials=5, trials_passed=2, max_abs_error=0.5, detail=detail,
                                        error=ErrorClass.MISMATCH),
                      timing=timing, error=ErrorClass.MISMATCH, message=detail)


def compile_error(log: str = "kernel.cu(12): error: identifier \"foo\" is undefined") -> EvalResult:
    return EvalResult(Verdict.COMPILE_ERROR, "t", "c",
                      compile=CompileResult(ok=False, error=ErrorClass.COMPILE, message="nvcc failed", log=log),
                      error=ErrorClass.COMPILE, message="nvcc failed")


def runtime_error(msg: str = "CUDA error: an illegal memory access was encountered") -> EvalResult:
    return EvalResult(Verdict.RUNTIME_ERROR, "t", "c", compile=CompileResult(ok=True),
                      error=ErrorClass.CUDA_FAULT, message=msg)


# --- fakes -------------------------------------------------------------------------------

class FakeLLM:
    """replies: a list of texts (cycled) or fn(messages, call_index) -> text. Every call is
    recorded (messages, n). usage per call: `tokens` prompt + `tokens` completion; `cost` per call."""

    def __init__(self, replies, tokens: int = 50, cost: float = 0.01, fail_at: int | None = None,
                 delay: float = 0.0, start: int = 0, name: str = "fake"):
        self.replies, self.tokens, self.cost, self.fail_at, self.delay = replies, tokens, cost, fail_at, delay
        self.name = name
        self.calls: list[tuple[list[dict], int]] = []
        self.count = start  # call index (continues across a resume when given `start`)
        self.samples = start  # sample index passed to `replies`
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    @property
    def prompts(self) -> list[str]:
        return [m[-1]["content"] for m, _ in self.calls]

    def complete(self, messages, n=1, sampling=None):
        with self._lock:
            i = self.count
            self.count += 1
            self.calls.append((messages, n))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                time.sleep(self.delay)
            if self.fail_at is not None and i >= self.fail_at:
                raise LLMError("endpoint says 401: check KERNELSMITH_API_KEY")
            out = []
            usage = Usage(self.tokens, self.tokens)
            for j in range(n):
                with self._lock:
                    s = self.samples
                    self.samples += 1
                text = self.replies(messages, s) if callable(self.replies) else self.replies[s % len(self.replies)]
                out.append(Completion(text=text, model=self.name, usage=usage, cost_usd=self.cost,
                                      call_id=f"call{i}"))
            return out
        finally:
            with self._lock:
                self.active -= 1


class FakeEvaluator:
    """Results looked up by the kernel's tag: `table[tag]`, else `default(tag)`."""

    def __init__(self, table: dict[str, EvalResult] | None = None, default=None, delay: float = 0.0,
                 raise_at: int | None = None, exc: BaseException | None = None):
        self.table = dict(table or {})
        self.default = default or (lambda tag: correct(1.0))
        self.delay = delay
        self.batches: list[list[str]] = []
        self.raise_at, self.exc = raise_at, exc

    @property
    def seen(self) -> list[str]:
        return [t for b in self.batches for t in b]

    def evaluate_many(self, items, on_result=None):
        items = list(items)
        tags = [tag_of(code) for _, code in items]
        if self.raise_at is not None and len(self.batches) >= self.raise_at:
            raise self.exc or RuntimeError("evaluator broke")
        self.batches.append(tags)
        if self.delay:
            time.sleep(self.delay)
        out = []
        for i, tag in enumerate(tags):
            r = self.table[tag] if tag in self.table else self.default(tag)
            out.append(r)
            if on_result:
                on_result(i, r)
        return out
