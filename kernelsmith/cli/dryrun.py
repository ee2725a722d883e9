"""`--dry-run` of optimize and `bench --generations`: the whole loop on a CPU.

DryRunEvaluator stands in for the GPU evaluator: every candidate goes through the real
static screen and the real compile (nvcc, in the sandbox), and nothing runs on a GPU. A
candidate that builds gets verdict `runtime_error` with error class `sandbox` and a
message starting with DRY_RUN (it was never run, so it is neither correct nor wrong); the
views show it as "compiled, not run". Nothing is timed, so no speedup exists and no kernel
is written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kernelsmith.results import CompileResult, ErrorClass, EvalResult, Verdict, code_hash

DRY_RUN = "dry run: passed the static screen and compiled; not run and not timed (no GPU work in --dry-run)"
COMPILED = "compiled, not run"


def is_dry_compiled(result: EvalResult | None) -> bool:
    return result is not None and result.verdict is Verdict.RUNTIME_ERROR and result.message.startswith("dry run:")


def verdict_label(verdict: str) -> str:
    """The name a dry run shows for a verdict (runtime_error can only mean 'compiled' there)."""
    return COMPILED if verdict == Verdict.RUNTIME_ERROR.value else verdict


@dataclass
class DryRecord:
    task: str
    candidate_hash: str
    verdict: str
    message: str
    backend: str
    seconds: float


class DryRunEvaluator:
    """Static screen + compile only, with the Evaluator's compile path (no GPU server)."""

    def __init__(self, config):
        from kernelsmith.evaluate.evaluator import Evaluator

        self.ev = Evaluator(config)
        self.gpus: list[int] = []
        self.records: list[DryRecord] = []
        self._lock = threading.Lock()

    # the evaluator / pool interface the search loop and run_generations use
    def probe(self, ceilings: bool = True) -> dict:
        return {"cuda_available": False, "dry_run": True, "system": {}}

    def evaluate(self, task, code: str) -> EvalResult:
        return self.evaluate_many([(task, code)])[0]

    def evaluate_many(self, items, on_result=None) -> list[EvalResult]:
        from concurrent.futures import ThreadPoolExecutor

        items = list(items)
        workers = max(1, min(len(items), self.ev.config.compile_workers or 1))
        results: list[EvalResult | None] = [None] * len(items)
        with ThreadPoolExecutor(max_workers=workers) as tp:
            for i, res in zip(range(len(items)), tp.map(lambda tc: self._one(*tc), items)):
                results[i] = res
                with self._lock:  # in the order of the candidates, whatever order the compiles finished in
                    self.records.append(self._record(items[i][0], res))
                if on_result:
                    on_result(i, res)
        return [r for r in results if r is not None]

    def _one(self, task, code: str) -> EvalResult:
        chash = code_hash(code)
        comp: CompileResult = self.ev.compile(task, code)
        if comp.ok:
            res = EvalResult(Verdict.RUNTIME_ERROR, task.hash, chash, compile=comp, error=ErrorClass.SANDBOX,
                             message=DRY_RUN, system=self.ev.system(), wall={"compile": comp.seconds})
        else:
            if comp.backend == "none" and comp.error in (ErrorClass.SYNTAX,):
                verdict = Verdict.COMPILE_ERROR
            elif comp.backend == "none":
                verdict = Verdict.REJECTED  # the static screen said no
            elif comp.error is ErrorClass.COMPILE_TIMEOUT:
                verdict = Verdict.TIMEOUT
            else:
                verdict = Verdict.COMPILE_ERROR
            res = EvalResult(verdict, task.hash, chash, compile=comp, error=comp.error,
                             message=comp.message or "compile failed", system=self.ev.system(),
                             wall={"compile": comp.seconds})
        return res

    @staticmethod
    def _record(task, res: EvalResult) -> DryRecord:
        comp = res.compile
        return DryRecord(task.name, res.candidate_hash[:12], res.verdict.value, comp.message if comp else res.message,
                         (comp.backend if comp else "") or "-", comp.seconds if comp else 0.0)

    # tool jobs of a would-be best: never reached (a dry run has no correct candidate)
    def close(self) -> None:
        self.ev.close()

    def __enter__(self) -> "DryRunEvaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
