"""Export recorded runs as a training dataset (JSONL or Parquet), one row per candidate.

    from kernelsmith.dataset import export_runs
    n = export_runs(store, ["r-3f9a2c1b"], "out/data.parquet", fmt="parquet")

Both files load with Hugging Face ``datasets``::

    datasets.load_dataset("json", data_files="data.jsonl", split="train")
    datasets.load_dataset("parquet", data_files="data.parquet", split="train")

Columns (``COLUMNS``; ``evaluation`` only with ``with_results=True``):

- identity: ``run_id``, ``candidate_id``, ``seq`` (order in the run), ``parent_ids`` (list of
  candidate ids, first = main parent), ``task_hash``, ``task_name``, ``task`` (= task_name,
  the key kernelsmith's TRL reward adapter looks the task up by), ``level``, ``problem_id``
- model side: ``prompt`` (the chat messages, a list of ``{role, content}``; null when the
  candidate has no recorded completion, e.g. ``bench --generations`` rows), ``completion``
  (the model's raw text, null likewise), ``messages`` (``prompt`` + the assistant
  ``completion``, the conversational SFT format; null without a completion), ``code``
  (the candidate file extracted from the completion; null on a format error), ``model``,
  ``strategy``, ``strategy_info`` (JSON text: island, round, operator ...), ``replayed``
  (the completion came from a recorded session, not a live endpoint)
- outcome: ``verdict`` (an EvalResult verdict, ``"format_error"`` when no code could be
  extracted, null when never evaluated), ``error_class``, ``message``, ``correct`` (bool),
  ``speedup_eager``, ``speedup_eager_ci_low``, ``speedup_eager_ci_high``,
  ``speedup_compile``, ``candidate_ms``, ``eager_ms``, ``max_abs_error``, ``rel_error``
- ``rewards``: ``{name: float | null}`` for each requested reward (``rewards.get(name)``
  applied to the latest evaluation; a format error scores as "no result", an unevaluated
  candidate gets null). Rewards are computed over every candidate of the selected runs,
  grouped by (run, task) (``group=`` for group-relative rewards such as ``contrastive``),
  before any filter, so a row's reward does not depend on the filters.
- ``hardware``: ``{gpu, driver, torch}`` of the evaluation (null when never evaluated)
- ``evaluation``: the whole ``EvalResult.to_dict()`` as JSON text (``with_results``)

SFT: train on ``messages`` (TRL's SFTTrainer takes a conversational ``messages`` column);
usually with ``correct_only`` or ``best_per_task``. GRPO: ``prompt`` is the conversational
prompt TRL's GRPOTrainer expects and ``task`` names the task for the reward adapter; the
other columns reach reward functions as keyword arguments.

Filters, in this order: candidates without a completion are left out unless
``include_code_only``; ``correct_only`` keeps correct ones; ``best_per_task`` keeps, per
(run, task), the correct candidate with the highest ``speedup_eager`` (the earliest on ties,
as ``RunStore.best``) among the rows the other filters kept.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kernelsmith.store import models as m
from kernelsmith.store.runs import RunStore

FORMATS = ("jsonl", "parquet")
DEFAULT_REWARDS = ("log_speedup", "staged")
COLUMNS = (
    "run_id", "candidate_id", "seq", "parent_ids", "task_hash", "task_name", "task", "level", "problem_id",
    "prompt", "completion", "messages", "code", "model", "strategy", "strategy_info", "replayed",
    "verdict", "error_class", "message", "correct",
    "speedup_eager", "speedup_eager_ci_low", "speedup_eager_ci_high", "speedup_compile",
    "candidate_ms", "eager_ms", "max_abs_error", "rel_error",
    "rewards", "hardware",
)
RESULT_COLUMN = "evaluation"
_FLOATS = ("speedup_eager", "speedup_eager_ci_low", "speedup_eager_ci_high", "speedup_compile",
           "candidate_ms", "eager_ms", "max_abs_error", "rel_error")


class ExportError(Exception):
    """A request that cannot be exported; ``code`` is the CLI's exit status (2 bad input, 1 nothing to export)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


