"""The search interface: strategies, their context, budgets, fitness and the registry.

A strategy only decides *what to ask next* (`propose`) and *what it learned*
(`observe`); the loop (`kernelsmith.search.loop`) owns the model calls, the evaluator,
persistence and the budget. Every strategy can rebuild its state from stored candidates
(`restore`), so a resumed run continues the same search instead of starting over.
"""

from __future__ import annotations

import hashlib
import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable

from kernelsmith.llm.types import Sampling
from kernelsmith.results import EvalResult, Verdict
from kernelsmith.search import stops
from kernelsmith.search.stops import StopReason
from kernelsmith.search.types import Candidate
from kernelsmith.task import Task

IMPROVEMENT = 0.01  # a new best must beat the old one by more than 1% to reset patience


# --- fitness: the one place a result becomes a number -----------------------------------

# Failures rank below every correct kernel, and among themselves by how far they got, so
# evolution can still climb from "compiles but wrong" towards "correct".
_FAILED_FITNESS = {
    Verdict.INCORRECT: 0.01,
    Verdict.RUNTIME_ERROR: 0.005,
    Verdict.TIMEOUT: 0.005,
    Verdict.COMPILE_ERROR: 0.001,
    Verdict.REJECTED: 0.0,  # cheats are never worth building on
    Verdict.INVALID_TASK: 0.0,
}
MIN_CORRECT_FITNESS = 0.03  # every correct kernel outranks every failed one


def fitness(result: EvalResult | None) -> float:
    """The search's scalar reward: the verified speedup over eager PyTorch for a correct
    kernel (at least MIN_CORRECT_FITNESS), small values for failures by stage reached,
    0 for no result (format error), rejected and invalid."""
    if result is None:
        return 0.0
    if result.verdict is Verdict.CORRECT:
        s = result.speedup
        if s is None or not math.isfinite(s):
            return MIN_CORRECT_FITNESS
        return max(float(s), MIN_CORRECT_FITNESS)
    base = _FAILED_FITNESS.get(result.verdict, 0.0)
    if result.verdict is Verdict.INCORRECT and result.check and result.check.trials:
        base += 0.005 * result.check.trials_passed / result.check.trials
    return base


def verified_speedup(cand: Candidate) -> float | None:
    """The speedup of a CORRECT candidate; None for anything else (never trust the
    timing of a wrong kernel)."""
    r = cand.result
    if r is None or r.verdict is not Verdict.CORRECT or r.speedup is None or not math.isfinite(r.speedup):
        return None
    return float(r.speedup)


def cand_fitness(cand: Candidate) -> float:
    return 0.0 if cand.format_error else fitness(cand.result)


def best_verified(cands: Iterable[Candidate]) -> Candidate | None:
    """The CORRECT candidate with the highest speedup (first one wins ties)."""
    best, best_s = None, None
    for c in cands:
        s = verified_speedup(c)
        if s is not None and (best_s is None or s > best_s):
            best, best_s = c, s
    return best


def finished(cand: Candidate) -> bool:
    return cand.result is not None or bool(cand.format_error)


# --- what strategies ask for ---------------------------------------------------------

@dataclass
class Proposal:
    """One prompt to send: n samples of it become n candidates."""

    messages: list[dict[str, str]]
    parents: list[str] = field(default_factory=list)
    strategy_info: dict = field(default_factory=dict)  # copied onto every candidate
    mode: str = "full"  # "full": the reply holds a whole file; "diff": SEARCH/REPLACE edits
    parent_code: str = ""  # what a "diff" reply is applied to
    n: int = 1
    sampling: Sampling | None = None  # None: the context's default

    def __post_init__(self):
        if self.mode not in ("full", "diff"):
            raise ValueError(f"proposal mode must be 'full' or 'diff', not {self.mode!r}")
        if self.mode == "diff" and not self.parent_code:
            raise ValueError("a 'diff' proposal needs the parent_code the edits apply to")
        if self.n < 1:
            raise ValueError("a proposal asks for at least one sample")


