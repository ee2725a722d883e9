"""Benchmarks: a search over many tasks (`run_bench`), or judging a file of ready-made
generations (`run_generations`), each recorded as one run in runs.db, summarized per level
the way KernelBench reports (correct rate, fast_1, geometric mean speedup over eager).

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
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from kernelsmith.agent import OptimizeRequest, StoreRecorder, search_task
from kernelsmith.kernelbench import (
    BenchInputError, BenchTask, Loaded, Skipped, load_kernelbench, load_suite, read_rows, row_fields,
)
from kernelsmith.llm.types import LLM, LLMError
from kernelsmith.results import Verdict
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task, TaskError, content_hash, validate_source

log = logging.getLogger(__name__)
Event = Callable[[str, dict], None]


# --- summaries ------------------------------------------------------------------------------

@dataclass
class LevelSummary:
    level: int | None  # None: the "all" row
    count: int
    correct: int
    fast_1: int  # correct and faster than eager
    geomean_speedup: float | None  # over the correct ones

    @property
    def correct_rate(self) -> float:
        return self.correct / self.count if self.count else 0.0

    @property
    def fast_1_rate(self) -> float:
        return self.fast_1 / self.count if self.count else 0.0


def summarize(entries: Iterable[tuple[int | None, bool, float | None]]) -> list[LevelSummary]:
    """entries: (level, correct, speedup over eager). One row per level, then an "all" row."""
    by: dict[int | None, list[tuple[bool, float | None]]] = {}
    for level, ok, sp in entries:
        by.setdefault(level, []).append((ok, sp))

    def row(level, items) -> LevelSummary:
        good = [sp for ok, sp in items if ok and sp and sp > 0]
        geo = math.exp(sum(math.log(s) for s in good) / len(good)) if good else None
        return LevelSummary(level, len(items), sum(1 for ok, _ in items if ok),
                            sum(1 for ok, sp in items if ok and sp is not None and sp > 1.0), geo)

    out = [row(lv, by[lv]) for lv in sorted(by, key=lambda x: (x is None, x or 0))]
    if len(out) > 1:
        out.append(row(None, [e for items in by.values() for e in items]))
    return out


def summary_table(rows: list[LevelSummary], title: str = ""):
    from rich.table import Table

    t = Table("level", "tasks", "correct", "fast_1", "geomean speedup (correct)", title=title or None)
    for r in rows:
        t.add_row("all" if r.level is None else str(r.level), str(r.count),
                  f"{r.correct} ({r.correct_rate:.0%})", f"{r.fast_1} ({r.fast_1_rate:.0%})",
                  f"{r.geomean_speedup:.3f}x" if r.geomean_speedup else "-")
    return t


# --- run_bench ------------------------------------------------------------------------------

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


class _Notes:
    def __init__(self, store: RunStore, run_id: str, initial: str = ""):
        self.store, self.run_id = store, run_id
        self.lines = [ln for ln in (initial or "").splitlines() if ln.strip()]
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line[:1000])
            self.store.set_run_status(self.run_id, "running", notes="\n".join(self.lines))


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
        notes = _Notes(store, run_id)
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
        notes = _Notes(store, run_id, info.notes)
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
    if outcome.stop_reason == "interrupted":
        res.status = "interrupted"
    elif broken:
        res.status, res.reason = "failed", f"broken reference: {broken[0]}"
    elif outcome.stop_reason.startswith(("llm:", "evaluator:")):
        res.status = "failed"  # the next session tries it again
    if res.status == "failed":
        store.set_run_task(run_id, h, "failed", best_candidate_id=res.best_id)
    return res


# --- run_generations ------------------------------------------------------------------------

@dataclass
class GenerationRow:
    where: str
    level: int | None
    problem_id: int | None
    name: str
    task_hash: str = ""
    candidate_id: str = ""
    verdict: str = ""
    speedup: float | None = None
    reason: str = ""  # why the row was skipped

    @property
    def correct(self) -> bool:
        return self.verdict == Verdict.CORRECT.value


@dataclass
class GenerationsOutcome:
    run_id: str
    rows: list[GenerationRow]
    skipped: list[GenerationRow]
    summary: list[LevelSummary]


def generations_kind() -> str:
    return "generations"


class _References:
    """(level, problem_id) -> reference Task, from a KernelBench checkout and/or our suite."""

    def __init__(self, kernelbench: str | Path | None, suite: str | Path | None):
        self.sources = [(kind, p) for kind, p in (("kernelbench", kernelbench), ("suite", suite)) if p]
        self._index: dict[tuple[int, int], BenchTask | Skipped] | None = None

    def _build(self) -> dict:
        index: dict[tuple[int, int], BenchTask | Skipped] = {}
        for kind, p in self.sources:
            loaded: Loaded = load_kernelbench(p) if kind == "kernelbench" else load_suite(p)
            for s in loaded.skipped:
                if s.level is not None and s.problem_id is not None:
                    index.setdefault((s.level, s.problem_id), s)
            for b in loaded.tasks:
                if not isinstance(index.get((b.level, b.problem_id)), BenchTask):
                    index[(b.level, b.problem_id)] = b
        return index

    def get(self, level: int, pid: int) -> BenchTask | str:
        if not self.sources:
            return "the row has no reference; give --kernelbench PATH or --suite PATH to resolve it"
        if self._index is None:
            self._index = self._build()
        hit = self._index.get((level, pid))
        if hit is None:
            return f"no reference for level {level} problem {pid} in {', '.join(str(p) for _, p in self.sources)}"
        if isinstance(hit, Skipped):
            return f"reference unusable: {hit.reason}"
        return hit


def run_generations(path_jsonl: str | Path, pool, store: RunStore, reference_root: str | Path | None = None,
                    suite: str | Path | None = None, label: str = "", on_event: Event | None = None,
                    ) -> GenerationsOutcome:
    """Evaluate ready-made kernels: rows {level, problem_id, name?, code, reference?, task_path?}.
    A row with its own `reference` is checked against exactly that reference (its candidates are
    stored under that reference's hash); others resolve by (level, problem_id) against the
    KernelBench checkout `reference_root` or the `suite`. One run of kind "generations"."""
    from kernelsmith.llm.extract import extract_code

    emit = on_event or (lambda kind, info: None)
    path = Path(path_jsonl).expanduser()
    refs = _References(reference_root, suite)
    rows: list[GenerationRow] = []
    skipped: list[GenerationRow] = []
    work: list[tuple[GenerationRow, Task, str, str]] = []  # row, task, code, origin
    for where, raw in read_rows(path):
        fields = row_fields(where, raw)
        if isinstance(fields, str):
            skipped.append(GenerationRow(where, None, None, "", reason=fields))
            continue
        level, pid, name = fields
        row = GenerationRow(where, level, pid, name)
        code = raw.get("code")
        if not isinstance(code, str) or not code.strip():
            row.reason = "no kernel in column 'code'"
            skipped.append(row)
            continue
        if "```" in code:
            extracted, msg = extract_code(code)
            if extracted is None:
                row.reason = f"no usable code in column 'code': {msg}"
                skipped.append(row)
                continue
            code = extracted
        task, origin = _row_reference(raw, level, pid, name, path, refs)
        if isinstance(task, str):
            row.reason = task
            skipped.append(row)
            continue
        row.name = name or task.name
        row.task_hash = task.hash
        work.append((row, task, code, origin))
    if not work:
        reasons = "; ".join(f"{r.where}: {r.reason}" for r in skipped[:5])
        raise BenchInputError(f"no usable rows in {path}" + (f" ({reasons})" if reasons else ""))
    config = {"generations": str(path), "rows": len(work) + len(skipped), "skipped": len(skipped),
              "kernelbench": str(reference_root) if reference_root else None,
              "suite": str(suite) if suite else None, "label": label, "kind": "generations",
              "gpus": list(getattr(pool, "gpus", []))}
    run_id = store.create_run(generations_kind(), label or "generations", "generations", config, {}, label=label)
    notes = _Notes(store, run_id)
    try:
        tasks_seen: set[str] = set()
        for row, task, code, origin in work:
            if task.hash not in tasks_seen:
                tasks_seen.add(task.hash)
                store.upsert_task(task, row.level, row.problem_id, origin)
                store.set_run_task(run_id, task.hash, "running")
            cand = Candidate(code=code, strategy_info={"row": row.where, "name": row.name, "label": label})
            row.candidate_id = store.add_candidate(run_id, task.hash, cand)
            store.mark_evaluating(row.candidate_id)
        for r in skipped:
            notes.add(f"skipped {r.where}: {r.reason}")
        emit("generations_start", {"run_id": run_id, "total": len(work), "skipped": len(skipped)})
        stored: set[int] = set()
        lock = threading.Lock()

        def record(i: int, result) -> None:
            with lock:
                if i in stored:
                    return
                stored.add(i)
            row = work[i][0]
            store.add_evaluation(row.candidate_id, result)
            row.verdict = result.verdict.value
            row.speedup = result.speedup if result.correct else None
            emit("generation", {"row": row.where, "name": row.name, "level": row.level, "verdict": row.verdict,
                                "speedup": row.speedup})

        results = pool.evaluate_many([(task, code) for _, task, code, _ in work], on_result=record)
        for i, r in enumerate(results):
            if r is not None:
                record(i, r)
        for h in tasks_seen:
            best = store.best(run_id, h)
            store.set_run_task(run_id, h, "done", best_candidate_id=best.id if best else None)
        rows = [w[0] for w in work]
        store.set_run_status(run_id, "finished")
    except KeyboardInterrupt:
        store.set_run_status(run_id, "interrupted")
        raise
    except BaseException:
        store.set_run_status(run_id, "failed")
        raise
    summary = summarize((r.level, r.correct, r.speedup) for r in rows)
    emit("generations_done", {"run_id": run_id})
    return GenerationsOutcome(run_id, rows, skipped, summary)


def _row_reference(raw: dict, level: int, pid: int, name: str, path: Path,
                   refs: _References) -> tuple[Task | str, str]:
    """The reference a row is checked against (or why there is none), and its origin."""
    ref = raw.get("reference")
    where = f"level{level}/{pid}_{name or 'problem'}.py".replace(f"{pid}_{pid}_", f"{pid}_")
    if isinstance(ref, str) and ref.strip():
        try:
            return Task.from_source(ref, where), f"generations:L{level}/P{pid}"
        except TaskError as exc:
            return f"its reference is not usable: {exc}", ""
    tp = raw.get("task_path")
    if isinstance(tp, str) and tp.strip():
        p = Path(tp).expanduser()
        if not p.is_absolute() and not p.is_file():
            p = path.parent / p
        try:
            return Task.load(p), str(p)
        except TaskError as exc:
            return str(exc), ""
    hit = refs.get(level, pid)
    if isinstance(hit, str):
        return hit, ""
    return hit.task, hit.origin
