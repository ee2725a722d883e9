"""Why a search stopped: a kind the code branches on, and the sentence a person reads.

A `StopReason` is a `str` (the sentence: what runs.db, the CLI and the events carry,
unchanged), with a `kind` for callers that decide something from it: whether the run can
be resumed, whether it was interrupted. Nobody needs to parse the sentence.
"""

from __future__ import annotations

import enum


class StopKind(enum.Enum):
    BUDGET = "budget"  # candidates, tokens, cost or seconds used up
    PATIENCE = "patience"  # no >1% improvement for N candidates
    FINISHED = "finished"  # the strategy's schedule is done
    NOTHING_MORE = "nothing_more"  # the strategy proposes nothing and nothing is in flight
    INTERRUPTED = "interrupted"  # Ctrl-C
    LLM_FAILED = "llm_failed"  # the model endpoint failed
    EVALUATOR_FAILED = "evaluator_failed"  # the evaluator raised
    INVALID_TASK = "invalid_task"  # the reference itself does not run


class StopReason(str):
    kind: StopKind

    def __new__(cls, kind: StopKind, text: str) -> "StopReason":
        obj = super().__new__(cls, text)
        obj.kind = kind
        return obj

    @property
    def resumable(self) -> bool:
        """The endpoint or the evaluator failed: the run is not done, resume it later."""
        return self.kind in (StopKind.LLM_FAILED, StopKind.EVALUATOR_FAILED)

    @property
    def interrupted(self) -> bool:
        return self.kind is StopKind.INTERRUPTED

    def __reduce__(self):  # pickles (process pools) as the typed value, not a bare str
        return (StopReason, (self.kind, str(self)))


def budget(text: str) -> StopReason:
    return StopReason(StopKind.BUDGET, f"budget: {text}")


def patience(text: str) -> StopReason:
    return StopReason(StopKind.PATIENCE, f"patience: {text}")


def llm_failed(text: str) -> StopReason:
    return StopReason(StopKind.LLM_FAILED, f"llm: {text}")


def evaluator_failed(exc: BaseException) -> StopReason:
    return StopReason(StopKind.EVALUATOR_FAILED, f"evaluator: {type(exc).__name__}: {exc}")


def invalid_task(text: str) -> StopReason:
    return StopReason(StopKind.INVALID_TASK, f"invalid task: {text}")


FINISHED = StopReason(StopKind.FINISHED, "strategy finished")
NOTHING_MORE = StopReason(StopKind.NOTHING_MORE, "strategy has nothing more to propose")
INTERRUPTED = StopReason(StopKind.INTERRUPTED, "interrupted")


def of(reason: str | None) -> StopReason | None:
    """A reason read back as text (runs.db, an older caller) as a typed one."""
    if reason is None or isinstance(reason, StopReason):
        return reason
    for prefix, kind in (("budget:", StopKind.BUDGET), ("patience:", StopKind.PATIENCE),
                         ("llm:", StopKind.LLM_FAILED), ("evaluator:", StopKind.EVALUATOR_FAILED),
                         ("invalid task:", StopKind.INVALID_TASK)):
        if reason.startswith(prefix):
            return StopReason(kind, reason)
    for const in (FINISHED, NOTHING_MORE, INTERRUPTED):
        if reason == const:
            return const
    return StopReason(StopKind.FINISHED, reason)
