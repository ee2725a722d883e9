"""Stop reasons are typed: callers branch on .kind, people read the sentence."""

import pickle

from kernelsmith.search import stops
from kernelsmith.search.base import Budget, SearchStats
from kernelsmith.search.stops import StopKind


def test_budget_reasons_carry_their_kind_and_sentence():
    why = Budget(max_candidates=3).exhausted(SearchStats(candidates=3))
    assert why == "budget: 3 candidates (max 3)" and why.kind is StopKind.BUDGET
    assert not why.resumable and not why.interrupted


def test_failures_are_resumable_and_nothing_else_is():
    assert stops.llm_failed("endpoint says 401").resumable
    assert stops.evaluator_failed(RuntimeError("broke")) == "evaluator: RuntimeError: broke"
    assert stops.evaluator_failed(RuntimeError("broke")).resumable
    for done in (stops.FINISHED, stops.NOTHING_MORE, stops.INTERRUPTED, stops.invalid_task("x"),
                 stops.patience("4 candidates")):
        assert not done.resumable
    assert stops.INTERRUPTED.interrupted and not stops.FINISHED.interrupted


def test_text_read_back_gets_its_kind_again():
    for why in (stops.budget("10 s (max 10 s)"), stops.llm_failed("timeout"), stops.INTERRUPTED,
                stops.FINISHED, stops.invalid_task("the reference failed")):
        again = stops.of(str(why))
        assert again == why and again.kind is why.kind
    assert stops.of(None) is None


def test_a_reason_survives_pickling_with_its_kind():
    why = pickle.loads(pickle.dumps(stops.llm_failed("down")))
    assert why == "llm: down" and why.kind is StopKind.LLM_FAILED
