from __future__ import annotations

import time

from kernelsmith.search import Budget, Candidate, SearchContext, make_strategy, run_search
from search_fakes import (
    FakeEvaluator, FakeLLM, compile_error, correct, incorrect, kernel, reply, tag_of, task,
)


def numbered(messages, i):
    return reply(f"k{i}")


def bon(n=50, samples=1, seed=0):
    return make_strategy("best-of-n", task(), SearchContext(seed=seed), n=n, samples=samples)


def test_candidate_budget_is_exact_with_concurrency_and_samples():
    llm, ev = FakeLLM(numbered), FakeEvaluator()
    out = run_search(task(), bon(samples=3), llm, ev, Budget(max_candidates=10), llm_concurrency=4)
    assert out.stop_reason == "budget: 10 candidates (max 10)"
    assert len(out.candidates) == 10 and out.stats.candidates == 10
    assert sum(n for _, n in llm.calls) == 10  # the last request was trimmed to what the budget allowed
    assert sorted(ev.seen) == sorted(tag_of(c.code) for c in out.candidates)


def test_token_cost_and_call_totals():
    llm = FakeLLM(numbered, tokens=100, cost=0.25)
    out = run_search(task(), bon(samples=2), llm, FakeEvaluator(), Budget(max_tokens=700), llm_concurrency=1,
                     overlap=False)
    assert out.stop_reason.startswith("budget: 800 tokens")
    assert out.stats.llm_calls == 4 and out.stats.tokens == 800  # per call, not per sample
    assert len(out.candidates) == 8 and abs(out.stats.cost_usd - 1.0) < 1e-9

    out = run_search(task(), bon(), FakeLLM(numbered, cost=0.3), FakeEvaluator(), Budget(max_cost_usd=1.0),
                     llm_concurrency=1, overlap=False)
    assert out.stop_reason.startswith("budget: $1.2000") and out.stats.llm_calls == 4


def test_seconds_budget():
    t0 = time.monotonic()
    out = run_search(task(), bon(n=1000), FakeLLM(numbered, delay=0.05), FakeEvaluator(), Budget(max_seconds=0.3),
                     llm_concurrency=2)
    assert out.stop_reason.startswith("budget:") and "(max 0.3 s)" in out.stop_reason
    assert time.monotonic() - t0 < 2.0 and 2 <= len(out.candidates) < 40


def test_patience_stops_a_flat_search():
    speed = {"k0": correct(1.0), "k1": correct(1.5), "k2": correct(1.51), "k3": incorrect(speedup=50.0)}
    ev = FakeEvaluator(speed, default=lambda tag: correct(1.2))
    bests = []
    out = run_search(task(), bon(), FakeLLM(numbered), ev, Budget(patience=4), llm_concurrency=1, overlap=False,
                     on_event=lambda kind, info: kind == "best" and bests.append(info["speedup"]))
    assert bests == [1.0, 1.5, 1.51]  # every new best is reported, even one too small for patience
    # k1 is the last >1% improvement; k2..k5 make four without one
    assert out.stop_reason == "patience: 4 candidates without a >1% improvement"
    assert [tag_of(c.code) for c in out.candidates] == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert tag_of(out.best.code) == "k2" and out.speedup == 1.51  # the best is still the max


def test_best_is_the_fastest_correct_never_a_fast_wrong_one():
    table = {"k0": correct(1.3), "k1": incorrect(speedup=99.0), "k2": correct(2.2), "k3": compile_error(),
             "k4": correct(0.7)}
    out = run_search(task(), bon(n=5), FakeLLM(numbered), FakeEvaluator(table), Budget(), llm_concurrency=3)
    assert out.stop_reason == "strategy finished"
    assert tag_of(out.best.code) == "k2" and out.stats.best_speedup == 2.2


def test_format_errors_are_candidates_not_crashes_and_are_fed_back():
    replies = ["I would rather not write code today.", reply("k1"), reply("k2")]
    llm, ev = FakeLLM(replies), FakeEvaluator()
    seen = []
    strat = make_strategy("refine", task(), chains=1, rounds=3)
    out = run_search(task(), strat, llm, ev, Budget(), on_candidate=lambda c: seen.append(id(c)))
    first = out.candidates[0]
    assert first.format_error and "no `class ModelNew`" in first.format_error and first.result is None
    assert ev.seen == ["k1", "k2"]  # the format error never reached the evaluator
    assert seen.count(id(first)) == 1 and len(seen) == 5  # stored once: it is final
    assert "Format error: no `class ModelNew`" in llm.prompts[1]  # round 1 is told what went wrong
    assert out.stats.format_errors == 1 and out.stop_reason == "strategy finished"


def test_llm_error_stops_cleanly_and_keeps_the_work():
    llm = FakeLLM(numbered, fail_at=3)
    out = run_search(task(), bon(), llm, FakeEvaluator(), Budget(), llm_concurrency=1)
    assert out.stop_reason == "llm: endpoint says 401: check KERNELSMITH_API_KEY"
    assert [tag_of(c.code) for c in out.candidates] == ["k0", "k1", "k2"]
    assert all(c.result is not None for c in out.candidates) and out.best is not None


