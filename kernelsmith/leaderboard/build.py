"""Read runs.db and compute the leaderboard (groups of runs over one reference set each)."""

from __future__ import annotations

import datetime as dt
import hashlib
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kernelsmith.leaderboard import metrics as mt
from kernelsmith.store import models as m

SCHEMA = "kernelsmith.leaderboard/1"


@dataclass
class RunEntry:
    """One run's row on the leaderboard."""

    run_id: str
    kind: str
    status: str
    model: str
    strategy: str
    label: str
    gpu: str
    hardware_id: int | None
    created_at: str
    replayed: bool  # any of its LLM calls came from a recorded session (or model "replay:...")
    outcomes: list[mt.TaskOutcome]
    summary: mt.Summary
    levels: dict[str, mt.Summary]  # "1", "2", ... and "none" for tasks without a level
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    gpu_seconds: float = 0.0
    # harness versions of its evaluations ("?" for those recorded before versions were kept)
    harness: list[str] = field(default_factory=list)
    # evaluated candidates per (language, task): pass@k, fast_p@k, proficiency (lang_table)
    samples: list[mt.SampleStats] = field(default_factory=list)
    rank: int = 0

    @property
    def tasks(self) -> int:
        return len(self.outcomes)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def _per_task(self, x: float) -> float | None:
        return x / self.tasks if self.tasks else None

    @property
    def tokens_per_task(self) -> float | None:
        return self._per_task(self.tokens)

    @property
    def cost_per_task(self) -> float | None:
        return self._per_task(self.cost_usd)

    @property
    def gpu_seconds_per_task(self) -> float | None:
        return self._per_task(self.gpu_seconds)

    @property
    def wins(self) -> int:
        return sum(1 for o in self.outcomes if o.correct and o.speedup_eager is not None and o.speedup_eager > 1.0)

    @property
    def wins_per_usd(self) -> float | None:
        return mt.per_dollar(self.wins, self.cost_usd)

    @property
    def entry(self) -> str:
        return f"{self.model or '?'} / {self.strategy or '?'} / {self.gpu or '?'}"

    def to_dict(self, with_tasks: bool = True) -> dict[str, Any]:
        d = {"rank": self.rank, "run_id": self.run_id, "kind": self.kind, "status": self.status,
             "model": self.model, "strategy": self.strategy, "gpu": self.gpu, "hardware_id": self.hardware_id,
             "label": self.label, "replayed": self.replayed, "created_at": self.created_at,
             "harness": self.harness,
             **self.summary.to_dict(),
             "llm_calls": self.llm_calls, "prompt_tokens": self.prompt_tokens,
             "completion_tokens": self.completion_tokens, "tokens": self.tokens, "cost_usd": self.cost_usd,
             "gpu_seconds": self.gpu_seconds, "tokens_per_task": self.tokens_per_task,
             "cost_per_task_usd": self.cost_per_task, "gpu_seconds_per_task": self.gpu_seconds_per_task,
             "wins": self.wins, "wins_per_usd": self.wins_per_usd,
             "levels": {k: v.to_dict() for k, v in self.levels.items()},
             "fast_p_curve": [[p, f] for p, f in mt.curve(self.outcomes)],
             "languages": [x.to_dict() for x in self.samples]}
        if with_tasks:
            d["tasks_detail"] = [_outcome_dict(o) for o in self.outcomes]
        return d


def _outcome_dict(o: mt.TaskOutcome) -> dict[str, Any]:
    return {"task_hash": o.task_hash, "name": o.name, "level": o.level, "problem_id": o.problem_id,
            "origin": o.origin, "candidates": o.candidates, "evaluated": o.evaluated, "correct": o.correct,
            "speedup_eager": o.speedup_eager, "speedup_compile": o.speedup_compile,
            "candidate_ms": o.candidate_ms, "eager_ms": o.eager_ms, "compiled_ms": o.compiled_ms,
            "speedup_eager_ci": list(o.ci), "best_candidate_id": o.best_candidate_id,
            "best_evaluation_id": o.best_evaluation_id}


@dataclass
class Group:
    """Runs over exactly the same set of task hashes: the only runs ranked together."""

    name: str  # "A", "B", ...
    set_id: str  # sha256 of the sorted task hashes, first 12 hex digits
    tasks: list[dict[str, Any]]  # hash, name, level, problem_id, origin
    runs: list[RunEntry] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"reference set {self.name} ({len(self.tasks)} tasks, {self.set_id})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "set_id": self.set_id, "task_count": len(self.tasks),
                "tasks": self.tasks, "runs": [r.to_dict() for r in self.runs]}


@dataclass
class Leaderboard:
    groups: list[Group]
    notes: list[str]
    generated_at: str
    db: str = ""

    @property
    def runs(self) -> list[RunEntry]:
        return [r for g in self.groups for r in g.runs]

    def to_dict(self) -> dict[str, Any]:
        from kernelsmith.leaderboard import DEFINITIONS

        return {"schema": SCHEMA, "generated_at": self.generated_at, "db": self.db,
                "definitions": DEFINITIONS, "notes": self.notes, "groups": [g.to_dict() for g in self.groups]}


