"""Every query of the run store, in one place. Each function takes an open Session whose
transaction the caller (``RunStore``) begins and commits.

Locking (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already admits one writer at a time):
writes that depend on a run's other rows (a candidate's ``seq``, the run's best) first
lock that run's row, so they are serialized per run and need no retries.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from kernelsmith.llm.types import Completion
from kernelsmith.results import EvalResult, SystemInfo
from kernelsmith.store import convert as cv
from kernelsmith.store import models as m
from kernelsmith.store.models import utcnow
from kernelsmith.task import Task

if TYPE_CHECKING:  # search imports the store: import Candidate only where used
    from kernelsmith.search.types import Candidate


class NotFound(LookupError):
    """No such run / candidate in this store."""


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _new_id(s: Session, model: type, prefix: str, nbytes: int) -> str:
    while True:
        rid = f"{prefix}-{secrets.token_hex(nbytes)}"
        if s.get(model, rid) is None:
            return rid


_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(s: Session, model: type, values: dict, keys: list[str], update: Iterable[str] = ()) -> None:
    """INSERT ... ON CONFLICT (keys) DO NOTHING / DO UPDATE: race-free on both backends."""
    insert = _UPSERTS.get(s.get_bind().dialect.name)
    if insert is not None:
        stmt = insert(model).values(**values)
        cols = list(update)
        stmt = (stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in cols})
                if cols else stmt.on_conflict_do_nothing(index_elements=keys))
        s.execute(stmt)
        return
    row = s.execute(select(model).filter_by(**{k: values[k] for k in keys})).scalar_one_or_none()
    if row is None:
        s.add(model(**values))
    else:
        for c in update:
            setattr(row, c, values[c])
    s.flush()


def _lock_run(s: Session, run_id: str) -> m.Run:
    run = s.execute(select(m.Run).where(m.Run.id == run_id).with_for_update(key_share=True)).scalar_one_or_none()
    if run is None:
        raise NotFound(f"no run {run_id!r} in this store")
    return run


# --- runs and tasks -----------------------------------------------------------------------

def create_run(s: Session, kind: str, model: str, strategy: str, config: dict, budget: dict,
               label: str = "", notes: str = "") -> str:
    now = utcnow()
    rid = _new_id(s, m.Run, "r", 4)
    s.add(m.Run(id=rid, kind=_check(kind, m.RUN_KINDS, "run kind"), model=cv.txt(model, 200),
                strategy=cv.txt(strategy, 100), label=cv.txt(label, 100), config_json=cv.clean(config or {}),
                budget_json=cv.clean(budget or {}), notes=cv.txt(notes), status="running",
                created_at=now, updated_at=now))
    return rid


def set_run_status(s: Session, run_id: str, status: str, notes: str | None = None) -> None:
    run = _lock_run(s, run_id)
    run.status = _check(status, m.RUN_STATUSES, "run status")
    if notes is not None:
        run.notes = cv.txt(notes)
    run.updated_at = utcnow()


def merge_run_config(s: Session, run_id: str, extra: dict) -> None:
    run = _lock_run(s, run_id)
    run.config_json = cv.clean({**(run.config_json or {}), **extra})
    run.updated_at = utcnow()


def _best_speedup_col() -> Any:
    return (select(m.Evaluation.speedup_eager).where(m.Evaluation.candidate_id == m.Run.best_candidate_id)
            .order_by(m.Evaluation.id.desc()).limit(1).scalar_subquery())


def get_run(s: Session, run_id: str) -> cv.RunInfo:
    """By id, or by a prefix of exactly one id ("r-3f9a")."""
    q = select(m.Run, _best_speedup_col())
    row = s.execute(q.where(m.Run.id == run_id)).first()
    if row is None:
        rows = s.execute(q.where(m.Run.id.startswith(run_id, autoescape=True)).limit(2)).all()
        if len(rows) != 1:
            raise NotFound(f"no run {run_id!r} in this store" if not rows else
                           f"run id prefix {run_id!r} is ambiguous: give more of it")
        row = rows[0]
    return cv.run_info(row[0], row[1])


def list_runs(s: Session, limit: int = 50, kind: str | None = None, label: str | None = None) -> list[cv.RunInfo]:
    q = select(m.Run, _best_speedup_col()).order_by(m.Run.created_at.desc(), m.Run.id).limit(limit)
    if kind is not None:
        q = q.where(m.Run.kind == kind)
    if label is not None:
        q = q.where(m.Run.label == label)
    return [cv.run_info(r, b) for r, b in s.execute(q)]


def upsert_task(s: Session, task: Task, level: int | None = None, problem_id: int | None = None,
                origin: str | None = None) -> None:
    """Insert the task, or fill in level / problem_id / origin where given (the source never changes)."""
    values = dict(hash=task.hash, name=cv.txt(task.name, 255), source=cv.txt(task.source), level=level,
                  problem_id=problem_id, origin=cv.txt(origin, 500) if origin is not None else None,
                  created_at=utcnow())
    _insert(s, m.TaskRow, values, ["hash"])
    row = s.get(m.TaskRow, task.hash)
    for k in ("level", "problem_id", "origin"):
        if values[k] is not None:
            setattr(row, k, values[k])


def set_run_task(s: Session, run_id: str, task_hash: str, status: str, best_candidate_id: str | None = None) -> None:
    _check(status, m.RUN_TASK_STATUSES, "run task status")
    row = s.get(m.RunTask, (run_id, task_hash))
    if row is None:
        pos = s.scalar(select(func.count()).select_from(m.RunTask).where(m.RunTask.run_id == run_id)) or 0
        _insert(s, m.RunTask, dict(run_id=run_id, task_hash=task_hash, position=pos, status=status,
                                   updated_at=utcnow()), ["run_id", "task_hash"])
        row = s.get(m.RunTask, (run_id, task_hash))
    row.status = status
    if best_candidate_id is not None:
        row.best_candidate_id = best_candidate_id
    row.updated_at = utcnow()


def run_tasks(s: Session, run_id: str) -> list[cv.RunTaskInfo]:
    q = (select(m.RunTask, m.TaskRow.name, m.TaskRow.origin).join(m.TaskRow, m.TaskRow.hash == m.RunTask.task_hash)
         .where(m.RunTask.run_id == run_id).order_by(m.RunTask.position, m.RunTask.task_hash))
    return [cv.RunTaskInfo(run_id=r.run_id, task_hash=r.task_hash, name=name, origin=origin, position=r.position,
                           status=r.status, best_candidate_id=r.best_candidate_id, updated_at=cv.utc(r.updated_at))
            for r, name, origin in s.execute(q)]


# --- LLM calls and candidates -----------------------------------------------------------

def add_llm_call(s: Session, run_id: str, model: str, messages: list[dict], completions: list[Completion],
                 error: str | None = None, task_hash: str | None = None) -> int:
    first = completions[0] if completions else None
    u = first.usage if first else None
    call = m.LLMCall(
        run_id=run_id, task_hash=task_hash, model=cv.txt(model or (first.model if first else ""), 200),
        prompt_json=cv.clean(list(messages or [])), completions_json=[cv.txt(c.text) for c in completions],
        finish_reasons_json=[cv.txt(c.finish_reason) for c in completions],
        prompt_tokens=u.prompt_tokens if u else 0, completion_tokens=u.completion_tokens if u else 0,
        reasoning_tokens=u.reasoning_tokens if u else 0, cached_tokens=u.cached_tokens if u else 0,
        cost_usd=(cv.num(first.cost_usd) or 0.0) if first else 0.0,  # usage and cost are the whole call's
        latency_s=(cv.num(first.latency_s) or 0.0) if first else 0.0,
        provider_call_id=cv.txt(first.call_id, 200) if first else "",
        replayed=bool(first and first.replayed), error=cv.txt(error) if error is not None else None,
        created_at=utcnow())
    s.add(call)
    s.flush()
    return call.id


def _completion_index(s: Session, call_id: int, text: str) -> int | None:
    call = s.get(m.LLMCall, call_id)
    if call is None:
        raise NotFound(f"no llm call {call_id} in this store")
    taken = set(s.scalars(select(m.CandidateRow.completion_index).where(m.CandidateRow.llm_call_id == call_id)))
    hits = [i for i, t in enumerate(call.completions_json or []) if t == cv.txt(text)]
    free = [i for i in hits if i not in taken]
    return (free or hits or [None])[0]


def add_candidate(s: Session, run_id: str, task_hash: str, cand: Candidate, llm_call_id: int | None = None) -> str:
    run = _lock_run(s, run_id)
    if cand.id:
        if len(cand.id) > 64:
            raise ValueError(f"candidate id longer than 64 characters: {cand.id[:80]!r}")
        cid = cand.id
    else:
        cid = _new_id(s, m.CandidateRow, "c", 6)
    seq = (s.scalar(select(func.max(m.CandidateRow.seq)).where(m.CandidateRow.run_id == run_id)) or 0) + 1
    index = None
    if llm_call_id is not None and cand.completion is not None:
        index = _completion_index(s, llm_call_id, cand.completion.text)
    now = utcnow()
    s.add(m.CandidateRow(
        id=cid, run_id=run_id, seq=seq, task_hash=task_hash, code=cv.txt(cand.code), code_hash=cv.code_hash(cand.code),
        strategy_info_json=cv.clean(cand.strategy_info or {}), llm_call_id=llm_call_id, completion_index=index,
        status="format_error" if cand.format_error else "proposed", format_error=cv.txt(cand.format_error),
        created_at=now))
    s.flush()
    for pos, parent in enumerate(cand.parents):
        s.add(m.CandidateParent(child_id=cid, position=pos, parent_id=parent))
    run.updated_at = now
    return cid


def mark_evaluating(s: Session, candidate_id: str) -> None:
    row = s.get(m.CandidateRow, candidate_id)
    if row is None:
        raise NotFound(f"no candidate {candidate_id!r} in this store")
    if row.status == "proposed":
        row.status = "evaluating"


def upsert_hardware(s: Session, system: SystemInfo) -> int | None:
    values = cv.hardware_values(system)
    if values["fingerprint"] is None:
        return None
    _insert(s, m.Hardware, values, ["fingerprint"])
    return s.scalar(select(m.Hardware.id).where(m.Hardware.fingerprint == values["fingerprint"]))


def _latest_eval_ids(*where: ColumnElement[bool]) -> Select:
    """The id of each candidate's latest evaluation (its result), for candidates matching `where`."""
    return (select(func.max(m.Evaluation.id)).join(m.CandidateRow, m.CandidateRow.id == m.Evaluation.candidate_id)
            .where(*where).group_by(m.Evaluation.candidate_id))