@dataclass
class ExportOptions:
    correct_only: bool = False
    best_per_task: bool = False
    rewards: Sequence[str] = DEFAULT_REWARDS
    include_code_only: bool = False
    with_results: bool = False


@dataclass
class ExportSummary:
    path: Path
    rows: int
    runs: list[str]
    skipped_code_only: int = 0
    columns: list[str] = field(default_factory=list)


# --- collecting rows -----------------------------------------------------------------------

def resolve_runs(store: RunStore, run_ids: Iterable[str]) -> list[str]:
    """Full run ids (prefixes accepted), in the order given, without repeats; ExportError(2) if unknown."""
    from kernelsmith.store.queries import NotFound

    out: list[str] = []
    for rid in run_ids:
        try:
            full = store.get_run(rid).id
        except NotFound as exc:
            raise ExportError(str(exc), 2) from None
        if full not in out:
            out.append(full)
    if not out:
        raise ExportError("give at least one run id (`kernelsmith runs list` shows them)", 2)
    return out


def _messages(prompt: Any) -> list[dict[str, str]]:
    out = []
    for msg in prompt or []:
        if isinstance(msg, dict):
            content = msg.get("content")
            if not isinstance(content, str):  # multi-part content: keep its text parts
                content = "".join(p.get("text", "") for p in content or [] if isinstance(p, dict)) \
                    if isinstance(content, list) else ("" if content is None else str(content))
            out.append({"role": str(msg.get("role", "")), "content": content})
    return out


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _load(s: Session, run_ids: list[str]) -> list[dict[str, Any]]:
    runs = {r.id: r for r in s.scalars(select(m.Run).where(m.Run.id.in_(run_ids)))}
    in_runs = m.CandidateRow.run_id.in_(run_ids)
    cands = list(s.scalars(select(m.CandidateRow).where(in_runs)))
    order = {rid: i for i, rid in enumerate(run_ids)}
    cands.sort(key=lambda c: (order[c.run_id], c.seq))
    parents: dict[str, list[str]] = {}
    for child, parent in s.execute(
            select(m.CandidateParent.child_id, m.CandidateParent.parent_id)
            .join(m.CandidateRow, m.CandidateRow.id == m.CandidateParent.child_id)
            .where(in_runs).order_by(m.CandidateParent.child_id, m.CandidateParent.position)):
        parents.setdefault(child, []).append(parent)
    latest = (select(func.max(m.Evaluation.id)).join(m.CandidateRow, m.CandidateRow.id == m.Evaluation.candidate_id)
              .where(in_runs).group_by(m.Evaluation.candidate_id))
    evals = {e.candidate_id: e for e in s.scalars(select(m.Evaluation).where(m.Evaluation.id.in_(latest)))}
    hw_ids = {e.hardware_id for e in evals.values() if e.hardware_id is not None}
    hardware = {h.id: h for h in s.scalars(select(m.Hardware).where(m.Hardware.id.in_(hw_ids)))} if hw_ids else {}
    call_ids = {c.llm_call_id for c in cands if c.llm_call_id is not None}
    calls = {c.id: c for c in s.scalars(select(m.LLMCall).where(m.LLMCall.id.in_(call_ids)))} if call_ids else {}
    hashes = {c.task_hash for c in cands}
    tasks = {t.hash: t for t in s.scalars(select(m.TaskRow).where(m.TaskRow.hash.in_(hashes)))} if hashes else {}

    rows = []
    for c in cands:
        run, ev, call, task = runs[c.run_id], evals.get(c.id), calls.get(c.llm_call_id), tasks.get(c.task_hash)
        texts = (call.completions_json or []) if call is not None else []
        completion = texts[c.completion_index] if (c.completion_index is not None
                                                   and 0 <= c.completion_index < len(texts)) else None
        prompt = _messages(call.prompt_json) if call is not None and completion is not None else None
        hw = hardware.get(ev.hardware_id) if ev is not None and ev.hardware_id is not None else None
        if ev is not None:
            verdict, error_class, message = ev.verdict, ev.error_class, ev.message
        elif c.status == "format_error":
            verdict, error_class, message = "format_error", "format", c.format_error
        else:
            verdict, error_class, message = None, None, None
        name = task.name if task is not None else None
        row: dict[str, Any] = {
            "run_id": c.run_id, "candidate_id": c.id, "seq": c.seq, "parent_ids": parents.get(c.id, []),
            "task_hash": c.task_hash, "task_name": name, "task": name,
            "level": task.level if task is not None else None,
            "problem_id": task.problem_id if task is not None else None,
            "prompt": prompt, "completion": completion,
            "messages": prompt + [{"role": "assistant", "content": completion}] if prompt is not None else None,
            "code": c.code or None,
            "model": (call.model if call is not None and call.model else run.model) or None,
            "strategy": run.strategy or None,
            "strategy_info": json.dumps(c.strategy_info_json or {}, sort_keys=True),
            "replayed": bool(call.replayed) if call is not None else False,
            "verdict": verdict, "error_class": error_class, "message": message,
            "correct": verdict == "correct",
            **{k: _num(getattr(ev, k)) if ev is not None else None for k in _FLOATS},
            "hardware": {"gpu": hw.gpu, "driver": hw.driver, "torch": hw.torch} if hw is not None else None,
            "_result": dict(ev.result_json or {}) if ev is not None else None,
            "_format_error": ev is None and c.status == "format_error",
        }
        rows.append(row)
    return rows