def test_keyboard_interrupt_returns_what_completed():
    ev = FakeEvaluator(raise_at=2, exc=KeyboardInterrupt())
    stored = {}
    out = run_search(task(), bon(), FakeLLM(numbered), ev, Budget(), llm_concurrency=1, overlap=False,
                     on_candidate=lambda c: stored.__setitem__(id(c), c.result))
    assert out.stop_reason == "interrupted"
    done = [c for c in out.candidates if c.result is not None]
    assert [tag_of(c.code) for c in done] == ["k0", "k1"]
    assert len(stored) == len(out.candidates) == 3  # the third was stored before its evaluation


def test_evaluator_failure_is_a_stop_reason():
    out = run_search(task(), bon(), FakeLLM(numbered), FakeEvaluator(raise_at=0), Budget(), llm_concurrency=1)
    assert out.stop_reason == "evaluator: RuntimeError: evaluator broke"


def test_on_candidate_sees_each_candidate_before_and_after_evaluation():
    log = []

    def store(c):
        if not c.id:
            c.id = f"run1-{len({x for x, _ in log})}"
        log.append((c.id, c.result is not None))

    out = run_search(task(), bon(n=3), FakeLLM(numbered), FakeEvaluator(), Budget(), on_candidate=store)
    for c in out.candidates:
        assert c.id.startswith("run1-")
        assert [after for i, after in log if i == c.id] == [False, True]


def test_the_model_keeps_writing_while_the_gpu_evaluates():
    llm = FakeLLM(numbered, delay=0.02)
    ev = FakeEvaluator(delay=0.1)
    events = []
    out = run_search(task(), bon(n=24), llm, ev, Budget(), llm_concurrency=4,
                     on_event=lambda kind, info: events.append(kind))
    assert out.stop_reason == "strategy finished" and len(out.candidates) == 24
    assert llm.peak == 4  # four requests in flight at once
    assert len(ev.batches) < 24 and max(len(b) for b in ev.batches) > 1  # completions batched for the GPU
    assert events[0] == "start" and events[-1] == "stop" and events.count("candidate") == 24


def test_resume_evaluates_stored_candidates_left_without_a_result():
    existing = [Candidate(code=kernel("old0"), id="a", strategy_info={"strategy": "best-of-n", "serial": 0}),
                Candidate(code="", id="b", format_error="no code", strategy_info={"strategy": "best-of-n",
                                                                                   "serial": 1})]
    ev = FakeEvaluator({"old0": correct(3.0)})
    out = run_search(task(), bon(n=4), FakeLLM(numbered), ev, Budget(), existing=existing, llm_concurrency=1)
    assert ev.batches[0] == ["old0"]
    assert out.best.id == "a" and len(out.candidates) == 4
    assert out.stop_reason == "strategy finished"  # 2 restored + 2 new = n


def test_a_call_without_choices_becomes_a_format_error():
    class Empty(FakeLLM):
        def complete(self, messages, n=1, sampling=None):
            out = super().complete(messages, n, sampling)
            return [] if len(self.calls) == 1 else out

    llm = Empty(numbered)
    strat = make_strategy("refine", task(), chains=1, rounds=2)
    out = run_search(task(), strat, llm, FakeEvaluator(), Budget())
    assert out.stop_reason == "strategy finished"
    assert "empty" in out.candidates[0].format_error and tag_of(out.candidates[1].code) == "k1"


def test_a_strategy_with_nothing_to_propose_ends_the_search():
    class Shy(type(bon())):
        def propose(self, k):
            return [] if self.serial >= 2 else super().propose(min(k, 2 - self.serial))

    out = run_search(task(), Shy(task(), n=10), FakeLLM(numbered), FakeEvaluator(), Budget())
    assert out.stop_reason == "strategy has nothing more to propose" and len(out.candidates) == 2


def test_resumed_totals_count_each_call_once():
    full = run_search(task(), bon(n=8, samples=2), FakeLLM(numbered, tokens=10, cost=0.5), FakeEvaluator(),
                      Budget(), llm_concurrency=1, overlap=False)
    part = run_search(task(), bon(n=8, samples=2), FakeLLM(numbered, tokens=10, cost=0.5), FakeEvaluator(),
                      Budget(max_candidates=4), llm_concurrency=1, overlap=False)
    rest = run_search(task(), bon(n=8, samples=2), FakeLLM(numbered, tokens=10, cost=0.5, start=4),
                      FakeEvaluator(), Budget(), existing=part.candidates, llm_concurrency=1, overlap=False)
    assert full.stats.llm_calls == rest.stats.llm_calls == 4
    assert full.stats.tokens == rest.stats.tokens == 80 and rest.stats.cost_usd == full.stats.cost_usd == 2.0
    assert [c.strategy_info["call"] for c in rest.candidates] == [0, 0, 1, 1, 2, 2, 3, 3]