def _best_id(s: Session, *where: ColumnElement[bool]) -> str | None:
    q = (select(m.Evaluation.candidate_id).where(m.Evaluation.id.in_(_latest_eval_ids(*where)),
                                                 m.Evaluation.verdict == "correct")
         .order_by(m.Evaluation.speedup_eager.desc().nulls_last(), m.Evaluation.id).limit(1))
    return s.scalar(q)


def add_evaluation(s: Session, candidate_id: str, result: EvalResult) -> int:
    cand = s.get(m.CandidateRow, candidate_id)
    if cand is None:
        raise NotFound(f"no candidate {candidate_id!r} in this store")
    run = _lock_run(s, cand.run_id)
    hw = upsert_hardware(s, result.system)
    now = utcnow()
    ev = m.Evaluation(candidate_id=candidate_id, hardware_id=hw, created_at=now, **cv.evaluation_values(result))
    s.add(ev)
    s.flush()
    s.add_all(m.EvaluationStage(evaluation_id=ev.id, **st) for st in cv.stage_values(result))
    cand.status = "evaluated"
    run.updated_at = now
    if run.hardware_id is None:
        run.hardware_id = hw
    run.best_candidate_id = _best_id(s, m.CandidateRow.run_id == run.id)
    rt = s.get(m.RunTask, (run.id, cand.task_hash))
    if rt is not None:
        rt.best_candidate_id = _best_id(s, m.CandidateRow.run_id == run.id, m.CandidateRow.task_hash == rt.task_hash)
        rt.updated_at = now
    return ev.id