def _score(rows: list[dict[str, Any]], reward_names: Sequence[str]) -> None:
    """Fill ``row["rewards"]`` with each named reward, batched over all rows, grouped by (run, task)."""
    import rewards as reward_registry

    fns = {}
    for name in reward_names:
        try:
            fns[name] = reward_registry.get(name)
        except KeyError as exc:
            raise ExportError(str(exc.args[0] if exc.args else exc), 2) from None
    scored = [r for r in rows if r["_result"] is not None or r["_format_error"]]
    completions = [r["completion"] if r["completion"] is not None else (r["code"] or "") for r in scored]
    results = [r["_result"] for r in scored]
    group = [f'{r["run_id"]}/{r["task_hash"]}' for r in scored]
    values: dict[str, list] = {}
    for name, fn in fns.items():
        got = list(fn(completions, results, group=group)) if scored else []
        if len(got) != len(scored):
            raise ExportError(f"reward {name!r} returned {len(got)} values for {len(scored)} candidates", 2)
        values[name] = got
    index = {id(r): i for i, r in enumerate(scored)}
    for r in rows:
        i = index.get(id(r))
        r["rewards"] = {name: (_num(values[name][i]) if i is not None else None) for name in fns}


def _select(rows: list[dict[str, Any]], opts: ExportOptions) -> tuple[list[dict[str, Any]], int]:
    kept = rows if opts.include_code_only else [r for r in rows if r["completion"] is not None]
    skipped = len(rows) - len(kept)
    if opts.correct_only or opts.best_per_task:
        kept = [r for r in kept if r["correct"]]
    if opts.best_per_task:
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for r in kept:  # run order: the earliest wins a tie
            key = (r["run_id"], r["task_hash"])
            cur = best.get(key)
            s = r["speedup_eager"] if r["speedup_eager"] is not None else -math.inf
            if cur is None or s > (cur["speedup_eager"] if cur["speedup_eager"] is not None else -math.inf):
                best[key] = r
        chosen = {id(r) for r in best.values()}
        kept = [r for r in kept if id(r) in chosen]
    return kept, skipped


