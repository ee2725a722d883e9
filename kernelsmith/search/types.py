"""The search side's shared types: candidates, their lineage, and the evaluator protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from kernelsmith.llm.types import Completion
from kernelsmith.results import EvalResult
from kernelsmith.task import Task


@dataclass
class Candidate:
    code: str  # the full candidate file (class ModelNew ...)
    id: str = ""  # assigned by the run store (stable across resumes)
    parents: list[str] = field(default_factory=list)  # ids of the candidates it was derived from
    strategy_info: dict = field(default_factory=dict)  # island, round, chain, operator ...
    completion: Completion | None = None
    prompt: list[dict[str, str]] = field(default_factory=list)
    result: EvalResult | None = None
    format_error: str = ""  # set when no usable code could be extracted


class Evaluate(Protocol):
    """What search needs of the evaluator (kernelsmith.evaluate.Evaluator satisfies it)."""

    def evaluate_many(self, items: Iterable[tuple[Task, str]], on_result=None) -> list[EvalResult]: ...