def load_candidates(s: Session, *where: ColumnElement[bool]) -> list[Candidate]:
    """Candidates matching `where`, in run order, with parents, prompt, completion and latest result."""
    rows = list(s.scalars(select(m.CandidateRow).where(*where).order_by(m.CandidateRow.run_id, m.CandidateRow.seq)))
    if not rows:
        return []
    parents: dict[str, list[str]] = {}
    for child, parent in s.execute(
            select(m.CandidateParent.child_id, m.CandidateParent.parent_id)
            .join(m.CandidateRow, m.CandidateRow.id == m.CandidateParent.child_id)
            .where(*where).order_by(m.CandidateParent.child_id, m.CandidateParent.position)):
        parents.setdefault(child, []).append(parent)
    results = {cid: data for cid, data in s.execute(
        select(m.Evaluation.candidate_id, m.Evaluation.result_json).where(m.Evaluation.id.in_(_latest_eval_ids(*where))))}
    call_ids = select(m.CandidateRow.llm_call_id).where(*where, m.CandidateRow.llm_call_id.is_not(None))
    calls = {c.id: c for c in s.scalars(select(m.LLMCall).where(m.LLMCall.id.in_(call_ids)))}
    return [cv.candidate(r, parents.get(r.id, []), results.get(r.id), calls.get(r.llm_call_id)) for r in rows]


def candidate_status(s: Session, candidate_id: str) -> str | None:
    return s.scalar(select(m.CandidateRow.status).where(m.CandidateRow.id == candidate_id))


def pending_where(run_id: str) -> list[ColumnElement[bool]]:
    e = aliased(m.Evaluation)
    evaluated = select(e.id).where(e.candidate_id == m.CandidateRow.id).correlate(m.CandidateRow).exists()
    return [m.CandidateRow.run_id == run_id, m.CandidateRow.status.in_(("proposed", "evaluating")), ~evaluated]