def collect(store: RunStore, run_ids: Iterable[str], opts: ExportOptions | None = None) -> tuple[list[dict], int]:
    """The rows to export (dicts with ``columns(opts)`` keys) and how many code-only candidates were left out."""
    opts = opts or ExportOptions()
    ids = resolve_runs(store, run_ids)
    with Session(store.engine) as s:
        rows = _load(s, ids)
    _score(rows, list(dict.fromkeys(opts.rewards)))
    kept, skipped = _select(rows, opts)
    cols = columns(opts)
    out = []
    for r in kept:
        row = {k: r[k] for k in COLUMNS}
        if opts.with_results:
            row[RESULT_COLUMN] = json.dumps(r["_result"], sort_keys=True) if r["_result"] is not None else None
        out.append({k: row[k] for k in cols})
    return out, skipped


def columns(opts: ExportOptions) -> list[str]:
    return list(COLUMNS) + ([RESULT_COLUMN] if opts.with_results else [])


# --- writing -------------------------------------------------------------------------------

def arrow_schema(opts: ExportOptions):
    """The Parquet schema: fixed types, so an all-null column is still typed."""
    import pyarrow as pa

    msg = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    f64, s = pa.float64(), pa.string()
    types = {
        "run_id": s, "candidate_id": s, "seq": pa.int64(), "parent_ids": pa.list_(s), "task_hash": s,
        "task_name": s, "task": s, "level": pa.int64(), "problem_id": pa.int64(), "prompt": msg, "completion": s,
        "messages": msg, "code": s, "model": s, "strategy": s, "strategy_info": s, "replayed": pa.bool_(),
        "verdict": s, "error_class": s, "message": s, "correct": pa.bool_(),
        **{k: f64 for k in _FLOATS},
        "rewards": pa.struct([(name, f64) for name in dict.fromkeys(opts.rewards)]) if opts.rewards else pa.struct([]),
        "hardware": pa.struct([("gpu", s), ("driver", s), ("torch", s)]),
        RESULT_COLUMN: s,
    }
    return pa.schema([(c, types[c]) for c in columns(opts)])


def _target(out: str | os.PathLike, fmt: str) -> Path:
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        path = path / f"kernelsmith-export.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write(rows: list[dict], path: Path, fmt: str, opts: ExportOptions) -> None:
    """Write atomically (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if fmt == "jsonl":
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n")
        else:
            os.close(fd)
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = arrow_schema(opts)
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def export_runs(store: RunStore, run_ids: Iterable[str], out: str | os.PathLike, fmt: str = "jsonl",
                opts: ExportOptions | None = None) -> ExportSummary:
    """Export the runs' candidates to ``out`` (its folders are created; a folder gets
    ``kernelsmith-export.FMT`` inside). ExportError(2) on bad input, ExportError(1) when the
    selection is empty (nothing is written then)."""
    opts = opts or ExportOptions()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}", 2)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ExportError("--format parquet needs pyarrow: pip install pyarrow (or use --format jsonl)", 2) from None
    ids = resolve_runs(store, run_ids)
    rows, skipped = collect(store, ids, opts)
    if not rows:
        why = []
        if skipped:
            why.append(f"{skipped} candidate(s) without a model completion were left out (--include-code-only keeps them)")
        if opts.correct_only or opts.best_per_task:
            why.append("no candidate left was verified correct")
        raise ExportError(f"nothing to export from {', '.join(ids)}" + (": " + "; ".join(why) if why else
                                                                           ": the runs have no candidates"), 1)
    path = _target(out, fmt)
    write(rows, path, fmt, opts)
    return ExportSummary(path=path, rows=len(rows), runs=ids, skipped_code_only=skipped, columns=columns(opts))


__all__ = ["export_runs", "collect", "columns", "arrow_schema", "resolve_runs", "ExportOptions", "ExportSummary",
           "ExportError", "COLUMNS", "DEFAULT_REWARDS", "FORMATS"]
