"""RunStore: every run recorded in one database (``runs.db`` by default).

Each call is one short transaction, committed before it returns, so a process killed at
any moment loses at most the call in flight. A RunStore may be shared by threads (a
session per call; SQLite writes of one process also take a lock, so threads queue in
Python rather than spin on SQLite's busy handler) and opened by several processes on
the same file at once. After ``os.fork`` a child reopens its own connections.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from kernelsmith.llm.types import Completion
from kernelsmith.results import EvalResult, SystemInfo
from kernelsmith.store import db
from kernelsmith.store import models as m
from kernelsmith.store import queries as q
from kernelsmith.store.convert import BaselineInfo, RunInfo, RunTaskInfo
from kernelsmith.task import Task

if TYPE_CHECKING:  # search imports the store: import Candidate only where used
    from kernelsmith.search.types import Candidate


class RunStore:
    def __init__(self, url: str | os.PathLike | None = None, migrate: bool = True):
        """``url``: a SQLAlchemy URL or a SQLite file path; None: ``KERNELSMITH_DB``, else
        ``runs.db`` in the current directory. The schema is migrated to head on open."""
        self.url = db.resolve_url(url)
        self.engine = db.make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._serial_reads = db.is_memory(self.url)  # one shared connection: serialize everything
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, self.engine.dispose)  # closes the pool at exit too
        if migrate:
            try:
                db.migrate(self.engine)
            except BaseException:
                self.close()
                raise
        self._writer = sessionmaker(bind=self.engine.execution_options(**{db.WRITE: True}), expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"RunStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._forked()
        self._finalizer()

    def _forked(self) -> None:
        if os.getpid() != self._pid:  # in a forked child: never touch the parent's connections
            self.engine.dispose(close=False)
            self._lock, self._pid = threading.RLock(), os.getpid()

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Session]:
        self._forked()
        serial = self.dialect == "sqlite" and (write or self._serial_reads)
        with self._lock if serial else nullcontext():
            with (self._writer if write else self._reader)() as s, s.begin():
                yield s

    # --- runs --------------------------------------------------------------------------
    def create_run(self, kind: str, model: str, strategy: str, config: dict, budget: dict,
                   label: str = "", notes: str = "") -> str:
        with self._tx() as s:
            return q.create_run(s, kind, model, strategy, config, budget, label, notes)

    def set_run_status(self, run_id: str, status: str, notes: str | None = None) -> None:
        with self._tx() as s:
            q.set_run_status(s, run_id, status, notes)

    def merge_run_config(self, run_id: str, extra: dict) -> None:
        """Add entries to a run's config (figures known only at its end, e.g. GPU idle time)."""
        with self._tx() as s:
            q.merge_run_config(s, run_id, extra)

    def get_run(self, run_id: str) -> RunInfo:
        """By id or unique id prefix; raises ``NotFound``."""
        with self._tx(write=False) as s:
            return q.get_run(s, run_id)

    def list_runs(self, limit: int = 50, kind: str | None = None, label: str | None = None) -> list[RunInfo]:
        with self._tx(write=False) as s:
            return q.list_runs(s, limit, kind, label)

    # --- tasks -------------------------------------------------------------------------
    def upsert_task(self, task: Task, level: int | None = None, problem_id: int | None = None,
                    origin: str | None = None) -> None:
        with self._tx() as s:
            q.upsert_task(s, task, level, problem_id, origin)

    def set_run_task(self, run_id: str, task_hash: str, status: str, best_candidate_id: str | None = None) -> None:
        with self._tx() as s:
            q.set_run_task(s, run_id, task_hash, status, best_candidate_id)

    def run_tasks(self, run_id: str) -> list[RunTaskInfo]:
        with self._tx(write=False) as s:
            return q.run_tasks(s, run_id)

    # --- LLM calls, candidates, evaluations ----------------------------------------------
    def add_llm_call(self, run_id: str, model: str, messages: list[dict], completions: list[Completion],
                     error: str | None = None, task_hash: str | None = None) -> int:
        with self._tx() as s:
            return q.add_llm_call(s, run_id, model, messages, completions, error, task_hash)

    def add_candidate(self, run_id: str, task_hash: str, cand: Candidate, llm_call_id: int | None = None,
                      evaluating: bool = False) -> str:
        """Store a proposed candidate (or a format error), with its parents; assigns ``cand.id``
        when empty and returns it. evaluating=True: already on its way to the evaluator (one
        transaction, not an insert and an update)."""
        with self._tx() as s:
            cid = q.add_candidate(s, run_id, task_hash, cand, llm_call_id)
            if evaluating:
                q.mark_evaluating(s, cid)
        cand.id = cid
        return cid

    def mark_evaluating(self, candidate_id: str) -> None:
        with self._tx() as s:
            q.mark_evaluating(s, candidate_id)

    def add_evaluation(self, candidate_id: str, result: EvalResult) -> int:
        """Record a result (and its stages and hardware), mark the candidate evaluated and
        recompute the run's (and run task's) best, all in one transaction."""
        with self._tx() as s:
            return q.add_evaluation(s, candidate_id, result)

    def candidate(self, candidate_id: str) -> Candidate | None:
        with self._tx(write=False) as s:
            found = q.load_candidates(s, m.CandidateRow.id == candidate_id)
        return found[0] if found else None

    def candidates(self, run_id: str, task_hash: str | None = None) -> list[Candidate]:
        """A run's candidates in the order they were added, each with its latest result."""
        where = [m.CandidateRow.run_id == run_id]
        if task_hash is not None:
            where.append(m.CandidateRow.task_hash == task_hash)
        with self._tx(write=False) as s:
            return q.load_candidates(s, *where)

    def pending_candidates(self, run_id: str) -> list[Candidate]:
        """Proposed or in evaluation but never evaluated: lost in flight, to evaluate on resume."""
        with self._tx(write=False) as s:
            return q.load_candidates(s, *q.pending_where(run_id))

    def best(self, run_id: str, task_hash: str | None = None) -> Candidate | None:
        """The correct candidate with the highest speedup over eager (first found on ties)."""
        with self._tx(write=False) as s:
            return q.best(s, run_id, task_hash)

    def lineage(self, candidate_id: str) -> list[Candidate]:
        """Ancestors following first parents, nearest first; the candidate itself is not included."""
        with self._tx(write=False) as s:
            return q.lineage(s, candidate_id)

    def totals(self, run_id: str) -> dict[str, Any]:
        with self._tx(write=False) as s:
            return q.totals(s, run_id)

    # --- baselines -----------------------------------------------------------------------
    def upsert_baseline(self, task: Task | str, system: SystemInfo, data: dict) -> None:
        """``task``: a Task (stored if new) or the hash of one already stored."""
        with self._tx() as s:
            if isinstance(task, Task):
                q.upsert_task(s, task)
            q.upsert_baseline(s, task.hash if isinstance(task, Task) else task, system, data)

    def get_baseline(self, task_hash: str, system: SystemInfo) -> BaselineInfo | None:
        with self._tx(write=False) as s:
            return q.get_baseline(s, task_hash, system)

    # --- maintenance ---------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        return db.current_revision(self.engine)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when sound); "ok" on other backends."""
        if self.dialect != "sqlite":
            return "ok"
        with self.engine.connect() as conn:
            return "\n".join(r[0] for r in conn.execute(text("PRAGMA integrity_check")))

    def count(self, table: str) -> int:
        """Rows in one of the store's tables (diagnostics and tests)."""
        model = {mp.class_.__tablename__: mp.class_ for mp in m.Base.registry.mappers}[table]
        with self._tx(write=False) as s:
            return s.scalar(select(func.count()).select_from(model)) or 0
