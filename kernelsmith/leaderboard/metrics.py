"""Pure metric functions of the leaderboard (no database): see the package docstring for
the definitions. Every function takes per-task outcomes and returns plain numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

FAST_PS = (0.0, 1.0, 1.5, 2.0)  # the fast_p thresholds reported as columns
CURVE_PS = tuple(round(0.05 * i, 2) for i in range(81))  # 0.00 .. 4.00 for the fast_p curve


@dataclass
class TaskOutcome:
    """What one run achieved on one task (one exact reference, by hash)."""

    task_hash: str
    name: str
    level: int | None = None
    problem_id: int | None = None
    origin: str | None = None
    candidates: int = 0  # candidates the run proposed for the task
    evaluated: int = 0  # of which have a result
    correct: bool = False  # at least one candidate's latest result is "correct"
    speedup_eager: float | None = None  # of the winning (best correct, by speedup over eager) kernel
    speedup_compile: float | None = None  # of that same winning kernel
    candidate_ms: float | None = None
    eager_ms: float | None = None
    compiled_ms: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    best_candidate_id: str | None = None
    best_evaluation_id: int | None = None
    hardware_id: int | None = None


def fast_p(outcomes: Sequence[TaskOutcome], p: float) -> float | None:
    """KernelBench's fast_p: the fraction of ALL attempted tasks whose winning kernel is
    correct and (for p > 0) more than p times faster than eager. fast_0 is the correct rate
    (a correct kernel without timing counts for fast_0 only)."""
    if not outcomes:
        return None
    hits = sum(1 for o in outcomes if o.correct and (p <= 0 or (o.speedup_eager is not None and o.speedup_eager > p)))
    return hits / len(outcomes)


def geomean(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def geomean_correct(outcomes: Sequence[TaskOutcome], attr: str = "speedup_eager") -> float | None:
    """Geometric mean over the tasks with a correct, timed kernel only."""
    return geomean(getattr(o, attr) for o in outcomes if o.correct and getattr(o, attr) is not None)


def geomean_all(outcomes: Sequence[TaskOutcome], attr: str = "speedup_eager") -> float | None:
    """Geometric mean over ALL attempted tasks, a task without a correct timed kernel
    counting as 1.0x (the user keeps the baseline)."""
    if not outcomes:
        return None
    return geomean((getattr(o, attr) if o.correct and getattr(o, attr) is not None else 1.0) for o in outcomes)


def speedups(outcomes: Sequence[TaskOutcome]) -> list[float]:
    """The winning speedups over eager of the tasks with a correct timed kernel."""
    return [o.speedup_eager for o in outcomes if o.correct and o.speedup_eager is not None]


@dataclass
class Summary:
    """The metrics of a set of outcomes (a run, or one level of a run)."""

    tasks: int
    correct: int
    fast: dict[str, float | None] = field(default_factory=dict)  # "fast_0", "fast_1", "fast_1.5", "fast_2"
    geomean_eager_correct: float | None = None
    geomean_eager_all: float | None = None
    geomean_compile_correct: float | None = None
    geomean_compile_all: float | None = None

    def to_dict(self) -> dict:
        return {"tasks": self.tasks, "correct": self.correct, **self.fast,
                "geomean_eager_correct": self.geomean_eager_correct, "geomean_eager_all": self.geomean_eager_all,
                "geomean_compile_correct": self.geomean_compile_correct,
                "geomean_compile_all": self.geomean_compile_all}


def fast_key(p: float) -> str:
    return f"fast_{p:g}"


def summarize(outcomes: Sequence[TaskOutcome]) -> Summary:
    return Summary(
        tasks=len(outcomes), correct=sum(1 for o in outcomes if o.correct),
        fast={fast_key(p): fast_p(outcomes, p) for p in FAST_PS},
        geomean_eager_correct=geomean_correct(outcomes), geomean_eager_all=geomean_all(outcomes),
        geomean_compile_correct=geomean_correct(outcomes, "speedup_compile"),
        geomean_compile_all=geomean_all(outcomes, "speedup_compile"))


def curve(outcomes: Sequence[TaskOutcome], ps: Sequence[float] = CURVE_PS) -> list[tuple[float, float]]:
    """The fast_p curve: (p, fast_p) for p in ps."""
    return [(p, fast_p(outcomes, p) or 0.0) for p in ps]


def per_dollar(wins: int, cost_usd: float) -> float | None:
    """Speedup per dollar: tasks with a correct kernel faster than eager (fast_1 wins) per
    USD of LLM spend; None when nothing was spent (free, local or replayed at no cost)."""
    return wins / cost_usd if cost_usd and cost_usd > 0 else None