@dataclass
class SearchContext:
    """What every strategy may use besides the task: GPU facts for prompts, randomness,
    sampling defaults, the kernel language asked for."""

    gpu: dict = field(default_factory=dict)  # name, compute capability, bandwidth, peak FLOP/s ...
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    rng: random.Random = field(default=None)  # type: ignore[assignment]
    # the kernel language the prompts ask for (kernelsmith.languages: cuda, cupy, triton,
    # numba, pycuda) or "any" (the model picks per candidate)
    language: str = "cuda"

    def __post_init__(self):
        from kernelsmith.languages import check

        self.language = check(self.language)
        if self.rng is None:
            self.rng = random.Random(self.seed)

    def derive(self, *keys: Any) -> random.Random:
        """A generator determined by the seed and `keys` alone: strategies draw from
        `derive(serial)` so a resumed search makes the same choices as an unbroken one."""
        h = hashlib.sha256(repr((self.seed,) + keys).encode()).digest()
        return random.Random(int.from_bytes(h[:8], "big"))


# --- budget --------------------------------------------------------------------------

@dataclass
class SearchStats:
    candidates: int = 0  # finished (evaluated or format error), restored ones included
    evaluated: int = 0
    format_errors: int = 0
    llm_calls: int = 0
    tokens: int = 0  # prompt + completion tokens, per call (not per sample)
    cost_usd: float = 0.0
    seconds: float = 0.0  # wall time of this session
    best_speedup: float | None = None
    since_improvement: int = 0  # finished candidates since the best last grew by > 1%

    def record(self, cand: Candidate) -> bool:
        """Count a finished candidate; True when it is a new best by more than 1%."""
        self.candidates += 1
        if cand.format_error:
            self.format_errors += 1
        elif cand.result is not None:
            self.evaluated += 1
        s = verified_speedup(cand)
        if s is not None and (self.best_speedup is None or s > self.best_speedup * (1 + IMPROVEMENT)):
            self.best_speedup = s
            self.since_improvement = 0
            return True
        if s is not None and s > (self.best_speedup or 0.0):
            self.best_speedup = s  # a better best, but not by enough to reset patience
        self.since_improvement += 1
        return False


@dataclass
class Budget:
    """Limits of one search; None is unlimited. `patience`: stop after that many finished
    candidates without the best verified speedup growing by more than 1%."""

    max_candidates: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    patience: int | None = None

    def exhausted(self, stats: SearchStats) -> StopReason | None:
        if self.max_candidates is not None and stats.candidates >= self.max_candidates:
            return stops.budget(f"{stats.candidates} candidates (max {self.max_candidates})")
        if self.max_tokens is not None and stats.tokens >= self.max_tokens:
            return stops.budget(f"{stats.tokens} tokens (max {self.max_tokens})")
        if self.max_cost_usd is not None and stats.cost_usd >= self.max_cost_usd:
            return stops.budget(f"${stats.cost_usd:.4f} spent (max ${self.max_cost_usd:.4f})")
        if self.max_seconds is not None and stats.seconds >= self.max_seconds:
            return stops.budget(f"{stats.seconds:.0f} s (max {self.max_seconds:g} s)")
        if self.patience is not None and stats.since_improvement >= self.patience:
            return stops.patience(f"{stats.since_improvement} candidates without a >1% improvement")
        return None

    def candidates_left(self, stats: SearchStats) -> int | None:
        return None if self.max_candidates is None else max(0, self.max_candidates - stats.candidates)


# --- strategies ----------------------------------------------------------------------

