from __future__ import annotations

from kernelsmith.search import Budget, SearchContext, make_strategy, run_search
from search_fakes import FakeEvaluator, FakeLLM, compile_error, correct, incorrect, reply, tag_of, task

CHAINS = 4


def by_call(messages, i):
    # with overlap=False the chains are asked in order, one round at a time
    return reply(f"c{i % CHAINS}r{i // CHAINS}")


TABLE = {
    "c0r0": correct(1.5), "c0r1": correct(2.5), "c0r2": correct(2.0),
    "c1r0": correct(1.2), "c1r1": compile_error('kernel.cu(7): error: CHAIN1_ROUND1 "blockDimx" is undefined'),
    "c2r0": incorrect("output 0 differs at [3, 5]: got 7.0, expected 1.0 (CHAIN2_ROUND0)"),
    "c3r0": compile_error("kernel.cu(3): error: CHAIN3_ROUND0 expected a ';'"),
}


def evaluator():
    return FakeEvaluator(TABLE, default=lambda tag: correct(1.1))


def refine(**kw):
    return make_strategy("refine", task(), SearchContext(seed=0), **{"chains": CHAINS, "rounds": 3, **kw})


def run(strategy, budget=None, existing=(), start=0):
    llm = FakeLLM(by_call, start=start)
    out = run_search(task(), strategy, llm, evaluator(), budget or Budget(), existing=existing,
                     llm_concurrency=CHAINS, overlap=False)
    return llm, out


def find(out, chain, rnd):
    [c] = [c for c in out.candidates if c.strategy_info.get("chain") == chain and c.strategy_info.get("round") == rnd]
    return c


def test_chains_carry_their_own_feedback():
    llm, out = run(refine())
    assert out.stop_reason == "strategy finished" and len(out.candidates) == CHAINS * 3
    for c in out.candidates:  # the fake's call order matched the chains
        assert tag_of(c.code) == f"c{c.strategy_info['chain']}r{c.strategy_info['round']}"
    r0 = [find(out, ch, 0).prompt[-1]["content"] for ch in range(CHAINS)]
    assert len(set(r0)) == 1 and "Your current kernel" not in r0[0]  # round 0: the task prompt alone
    p21 = find(out, 1, 2).prompt[-1]["content"]
    assert "CHAIN1_ROUND1" in p21  # round 2 of chain 1 shows round 1's compile error ...
    assert "# kernel: c1r0" in p21 and "speedup vs eager 1.20x" in p21  # ... next to its best kernel so far
    assert "50% of the physical floor" in p21
    for ch in (0, 2, 3):
        assert "CHAIN1_ROUND1" not in find(out, ch, 2).prompt[-1]["content"]
    p12 = find(out, 2, 1).prompt[-1]["content"]
    assert "CHAIN2_ROUND0" in p12 and "Wrong output on 3 of 5 trials" in p12
    assert "CHAIN3_ROUND0" in find(out, 3, 1).prompt[-1]["content"]
    # the lineage: round 2 of chain 0 continues from its best (round 1, 2.5x); chain 1 from round 0
    assert find(out, 0, 2).parents == [find(out, 0, 1).id]
    assert find(out, 1, 2).parents == [find(out, 1, 0).id]
    assert tag_of(out.best.code) == "c0r1"


def test_follow_latest_continues_from_the_last_round():
    llm, out = run(refine(follow="latest"))
    p21 = find(out, 1, 2).prompt[-1]["content"]
    assert find(out, 1, 2).parents == [find(out, 1, 1).id]
    assert "CHAIN1_ROUND1" in p21 and "did worse" not in p21


def test_diff_mode_asks_for_edits():
    llm, out = run(refine(mode="diff", rounds=2))
    p = find(out, 0, 1)
    assert p.strategy_info["mode"] == "diff" and "<<<<<<< SEARCH" in p.prompt[-1]["content"]
    assert tag_of(p.code) == "c0r1"  # a full file in reply to a diff prompt is taken whole


def test_resume_continues_the_chains_exactly():
    full_llm, full = run(refine())
    part_llm, part = run(refine(), Budget(max_candidates=2 * CHAINS))
    assert part.stop_reason.startswith("budget: 8 candidates")
    resumed = refine()
    rest_llm, rest = run(resumed, existing=part.candidates, start=len(part_llm.calls))
    assert resumed.rounds_done == [3] * CHAINS and rest.stop_reason == "strategy finished"
    # the next round continued from the restored chains: round 2, with round 1's feedback
    assert "CHAIN1_ROUND1" in rest_llm.prompts[1]
    assert part_llm.prompts + rest_llm.prompts == full_llm.prompts
    key = [(c.id, c.code, c.parents, c.strategy_info) for c in full.candidates]
    assert [(c.id, c.code, c.parents, c.strategy_info) for c in rest.candidates] == key
    assert rest.best.id == full.best.id


def test_restore_then_propose_without_the_loop():
    _, part = run(refine(), Budget(max_candidates=CHAINS))
    s = refine()
    s.restore(part.candidates)
    props = s.propose(10)
    assert [p.strategy_info["chain"] for p in props] == [0, 1, 2, 3]
    assert {p.strategy_info["round"] for p in props} == {1}
    assert props[0].parents == [find(part, 0, 0).id]
    assert s.propose(10) == []  # every chain is in flight
