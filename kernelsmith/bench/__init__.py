"""Benchmarks: a search over many tasks (`run_bench`), recorded as one run in runs.db and
summarized per level the way KernelBench reports (correct rate, fast_1, geometric mean
speedup over eager; see bench_summary). Judging a file of ready-made generations
(`run_generations`) lives in kernelsmith.bench.generations and is re-exported here.

run_bench runs one task per GPU at a time (the pool leases a GPU's evaluator to a task for
its whole search, so timings never share a GPU), with model requests in flight while GPUs
time. It resumes: tasks whose run_tasks status is "done" are skipped, the rest continue from
their stored candidates. A task that cannot be searched (a broken reference, a model or
evaluator failure) is marked "failed", its reason appended to the run's notes, and the bench
goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kernelsmith.agent import OptimizeRequest, StoreRecorder, search_task
from kernelsmith.bench.summary import Event, LevelSummary, RunNotes, summarize, summary_table
from kernelsmith.bench.generations import GenerationRow, GenerationsOutcome, generations_kind, run_generations
from kernelsmith.bench.kernelbench import BenchTask, Skipped
from kernelsmith.llm.types import LLM, LLMError
from kernelsmith.results import Verdict
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task, TaskError, content_hash, validate_source

# Callers import the summaries and run_generations from here too (kept when they moved out).
__all__ = [
    "BenchOutcome", "TaskOutcome", "run_bench", "run_task_list", "sample_request",
    "Event", "LevelSummary", "summarize", "summary_table",
    "GenerationRow", "GenerationsOutcome", "generations_kind", "run_generations",
]

log = logging.getLogger(__name__)


@dataclass
class TaskOutcome:
    bench: BenchTask
    status: str  # done | failed | interrupted | skipped (done in an earlier session)
    reason: str = ""
    best_id: str | None = None
    speedup: float | None = None
    candidates: int = 0

    @property
    def correct(self) -> bool:
        return self.best_id is not None and self.speedup is not None


@dataclass
class BenchOutcome:
    run_id: str
    status: str  # finished | interrupted
    tasks: list[TaskOutcome] = field(default_factory=list)
    summary: list[LevelSummary] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for t in self.tasks if t.status == status)


def sample_request(req: OptimizeRequest, n: int) -> OptimizeRequest:
    """`bench --samples N`: N independent samples per task (best-of-n, no feedback, budget N),
    the draws that pass@k, fast_p@k and proficiency are estimated from (leaderboard)."""
    if n < 1:
        raise ValueError(f"--samples must be at least 1 (got {n})")
    if req.strategy not in ("best-of-n", "refine"):  # refine: the flag's default, replaced
        raise ValueError(f"--samples draws independent samples (strategy best-of-n); it cannot be combined "
                         f"with --strategy {req.strategy}")
    budget = dataclasses.replace(req.budget, max_candidates=n)
    return dataclasses.replace(req, strategy="best-of-n", budget=budget,
                               strategy_options={**req.strategy_options, "n": n})


class _TaskStore:
    """The run store as one task's recorder sees it: model calls carry the task's hash."""

    def __init__(self, store: RunStore, task_hash: str):
        self._store, self._hash = store, task_hash

    def add_llm_call(self, run_id, model, messages, completions, error=None, task_hash=None):
        return self._store.add_llm_call(run_id, model, messages, completions, error=error,
                                        task_hash=task_hash or self._hash)

    def __getattr__(self, name):
        return getattr(self._store, name)


class _TaskRecorder(StoreRecorder):
    """Stops the task's model calls once the bench is stopping (as Ctrl-C would) or once the
    reference proved broken (as a model failure, so the search ends and the task fails)."""

    def __init__(self, inner: LLM, store: RunStore, run_id: str, task_hash: str, stop: threading.Event,
                 broken: list[str]):
        super().__init__(inner, _TaskStore(store, task_hash), run_id)  # type: ignore[arg-type]
        self._stop, self._broken = stop, broken

    def complete(self, messages, n=1, sampling=None):
        if self._stop.is_set():
            raise KeyboardInterrupt
        if self._broken:
            raise LLMError(f"the task's reference is broken: {self._broken[0]}")
        return super().complete(messages, n=n, sampling=sampling)


class _TaskEvaluator:
    """One task's view of its leased GPU: notices a broken reference (INVALID_TASK)."""

    def __init__(self, inner: Any, stop: threading.Event, broken: list[str]):
        self.inner, self._stop, self._broken = inner, stop, broken

    def __getattr__(self, name):  # sanitize and profile, where the leased evaluator has them
        return getattr(self.inner, name)

    def evaluate_many(self, items, on_result=None):
        if self._stop.is_set():
            raise KeyboardInterrupt
        results = self.inner.evaluate_many(items, on_result=on_result)
        for r in results:
            if getattr(r, "verdict", None) is Verdict.INVALID_TASK and not self._broken:
                self._broken.append(r.message or "the reference failed to run")
        return results