def best(s: Session, run_id: str, task_hash: str | None = None) -> Candidate | None:
    where = [m.CandidateRow.run_id == run_id] + ([m.CandidateRow.task_hash == task_hash] if task_hash else [])
    cid = _best_id(s, *where)
    return load_candidates(s, m.CandidateRow.id == cid)[0] if cid else None


def lineage(s: Session, candidate_id: str) -> list[Candidate]:
    """Ancestors along first parents, nearest first (not the candidate itself)."""
    chain: list[str] = []
    seen = {candidate_id}
    cur = candidate_id
    while True:
        parent = s.scalar(select(m.CandidateParent.parent_id)
                          .where(m.CandidateParent.child_id == cur, m.CandidateParent.position == 0))
        if parent is None or parent in seen:
            break
        chain.append(parent)
        seen.add(parent)
        cur = parent
    found = {c.id: c for c in load_candidates(s, m.CandidateRow.id.in_(chain))} if chain else {}
    return [found[c] for c in chain if c in found]


def totals(s: Session, run_id: str) -> dict[str, Any]:
    """Spend and outcomes of a run. ``by_verdict`` counts every candidate once: the verdict of
    its latest evaluation, else "format_error" or "pending"."""
    L = m.LLMCall
    calls = s.execute(select(func.count(), func.count(L.error), func.sum(L.prompt_tokens),
                             func.sum(L.completion_tokens), func.sum(L.reasoning_tokens),
                             func.sum(L.cached_tokens), func.sum(L.cost_usd)).where(L.run_id == run_id)).one()
    in_run = m.CandidateRow.run_id == run_id
    by_verdict: dict[str, int] = {}
    for verdict, n in s.execute(select(m.Evaluation.verdict, func.count())
                                .where(m.Evaluation.id.in_(_latest_eval_ids(in_run))).group_by(m.Evaluation.verdict)):
        by_verdict[verdict] = n
    n_format = s.scalar(select(func.count()).select_from(m.CandidateRow)
                        .where(in_run, m.CandidateRow.status == "format_error")) or 0
    n_pending = s.scalar(select(func.count()).select_from(m.CandidateRow).where(*pending_where(run_id))) or 0
    if n_format:
        by_verdict["format_error"] = n_format
    if n_pending:
        by_verdict["pending"] = n_pending
    evals = s.execute(select(func.count(), func.sum(m.Evaluation.gpu_seconds),
                             func.count().filter(m.Evaluation.cached.is_(True)))
                      .join(m.CandidateRow, m.CandidateRow.id == m.Evaluation.candidate_id).where(in_run)).one()
    return {
        "llm_calls": calls[0], "llm_errors": calls[1],
        "tokens": {"prompt": int(calls[2] or 0), "completion": int(calls[3] or 0),
                   "reasoning": int(calls[4] or 0), "cached": int(calls[5] or 0)},
        "cost_usd": float(calls[6] or 0.0),
        "candidates": s.scalar(select(func.count()).select_from(m.CandidateRow).where(in_run)) or 0,
        "by_verdict": by_verdict,
        "evaluations": evals[0], "cached_evaluations": evals[2], "gpu_seconds": float(evals[1] or 0.0),
    }


# --- baselines ----------------------------------------------------------------------------

def upsert_baseline(s: Session, task_hash: str, system: SystemInfo, data: dict) -> int:
    """Store the torch.compile baseline job's output (``{"eager": stats, "compiled": stats,
    "ratio": ...}``) for this task on this hardware, replacing an older one."""
    hw = upsert_hardware(s, system)
    if hw is None:
        raise ValueError("a baseline needs the GPU it was measured on: SystemInfo is empty")
    eager, comp = data.get("eager") or {}, data.get("compiled") or {}
    values = dict(task_hash=task_hash, hardware_id=hw, eager_ms=cv.num(eager.get("median_ms")),
                  compiled_ms=cv.num(comp.get("median_ms")), ratio=cv.num(data.get("ratio")),
                  data_json=cv.clean(data), updated_at=utcnow())
    _insert(s, m.Baseline, values, ["task_hash", "hardware_id"],
            update=["eager_ms", "compiled_ms", "ratio", "data_json", "updated_at"])
    return hw


def get_baseline(s: Session, task_hash: str, system: SystemInfo) -> cv.BaselineInfo | None:
    fp = cv.fingerprint(system)
    if fp is None:
        return None
    row = s.scalar(select(m.Baseline).join(m.Hardware, m.Hardware.id == m.Baseline.hardware_id)
                   .where(m.Baseline.task_hash == task_hash, m.Hardware.fingerprint == fp))
    if row is None:
        return None
    return cv.BaselineInfo(task_hash=row.task_hash, hardware_id=row.hardware_id, eager_ms=row.eager_ms,
                           compiled_ms=row.compiled_ms, ratio=row.ratio, data=dict(row.data_json or {}),
                           updated_at=cv.utc(row.updated_at))
