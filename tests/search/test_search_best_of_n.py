from __future__ import annotations

from kernelsmith.llm.scripted import ScriptedModel
from kernelsmith.search import Budget, SearchContext, make_strategy, run_search
from search_fakes import FakeEvaluator, FakeLLM, correct, incorrect, reply, tag_of, task


def test_n_independent_samples_of_the_task_prompt():
    llm = FakeLLM(lambda m, i: reply(f"k{i}"))
    table = {"k1": correct(1.7), "k3": incorrect(speedup=12.0)}
    s = make_strategy("best-of-n", task(), SearchContext(), n=5, samples=2)
    out = run_search(task(), s, llm, FakeEvaluator(table), Budget())
    assert out.stop_reason == "strategy finished" and len(out.candidates) == 5
    assert sorted(n for _, n in llm.calls) == [1, 2, 2]
    assert len(set(llm.prompts)) == 1 and "Your current kernel" not in llm.prompts[0]
    assert "## Task `relu`" in llm.prompts[0] and "## Reply format" in llm.prompts[0]
    assert tag_of(out.best.code) == "k1" and all(c.parents == [] for c in out.candidates)


def test_with_the_scripted_model_and_real_extraction():
    model = ScriptedModel([reply("a"), "no code here", reply("b")])
    s = make_strategy("best-of-n", task(), SearchContext(gpu={"gpu": "NVIDIA H200", "compute_capability": "9.0"}),
                      n=3)
    out = run_search(task(), s, model, FakeEvaluator({"b": correct(2.0)}), Budget(), llm_concurrency=1)
    assert [bool(c.format_error) for c in out.candidates] == [False, True, False]
    assert tag_of(out.best.code) == "b" and "NVIDIA H200" in model.calls[0][-1]["content"]
    assert out.stats.llm_calls == 3 and out.stats.tokens > 0