def run_task_list(store: RunStore, run_id: str) -> list[BenchTask]:
    """The tasks of a stored bench run, in order, rebuilt from runs.db (for --resume)."""
    from sqlalchemy import select

    from kernelsmith.store import models as m

    with store._tx(write=False) as s:  # noqa: SLF001 - a read the store has no method for yet
        rows = s.execute(select(m.RunTask.task_hash, m.TaskRow.name, m.TaskRow.source, m.TaskRow.level,
                                m.TaskRow.problem_id, m.TaskRow.origin)
                         .join(m.TaskRow, m.TaskRow.hash == m.RunTask.task_hash)
                         .where(m.RunTask.run_id == run_id).order_by(m.RunTask.position)).all()
    return [BenchTask(Task(path=Path(f"{name}.py"), source=source, hash=h), level, pid, name, origin or name)
            for h, name, source, level, pid, origin in rows]


def _task_config(b: BenchTask) -> dict:
    return {"hash": b.task.hash, "level": b.level, "problem_id": b.problem_id, "name": b.name, "origin": b.origin}


def _broken_task(s: Skipped) -> Task | None:
    """A Task object for a reference that failed validation, so the run can record it as failed."""
    if not s.source:
        return None
    return Task(path=Path(f"{s.name or 'task'}.py"), source=s.source, hash=content_hash(s.source))



def run_bench(tasks: list[BenchTask], req_template: OptimizeRequest, llm: LLM, pool, store: RunStore,
              run_id: str | None = None, on_event: Event | None = None, skipped: Iterable[Skipped] = (),
              meta: dict | None = None) -> BenchOutcome:
    """Search every task (one per GPU at a time) in one run of kind "bench"; with run_id,
    resume that run: tasks already "done" are skipped, the others continue."""
    emit = on_event or (lambda kind, info: None)
    skipped = list(skipped)
    if run_id is None:
        for b in tasks:
            store.upsert_task(b.task, b.level, b.problem_id, b.origin)
        config = dataclasses.asdict(req_template)
        config["budget"] = dataclasses.asdict(req_template.budget)
        config["tasks"] = [_task_config(b) for b in tasks]
        config["skipped"] = [{"origin": s.origin, "reason": s.reason} for s in skipped]
        config["gpus"] = list(getattr(pool, "gpus", []))
        config.update(meta or {})
        run_id = store.create_run("bench", llm.name, req_template.strategy, config,
                                  dataclasses.asdict(req_template.budget))
        for b in tasks:
            store.set_run_task(run_id, b.task.hash, "pending")
        notes = RunNotes(store, run_id)
        for s in skipped:
            bt = _broken_task(s)
            if bt is not None:
                store.upsert_task(bt, s.level, s.problem_id, s.origin)
                store.set_run_task(run_id, bt.hash, "failed")
            notes.add(f"failed {s.origin}: {s.reason}")
    else:
        info = store.get_run(run_id)
        run_id = info.id
        store.set_run_status(run_id, "running")
        notes = RunNotes(store, run_id, info.notes)
    status = {rt.task_hash: rt.status for rt in store.run_tasks(run_id)}
    stop = threading.Event()
    results: dict[int, TaskOutcome] = {}
    todo: list[int] = []
    for i, b in enumerate(tasks):
        if status.get(b.task.hash) == "done":
            best = store.best(run_id, b.task.hash)
            results[i] = TaskOutcome(b, "skipped", "done in an earlier session", best.id if best else None,
                                     best.result.speedup if best and best.result else None)
        else:
            if b.task.hash not in status:
                store.upsert_task(b.task, b.level, b.problem_id, b.origin)
                store.set_run_task(run_id, b.task.hash, "pending")
            todo.append(i)
    emit("bench_start", {"run_id": run_id, "total": len(tasks), "already_done": len(tasks) - len(todo),
                         "gpus": list(getattr(pool, "gpus", []))})
    done_lock = threading.Lock()

    def one(i: int, ev: Any) -> TaskOutcome:
        b = tasks[i]
        gpu_index = pool.evaluator_gpu(ev) if hasattr(pool, "evaluator_gpu") else None
        emit("task_start", {"task": b.label, "hash": b.task.hash, "gpu": gpu_index})
        out = _search_one(b, ev, req_template, llm, store, run_id, stop, emit)
        if out.status == "failed":
            notes.add(f"failed {b.origin}: {out.reason}")
        if out.status == "interrupted":
            stop.set()
        with done_lock:
            results[i] = out
        emit("task_done", {"task": b.label, "hash": b.task.hash, "status": out.status, "reason": out.reason,
                           "speedup": out.speedup, "best": out.best_id, "candidates": out.candidates})
        return out

    run_status = "finished"
    try:
        pool.map_tasks(lambda i, ev: one(i, ev), todo, stop=stop)
    except KeyboardInterrupt:
        run_status = "interrupted"
        store.set_run_status(run_id, run_status)
        raise
    except BaseException:
        store.set_run_status(run_id, "failed")
        raise
    if stop.is_set() or any(r.status == "interrupted" for r in results.values()):
        run_status = "interrupted"
    store.set_run_status(run_id, run_status)
    ordered = [results[i] for i in sorted(results)]
    summary = summarize((o.bench.level, o.correct, o.speedup) for o in ordered) if ordered else []
    outcome = BenchOutcome(run_id, run_status, ordered, summary)
    emit("bench_done", {"run_id": run_id, "status": run_status})
    return outcome


