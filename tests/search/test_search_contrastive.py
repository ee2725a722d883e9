from __future__ import annotations

from kernelsmith.search import Budget, SearchContext, make_strategy, run_search
from search_fakes import FakeEvaluator, FakeLLM, compile_error, correct, incorrect, reply, tag_of, task

TABLE = {"k0": correct(1.2), "k1": correct(3.0), "k2": incorrect("WRONG_K2", speedup=50.0), "k3": correct(2.0),
         "k4": compile_error("error: BROKEN_K4"), "k5": correct(0.8)}


def numbered(messages, i):
    return reply(f"k{i}")


def contrastive(**kw):
    return make_strategy("contrastive", task(), SearchContext(seed=5), **{"warmup": 4, **kw})


def run(strategy, budget, existing=(), start=0, concurrency=4):
    llm = FakeLLM(numbered, start=start)
    out = run_search(task(), strategy, llm, FakeEvaluator(TABLE, default=lambda t: correct(1.0)), budget,
                     existing=existing, llm_concurrency=concurrency, overlap=False)
    return llm, out


def test_history_is_sorted_by_speedup_and_asks_for_an_analysis_first():
    llm, out = run(contrastive(top=3, diverse=1), Budget(max_candidates=5))
    assert all("Earlier kernels" not in p for p in llm.prompts[:4])  # warm-up: the task alone
    p = llm.prompts[4]
    pos = [p.index(f"# kernel: {t}") for t in ("k1", "k3", "k0", "k2")]
    assert pos == sorted(pos)  # fastest first; the wrong kernel (with its bogus 50x) last
    assert "3.00x" in p and "2.00x" in p and "1.20x" in p and "50.00x" not in p
    assert p.index("analyse") < p.index("## Reply format")
    shown = out.candidates[4]
    assert shown.strategy_info["kind"] == "contrastive"
    assert sorted(shown.parents) == sorted(c.id for c in out.candidates[:4])


def test_top_k_plus_diverse_others():
    s = contrastive(top=2, diverse=1)
    llm, out = run(s, Budget(max_candidates=6))
    p = llm.prompts[5]  # asked with prompt 4, so k0..k3 are known: the top 2 (k1, k3) and one other
    assert "# kernel: k1" in p and "# kernel: k3" in p
    assert sum(f"# kernel: k{i}" in p for i in (0, 2)) == 1
    assert len(out.candidates[5].parents) == 3
    assert [tag_of(c.code) for c in s.history(99)[:2]] == ["k1", "k3"]


def test_failures_show_what_went_wrong_when_drawn():
    s = contrastive(top=0, diverse=10)
    llm, out = run(s, Budget(max_candidates=6), concurrency=1)
    p = llm.prompts[5]  # one at a time: k0..k4 are known
    assert all(f"# kernel: k{i}" in p for i in range(5))
    assert "incorrect (mismatch)" in p and "compile_error (compile)" in p


def test_resume_picks_up_the_history_not_the_warmup():
    full_llm, full = run(contrastive(), Budget(max_candidates=8))
    part_llm, part = run(contrastive(), Budget(max_candidates=4))
    s = contrastive()
    s.restore(part.candidates)
    assert s.made == 4 and s.fresh == 4 and len(s.pool) == 4
    rest_llm, rest = run(s, Budget(max_candidates=8), existing=part.candidates, start=4)
    assert "Earlier kernels" in rest_llm.prompts[0]
    assert part_llm.prompts + rest_llm.prompts == full_llm.prompts
    assert [c.parents for c in rest.candidates] == [c.parents for c in full.candidates]


def test_proposal_limit_ends_the_strategy():
    llm, out = run(contrastive(warmup=2, proposals=5), Budget())
    assert out.stop_reason == "strategy finished" and len(out.candidates) == 5
