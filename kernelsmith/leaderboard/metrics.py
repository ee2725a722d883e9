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


# --- sampling metrics: pass@k, fast_p@k, proficiency ---------------------------------------

PASS_KS = (1, 5, 10)  # the k of the pass@k / fast_p@k columns (reported where n >= k)
PROFICIENCY_K = 10
PROFICIENCY_LEVELS = {0.0: "non-knowledge", 0.25: "novice", 0.5: "learner", 0.75: "proficient", 1.0: "expert"}


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """The unbiased pass@k estimator of Chen et al. (2021, "Evaluating Large Language Models
    Trained on Code", eq. 1): with n samples of which c pass, the probability that at least one
    of k samples drawn without replacement passes, 1 - C(n-c, k) / C(n, k). Computed as
    1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms the (huge) binomials. None when n < k
    (the estimator needs at least k samples)."""
    if k < 1 or n < 0 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs k >= 1 and 0 <= c <= n (got n={n}, c={c}, k={k})")
    if n < k:
        return None
    if n - c < k:  # every draw of k contains a passing sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def fast_p_at_k(n: int, fast: int, k: int) -> float | None:
    """fast_p@k: pass@k's estimator with "passes" = correct AND speedup over eager > p (the
    caller counts `fast` for its p): the chance that one of k samples is a correct kernel
    faster than p times eager."""
    return pass_at_k(n, fast, k)


def proficiency(first: Sequence[bool], k: int = PROFICIENCY_K) -> float | None:
    """The proficiency metric of Godoy et al. (2023), "Evaluation of OpenAI Codex for HPC
    Parallel Programming Models Kernel Generation" (ICPP-W '23, arXiv:2306.15121, Sec. 3): one
    level per prompt (here: per task and language) judged on the first k = 10 suggestions,
    in the order they were made:

      0    non-knowledge  no correct code among them
      0.25 novice         exactly one correct code, the rest incorrect
      0.5  learner        several correct codes, mixed with incorrect ones
      0.75 proficient     several correct codes, all of them ahead of every incorrect one
      1    expert         only correct code

    The level names, their values and the 10-suggestion window follow the paper, which
    describes each level in words (from no correct code to only correct code); the counting
    rules above are this implementation's operationalisation of those words, applied
    mechanically so runs compare (the paper's table was not at hand to compare word for word
    when this was written: check it before quoting these levels as the paper's). `first` is
    the correctness of the suggestions in proposal order; only the first k count. None when
    there is none."""
    xs = [bool(x) for x in first[:k]]
    if not xs:
        return None
    c = sum(xs)
    if c == 0:
        return 0.0
    if c == len(xs):
        return 1.0
    if c == 1:
        return 0.25
    return 0.75 if all(xs[:c]) else 0.5


def proficiency_label(score: float | None) -> str:
    return "n/a" if score is None else PROFICIENCY_LEVELS.get(score, f"{score:.2f}")


@dataclass
class SampleStats:
    """The evaluated candidates of one run for one task in one kernel language."""

    language: str  # kernelsmith.languages name; "unknown" when neither backend nor imports tell
    task_hash: str
    name: str
    correct_in_order: list[bool] = field(default_factory=list)  # by proposal order
    speedups_in_order: list[float | None] = field(default_factory=list)  # over eager; None unless correct

    @property
    def n(self) -> int:
        return len(self.correct_in_order)

    @property
    def correct(self) -> int:
        return sum(self.correct_in_order)

    def fast(self, p: float) -> int:
        return sum(1 for c, s in zip(self.correct_in_order, self.speedups_in_order) if c and s is not None and s > p)

    def pass_at(self, k: int) -> float | None:
        return pass_at_k(self.n, self.correct, k)

    def fast_at(self, p: float, k: int) -> float | None:
        return fast_p_at_k(self.n, self.fast(p), k)

    @property
    def proficiency(self) -> float | None:
        return proficiency(self.correct_in_order)

    def to_dict(self) -> dict:
        return {"language": self.language, "task_hash": self.task_hash, "name": self.name, "n": self.n,
                "correct": self.correct, "fast_1": self.fast(1.0),
                **{f"pass@{k}": self.pass_at(k) for k in PASS_KS},
                **{f"fast_1@{k}": self.fast_at(1.0, k) for k in PASS_KS},
                "proficiency": self.proficiency, "proficiency_level": proficiency_label(self.proficiency)}


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