def _search_one(b: BenchTask, ev: Any, req_template: OptimizeRequest, llm: LLM, store: RunStore, run_id: str,
                stop: threading.Event, emit: Event) -> TaskOutcome:
    h = b.task.hash
    try:
        validate_source(b.task.source, b.origin)
    except TaskError as exc:
        store.set_run_task(run_id, h, "failed")
        return TaskOutcome(b, "failed", str(exc))
    prior = store.candidates(run_id, h)
    broken: list[str] = [c.result.message or "the reference failed to run" for c in prior
                         if c.result is not None and c.result.verdict is Verdict.INVALID_TASK][:1]
    if broken:
        store.set_run_task(run_id, h, "failed")
        return TaskOutcome(b, "failed", f"broken reference: {broken[0]}", candidates=len(prior))
    if stop.is_set():
        return TaskOutcome(b, "interrupted", "stopped before it started")
    try:
        gpu = ev.probe() if hasattr(ev, "probe") else {}
    except Exception as exc:  # noqa: BLE001 - one GPU's failure fails its task, not the bench
        store.set_run_task(run_id, h, "failed")
        return TaskOutcome(b, "failed", f"GPU probe failed: {exc}")
    req = dataclasses.replace(req_template, task_path=b.origin)
    recorder = _TaskRecorder(llm, store, run_id, h, stop, broken)
    evaluator = _TaskEvaluator(ev, stop, broken)

    def on_event(kind: str, info: dict) -> None:
        emit("search", {"task": b.label, "hash": h, "kind": kind, "info": info})

    try:
        outcome = search_task(store, run_id, b.task, req, recorder, evaluator, gpu, on_event)
    except KeyboardInterrupt:
        stop.set()
        return TaskOutcome(b, "interrupted", "interrupted")
    except Exception as exc:  # noqa: BLE001 - a task's crash must not end the bench
        log.exception("search of %s failed", b.label)
        store.set_run_task(run_id, h, "failed")
        return TaskOutcome(b, "failed", f"{type(exc).__name__}: {exc}")
    best = outcome.best
    res = TaskOutcome(b, "done", outcome.stop_reason, best.id if best else None,
                      best.result.speedup if best and best.result else None, len(outcome.candidates))
    if outcome.stop_reason.interrupted:
        res.status = "interrupted"
    elif broken:
        res.status, res.reason = "failed", f"broken reference: {broken[0]}"
    elif outcome.stop_reason.resumable:
        res.status = "failed"  # the next session tries it again
    if res.status == "failed":
        store.set_run_task(run_id, h, "failed", best_candidate_id=res.best_id)
    return res
