from __future__ import annotations

import pytest

from kernelsmith.results import EvalResult, Verdict
from kernelsmith.search import (
    STRATEGIES, Budget, Candidate, SearchContext, SearchStats, best_verified, fitness, make_strategy,
)
from kernelsmith.search.base import Proposal
from search_fakes import compile_error, correct, incorrect, kernel, runtime_error, task


def cand(result=None, format_error="", id=""):
    return Candidate(code=kernel(id or "x"), id=id, result=result, format_error=format_error)


def test_fitness_orders_by_stage_and_speedup():
    rejected = EvalResult(Verdict.REJECTED, "t", "c")
    order = [fitness(None), fitness(rejected), fitness(compile_error()), fitness(runtime_error()),
             fitness(incorrect()), fitness(correct(0.01)), fitness(correct(0.9)), fitness(correct(2.5))]
    assert order == sorted(order) and len(set(order[1:])) == len(order) - 1
    assert fitness(correct(2.5)) == 2.5
    # a wrong kernel's timing is never trusted, however fast it claims to be
    assert fitness(incorrect(speedup=100.0)) < fitness(correct(0.05))


def test_best_verified_ignores_fast_wrong_kernels():
    cs = [cand(correct(1.5), id="a"), cand(incorrect(speedup=40.0), id="b"), cand(correct(2.0), id="c"),
          cand(format_error="no code", id="d"), cand(compile_error(), id="e")]
    assert best_verified(cs).id == "c"
    assert best_verified([cs[1], cs[3]]) is None


def test_budget_reasons():
    s = SearchStats(candidates=10, tokens=5000, cost_usd=1.5, seconds=30, since_improvement=4)
    assert Budget().exhausted(s) is None
    assert Budget(max_candidates=10).exhausted(s).startswith("budget: 10 candidates")
    assert "tokens" in Budget(max_tokens=5000).exhausted(s)
    assert "$1.5000" in Budget(max_cost_usd=1.0).exhausted(s)
    assert "30 s" in Budget(max_seconds=30).exhausted(s)
    assert Budget(patience=4).exhausted(s).startswith("patience")
    assert Budget(patience=5, max_candidates=11).exhausted(s) is None


def test_patience_needs_more_than_one_percent():
    st = SearchStats()
    assert st.record(cand(correct(1.0)))
    assert not st.record(cand(correct(1.005)))  # better, but by less than 1%
    assert st.best_speedup == 1.005 and st.since_improvement == 1
    assert not st.record(cand(incorrect(speedup=9.0)))
    assert st.record(cand(correct(1.2)))
    assert st.since_improvement == 0 and st.candidates == 4 and st.evaluated == 4


def test_registry_and_options():
    assert set(STRATEGIES) == {"refine", "contrastive", "evolve", "best-of-n"}
    with pytest.raises(ValueError, match="choose one of: best-of-n, contrastive, evolve, refine"):
        make_strategy("beam", task())
    with pytest.raises(ValueError, match="no option 'chainz'.*chains"):
        make_strategy("refine", task(), chainz=3)
    s = make_strategy("refine", task(), SearchContext(seed=1), chains="3", rounds="2")
    assert s.opts["chains"] == 3 and s.name == "refine"
    e = make_strategy("evolve", task(), speedup_edges="1,2", diff_prob="0.5")
    assert e.opts["speedup_edges"] == (1.0, 2.0) and e.opts["diff_prob"] == 0.5
    with pytest.raises(ValueError, match="not a int"):
        make_strategy("refine", task(), chains="many")


def test_context_derive_is_deterministic():
    a, b = SearchContext(seed=3), SearchContext(seed=3)
    assert a.derive("evolve", 5).random() == b.derive("evolve", 5).random()
    assert a.derive("evolve", 5).random() != a.derive("evolve", 6).random()
    assert a.rng.random() == b.rng.random()


def test_proposal_checks():
    with pytest.raises(ValueError, match="parent_code"):
        Proposal([], mode="diff")
    with pytest.raises(ValueError):
        Proposal([], mode="patch")
