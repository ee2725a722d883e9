"""Judging ready-made generations (`kernelsmith bench --generations FILE`): each JSONL row's
kernel is evaluated against its reference, all in one run of kind "generations", summarized
per level like a bench.

A row's reference is, in order: its own `reference` source, its `task_path`, or the task with
the same (level, problem_id) in a KernelBench checkout and/or our suite (`_References`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from kernelsmith.bench.summary import Event, LevelSummary, RunNotes, summarize
from kernelsmith.bench.kernelbench import (
    BenchInputError, BenchTask, Loaded, Skipped, load_kernelbench, load_suite, read_rows, row_fields,
)
from kernelsmith.results import Verdict
from kernelsmith.search.types import Candidate
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task, TaskError


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
    """The kind a generations run is stored under in runs.db."""
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
    notes = RunNotes(store, run_id)
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