class Strategy(ABC):
    """One search policy. Subclasses declare their options with defaults in OPTIONS;
    unknown options are an error naming the known ones, and strings (from a command line)
    are converted to the default's type."""

    name: str = ""
    OPTIONS: dict[str, Any] = {}

    def __init__(self, task: Task, context: SearchContext | None = None, **options):
        self.task = task
        self.ctx = context or SearchContext()
        self.opts = _resolve_options(self.name or type(self).__name__, self.OPTIONS, options)
        self.seen: dict[str, Candidate] = {}  # every finished candidate by id
        self.serial = 0  # proposals made; stamped on each as strategy_info["serial"]

    @abstractmethod
    def propose(self, k: int) -> list[Proposal]:
        """Up to k prompts to send now (fewer, even none, while waiting on results)."""

    def observe(self, cands: list[Candidate]) -> None:
        """Finished candidates (a result or a format error); all samples of one proposal
        arrive in the same call."""
        for c in cands:
            self.seen[c.id] = c
        self._observe(cands)

    def _observe(self, cands: list[Candidate]) -> None:  # strategy-specific learning
        pass

    def restore(self, cands: list[Candidate]) -> None:
        """Rebuild the state from stored, finished candidates in their original order, as
        if each proposal's samples had just been observed. Continuing afterwards makes the
        same choices an uninterrupted run would (given the same seed)."""
        cands = [c for c in cands if finished(c)]
        mine = [c.strategy_info["serial"] for c in cands
                if c.strategy_info.get("strategy") == self.name and isinstance(c.strategy_info.get("serial"), int)]
        if mine:
            self.serial = max(self.serial, max(mine) + 1)
        for group in _groups(cands):
            self.observe(group)

    def done(self) -> bool:
        """True once the strategy's own schedule is finished."""
        return False

    # helpers
    def _proposal(self, messages, info: dict | None = None, **kw) -> Proposal:
        info = dict(info or {}, strategy=self.name, serial=self.serial)
        self.serial += 1
        kw.setdefault("n", self.opts.get("samples", 1))
        return Proposal(messages, strategy_info=info, **kw)

    def rng(self, serial: int) -> random.Random:
        return self.ctx.derive(self.name, serial)


def _groups(cands: list[Candidate]) -> list[list[Candidate]]:
    """Consecutive candidates of the same proposal (same model call) form one group."""
    def key(c: Candidate):
        info = c.strategy_info
        return (info.get("strategy"), info.get("serial"), info.get("call"))

    out: list[list[Candidate]] = []
    for c in cands:
        k = key(c)
        if out and k[1:] != (None, None) and key(out[-1][0]) == k:
            out[-1].append(c)
        else:
            out.append([c])
    return out


def _resolve_options(who: str, known: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
        raise ValueError(f"strategy {who!r} has no option {', '.join(map(repr, unknown))}; its options: {names}")
    out = dict(known)
    for k, v in given.items():
        d = known[k]
        if isinstance(v, str) and isinstance(d, (list, tuple)):
            kind = type(d[0]) if d else str
            try:
                v = type(d)(kind(x.strip()) for x in v.split(",") if x.strip())
            except ValueError:
                raise ValueError(f"strategy {who!r}: option {k}={v!r} is not a comma-separated list of "
                                 f"{kind.__name__}") from None
        elif isinstance(v, str) and d is not None and not isinstance(d, str):
            try:
                if isinstance(d, bool):
                    if v.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(v)
                    v = v.lower() in ("1", "true", "yes", "on")
                else:
                    v = type(d)(v)
            except ValueError:
                raise ValueError(f"strategy {who!r}: option {k}={v!r} is not a {type(d).__name__}") from None
        elif isinstance(v, str) and d is None and v.lower() in ("none", ""):
            v = None
        elif isinstance(v, str) and d is None:
            try:
                v = int(v)
            except ValueError:
                try:
                    v = float(v)
                except ValueError:
                    pass
        out[k] = v
    return out


# --- registry ------------------------------------------------------------------------

STRATEGIES: dict[str, type[Strategy]] = {}  # filled by @register (kernelsmith.search imports them all)


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def make_strategy(name: str, task: Task, ctx: SearchContext | None = None, **options) -> Strategy:
    """The strategy called `name`; a ValueError lists the known names (or options)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; choose one of: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](task, ctx or SearchContext(), **options)
