"""Between the project's dataclasses and table rows, and the value types the store returns.

Values are made storable the same way on every backend: NaN and infinities become NULL
(PostgreSQL's JSON refuses them), NUL characters become U+FFFD (PostgreSQL's text
refuses them; a candidate's output may hold any byte), bounded strings are cut.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernelsmith.llm.types import Completion, Usage
from kernelsmith.results import EvalResult, SystemInfo, code_hash  # noqa: F401 - code_hash re-exported
from kernelsmith.store import models as m

if TYPE_CHECKING:  # search imports the store: import Candidate only where used
    from kernelsmith.search.types import Candidate


@dataclass
class RunInfo:
    id: str
    kind: str
    status: str
    model: str
    strategy: str
    label: str
    config: dict
    budget: dict
    notes: str
    best_candidate_id: str | None
    hardware_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    best_speedup: float | None = None  # speedup_eager of the best candidate's latest evaluation


@dataclass
class RunTaskInfo:
    run_id: str
    task_hash: str
    name: str
    origin: str | None
    position: int
    status: str
    best_candidate_id: str | None
    updated_at: dt.datetime


@dataclass
class BaselineInfo:
    task_hash: str
    hardware_id: int
    eager_ms: float | None
    compiled_ms: float | None
    ratio: float | None
    data: dict = field(default_factory=dict)
    updated_at: dt.datetime | None = None


def utc(t: dt.datetime | None) -> dt.datetime | None:
    """Aware, in datetime.timezone.utc (SQLite hands datetimes back naive; all are stored in UTC)."""
    if t is None:
        return None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def txt(s: str | None, limit: int | None = None) -> str:
    s = (s or "").replace("\x00", "\ufffd")
    return s[:limit] if limit else s


def clean(obj: Any) -> Any:
    """A JSON value storable on every backend (see module doc)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return obj.replace("\x00", "\ufffd")
    if isinstance(obj, dict):
        return {clean(str(k)): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int)):
        return obj
    return clean(str(obj))


def gpu_seconds(wall: dict[str, float]) -> float:
    """Seconds the evaluation held a GPU: its stages, not their parts ("a.b") and not the
    compile (CPU, in parallel with other candidates' GPU time)."""
    return num(sum(v for k, v in wall.items() if v and "." not in k and k != "compile")) or 0.0


def fingerprint(s: SystemInfo) -> str | None:
    """sha256 of gpu, driver, torch, cuda; None when the result carries no system at all."""
    if not any((s.gpu, s.driver, s.torch, s.cuda)):
        return None
    return hashlib.sha256("\0".join((s.gpu, s.driver, s.torch, s.cuda)).encode()).hexdigest()


def hardware_values(s: SystemInfo) -> dict[str, Any]:
    return dict(fingerprint=fingerprint(s), gpu=txt(s.gpu, 200), compute_capability=txt(s.compute_capability, 16),
                driver=txt(s.driver, 64), torch=txt(s.torch, 64), cuda=txt(s.cuda, 64), cupy=txt(s.cupy, 64),
                python=txt(s.python, 64), hostname=txt(s.hostname, 255), created_at=m.utcnow())


def evaluation_values(result: EvalResult) -> dict[str, Any]:
    t, c = result.timing, result.check
    ci = t.speedup_eager_ci if t and t.speedup_eager_ci else (None, None)
    compile_s = result.compile.seconds if result.compile else result.wall.get("compile")
    return dict(
        verdict=result.verdict.value, error_class=result.error.value, message=txt(result.message),
        speedup_eager=num(t.speedup_eager) if t else None,
        speedup_eager_ci_low=num(ci[0]), speedup_eager_ci_high=num(ci[1]),
        speedup_compile=num(t.speedup_compile) if t else None,
        candidate_ms=num(t.candidate.median_ms) if t and t.candidate else None,
        eager_ms=num(t.eager.median_ms) if t and t.eager else None,
        compiled_ms=num(t.compiled_ms) if t else None,
        max_abs_error=num(c.max_abs_error) if c else None,
        rel_error=num(c.rel_error) if c else None,
        compile_seconds=num(compile_s),
        gpu_seconds=0.0 if result.cached else gpu_seconds(result.wall),
        cached=bool(result.cached),
        harness=txt(result.system.harness, 16) or None,
        result_json=clean(result.to_dict()),
    )


def stage_values(result: EvalResult) -> list[dict[str, Any]]:
    rows = []
    for name, st in (("static", result.static), ("compile", result.compile), ("check", result.check),
                     ("time", result.timing)):
        if st is not None:
            rows.append(dict(stage=name, ok=bool(st.ok), seconds=num(st.seconds) or 0.0,
                             error_class=st.error.value, message=txt(st.message)))
    return rows


def completion(call: m.LLMCall, index: int | None) -> Completion | None:
    texts = call.completions_json or []
    if index is None or not 0 <= index < len(texts):
        return None
    reasons = call.finish_reasons_json or []
    return Completion(text=texts[index], model=call.model,
                      usage=Usage(call.prompt_tokens, call.completion_tokens, call.reasoning_tokens,
                                  call.cached_tokens),
                      cost_usd=call.cost_usd, latency_s=call.latency_s, call_id=call.provider_call_id,
                      finish_reason=reasons[index] if index < len(reasons) else "", replayed=call.replayed)


def candidate(row: m.CandidateRow, parents: list[str], result_json: dict | None,
              call: m.LLMCall | None) -> Candidate:
    from kernelsmith.search.types import Candidate

    return Candidate(
        code=row.code, id=row.id, parents=parents, strategy_info=dict(row.strategy_info_json or {}),
        completion=completion(call, row.completion_index) if call is not None else None,
        prompt=list(call.prompt_json or []) if call is not None else [],
        result=EvalResult.from_dict(result_json) if result_json is not None else None,
        format_error=row.format_error or "",
    )


def run_info(row: m.Run, best_speedup: float | None = None) -> RunInfo:
    return RunInfo(id=row.id, kind=row.kind, status=row.status, model=row.model, strategy=row.strategy,
                   label=row.label, config=dict(row.config_json or {}), budget=dict(row.budget_json or {}),
                   notes=row.notes, best_candidate_id=row.best_candidate_id, hardware_id=row.hardware_id,
                   created_at=utc(row.created_at), updated_at=utc(row.updated_at), best_speedup=best_speedup)