# --- loading ---------------------------------------------------------------------------------

def _group_name(i: int) -> str:
    letters = string.ascii_uppercase
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = letters[r] + name
    return name


def _rank_key(r: RunEntry) -> tuple:
    s = r.summary
    neg = lambda x: -(x if x is not None else -1.0)  # noqa: E731
    return (neg(s.fast["fast_1"]), neg(s.geomean_eager_all), neg(s.fast["fast_0"]), r.created_at, r.run_id)


def load_run(s: Session, run: m.Run, tasks: dict[str, m.TaskRow], hardware: dict[int, m.Hardware]) -> RunEntry:
    C, E, L = m.CandidateRow, m.Evaluation, m.LLMCall
    order: list[str] = [h for (h,) in s.execute(select(m.RunTask.task_hash).where(m.RunTask.run_id == run.id)
                                                 .order_by(m.RunTask.position, m.RunTask.task_hash))]
    cands = s.execute(select(C.id, C.task_hash, C.code).where(C.run_id == run.id).order_by(C.seq)).all()
    for _, th, _ in cands:
        if th not in order:
            order.append(th)
    per_task_cands: Counter[str] = Counter(th for _, th, _ in cands)
    evals = s.execute(select(E.id, E.candidate_id, E.verdict, E.speedup_eager, E.speedup_compile, E.candidate_ms,
                             E.eager_ms, E.compiled_ms, E.speedup_eager_ci_low, E.speedup_eager_ci_high,
                             E.gpu_seconds, E.hardware_id, E.harness, C.task_hash)
                      .join(C, C.id == E.candidate_id).where(C.run_id == run.id).order_by(E.id)).all()
    latest: dict[str, Any] = {}
    gpu_seconds = 0.0
    hw_counts: Counter[int] = Counter()
    for e in evals:
        latest[e.candidate_id] = e  # ordered by id: the last one wins
        gpu_seconds += e.gpu_seconds or 0.0
        if e.hardware_id is not None:
            hw_counts[e.hardware_id] += 1
    harness = {e.harness or "?" for e in latest.values()}  # of the evaluations that count
    outcomes: dict[str, mt.TaskOutcome] = {}
    for th in order:
        t = tasks.get(th)
        outcomes[th] = mt.TaskOutcome(task_hash=th, name=t.name if t else th[:12], level=t.level if t else None,
                                      problem_id=t.problem_id if t else None, origin=t.origin if t else None,
                                      candidates=per_task_cands.get(th, 0))
    for e in latest.values():
        o = outcomes[e.task_hash]
        o.evaluated += 1
        if e.verdict != "correct":
            continue
        o.correct = True
        cur = o.speedup_eager if o.best_evaluation_id is not None else None
        better = o.best_evaluation_id is None or (e.speedup_eager is not None and (cur is None or e.speedup_eager > cur))
        if better:
            o.speedup_eager, o.speedup_compile = e.speedup_eager, e.speedup_compile
            o.candidate_ms, o.eager_ms, o.compiled_ms = e.candidate_ms, e.eager_ms, e.compiled_ms
            o.ci = (e.speedup_eager_ci_low, e.speedup_eager_ci_high)
            o.best_candidate_id, o.best_evaluation_id, o.hardware_id = e.candidate_id, e.id, e.hardware_id
    samples = _samples(cands, latest, outcomes)
    calls = s.execute(select(func.count(), func.sum(L.prompt_tokens), func.sum(L.completion_tokens),
                             func.sum(L.cost_usd), func.count().filter(L.replayed.is_(True)))
                      .where(L.run_id == run.id)).one()
    hw_id = run.hardware_id if run.hardware_id is not None else (hw_counts.most_common(1)[0][0] if hw_counts else None)
    hw = hardware.get(hw_id) if hw_id is not None else None
    outs = list(outcomes.values())
    by_level: dict[str, list[mt.TaskOutcome]] = defaultdict(list)
    for o in outs:
        by_level[str(o.level) if o.level is not None else "none"].append(o)
    levels = {k: mt.summarize(v) for k, v in sorted(by_level.items(), key=lambda kv: (kv[0] == "none", kv[0]))}
    created = run.created_at
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    return RunEntry(
        run_id=run.id, kind=run.kind, status=run.status, model=run.model, strategy=run.strategy, label=run.label,
        gpu=hw.gpu if hw else "", hardware_id=hw_id, created_at=created.isoformat() if created else "",
        replayed=bool(calls[4]) or run.model.startswith("replay:"), outcomes=outs, summary=mt.summarize(outs),
        levels=levels, llm_calls=int(calls[0] or 0), prompt_tokens=int(calls[1] or 0),
        completion_tokens=int(calls[2] or 0), cost_usd=float(calls[3] or 0.0), gpu_seconds=gpu_seconds,
        harness=sorted(harness), samples=samples)


def _samples(cands: Sequence[Any], latest: dict[str, Any], outcomes: dict[str, mt.TaskOutcome]) -> list[mt.SampleStats]:
    """Per (language, task), the run's evaluated candidates in proposal order (seq). The
    language is the one the code imports (kernelsmith.languages.detect), "unknown" if none."""
    from kernelsmith.languages import detect

    by_key: dict[tuple[str, str], mt.SampleStats] = {}
    for cid, th, code in cands:
        e = latest.get(cid)
        if e is None:  # proposed, never evaluated: not a sample
            continue
        lang = detect(code or "") or "unknown"
        st = by_key.setdefault((lang, th), mt.SampleStats(lang, th, outcomes[th].name))
        ok = e.verdict == "correct"
        st.correct_in_order.append(ok)
        st.speedups_in_order.append(e.speedup_eager if ok else None)
    return sorted(by_key.values(), key=lambda x: (x.language, x.name, x.task_hash))


def build(store_or_url: Any = None, run_ids: Sequence[str] | None = None, kind: str | None = None) -> Leaderboard:
    """The leaderboard of the runs in a RunStore (or a database URL / path; None: the default
    runs.db). ``run_ids``: only these runs (ids or unique prefixes); ``kind``: only runs of
    this kind. Runs without any task are left out (noted)."""
    from kernelsmith.store.runs import RunStore

    store = store_or_url if isinstance(store_or_url, RunStore) else RunStore(store_or_url)
    try:
        with Session(store.engine) as s:
            return _build(s, store, run_ids, kind)
    finally:
        if store is not store_or_url:
            store.close()


def _build(s: Session, store: Any, run_ids: Sequence[str] | None, kind: str | None) -> Leaderboard:
    from kernelsmith.store.queries import get_run

    q = select(m.Run).order_by(m.Run.created_at, m.Run.id)
    if run_ids:
        ids = [get_run(s, rid).id for rid in run_ids]  # raises NotFound on an unknown id / ambiguous prefix
        q = q.where(m.Run.id.in_(ids))
    if kind:
        q = q.where(m.Run.kind == kind)
    runs = list(s.scalars(q))
    tasks = {t.hash: t for t in s.scalars(select(m.TaskRow))}
    hardware = {h.id: h for h in s.scalars(select(m.Hardware))}
    notes: list[str] = []
    entries = [load_run(s, r, tasks, hardware) for r in runs]
    empty = [e.run_id for e in entries if not e.outcomes]
    if empty:
        notes.append(f"left out {len(empty)} run(s) with no task: {', '.join(empty)}")
    entries = [e for e in entries if e.outcomes]
    by_set: dict[frozenset[str], list[RunEntry]] = defaultdict(list)
    for e in entries:
        by_set[frozenset(o.task_hash for o in e.outcomes)].append(e)
    ordered = sorted(by_set.items(), key=lambda kv: (-len(kv[1]), min(r.created_at for r in kv[1]),
                                                     sorted(kv[0])))
    groups: list[Group] = []
    for i, (hashes, rs) in enumerate(ordered):
        set_id = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()[:12]
        first = rs[0].outcomes
        tlist = [{"hash": o.task_hash, "name": o.name, "level": o.level, "problem_id": o.problem_id,
                  "origin": o.origin} for o in sorted(first, key=lambda o: (o.level or 0, o.problem_id or 0, o.name,
                                                                            o.task_hash))]
        rs.sort(key=_rank_key)
        for rank, r in enumerate(rs, 1):
            r.rank = rank
        groups.append(Group(name=_group_name(i), set_id=set_id, tasks=tlist, runs=rs))
    if len(groups) > 1:
        notes.append(f"{len(groups)} reference sets: runs are ranked only against runs checked against exactly "
                     "the same task hashes (the exact reference sources); never compare ranks across sets.")
    versions: dict[str, set[str]] = defaultdict(set)
    for g in groups:
        for t in g.tasks:
            versions[t["name"]].add(t["hash"])
    for name, hs in sorted(versions.items()):
        if len(hs) > 1:
            notes.append(f"task {name!r} has {len(hs)} reference versions ({', '.join(sorted(h[:12] for h in hs))}): "
                         "results checked against different versions are in different reference sets.")
    gpus = {r.gpu for r in entries}
    if len(gpus) > 1:
        notes.append("runs on different GPUs: speedups are relative to eager PyTorch on the run's own GPU.")
    harnesses = {v for r in entries for v in r.harness}
    if len(harnesses) > 1:
        notes.append(f"evaluations from harness versions {', '.join(sorted(harnesses))} ('?': recorded before "
                     "versions were kept): timing can change between versions (version 4 took the host's launch "
                     "out of the events), so compare speedups only within one version.")
    if any(r.replayed for r in entries):
        notes.append("runs marked 'replay' re-used recorded model outputs; their cost is the recorded one.")
    return Leaderboard(groups=groups, notes=notes, db=store.engine.url.render_as_string(hide_password=True),
                       generated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


__all__ = ["Leaderboard", "Group", "RunEntry", "build", "load_run", "SCHEMA"]
