"""Every leaderboard metric against the hand-built runs of lb_helpers (numbers worked out by hand)."""

from __future__ import annotations

import pytest

from kernelsmith.leaderboard import build
from kernelsmith.leaderboard import metrics as mt
from lb_helpers import gm

approx = pytest.approx


def _run(lb, rid):
    return next(r for r in lb.runs if r.run_id == rid)


def test_run_a_metrics(filled):
    lb = build(filled.store)
    a = _run(lb, filled.ids["a"])
    s = a.summary
    assert a.tasks == 5 and s.correct == 4  # conv's latest evaluation is incorrect
    assert s.fast == approx({"fast_0": 0.8, "fast_1": 0.4, "fast_1.5": 0.4, "fast_2": 0.2})  # 1.0x is not > 1
    assert s.geomean_eager_correct == approx(gm(2.5, 0.8, 1.6, 1.0))
    assert s.geomean_eager_all == approx(gm(2.5, 0.8, 1.6, 1.0, 1.0))
    assert s.geomean_compile_correct == approx(gm(1.25, 0.4, 0.8, 0.5))
    assert s.geomean_compile_all == approx(gm(1.25, 0.4, 0.8, 0.5, 1.0))
    relu = next(o for o in a.outcomes if o.name == "relu")
    assert relu.speedup_eager == 2.5 and relu.candidates == 3 and relu.evaluated == 3
    conv = next(o for o in a.outcomes if o.name == "conv")
    assert not conv.correct and conv.speedup_eager is None
    # levels: L1 = relu 2.5, gelu 0.8, softmax 1.0; L2 = matmul 1.6, conv failed
    l1, l2 = a.levels["1"], a.levels["2"]
    assert (l1.tasks, l2.tasks) == (3, 2)
    assert l1.fast == approx({"fast_0": 1.0, "fast_1": 1 / 3, "fast_1.5": 1 / 3, "fast_2": 1 / 3})
    assert l2.fast == approx({"fast_0": 0.5, "fast_1": 0.5, "fast_1.5": 0.5, "fast_2": 0.0})
    assert l1.geomean_eager_correct == approx(gm(2.5, 0.8, 1.0))
    assert l2.geomean_eager_correct == approx(1.6) and l2.geomean_eager_all == approx(gm(1.6, 1.0))
    # spend: 2 calls x (1000 + 500) tokens, $0.50 each; 8 evaluations x 2 GPU s
    assert (a.llm_calls, a.tokens, a.cost_usd) == (2, 3000, approx(1.0))
    assert a.tokens_per_task == approx(600) and a.cost_per_task == approx(0.2)
    assert a.gpu_seconds == approx(16.0) and a.gpu_seconds_per_task == approx(3.2)
    assert a.wins == 2 and a.wins_per_usd == approx(2.0)
    assert not a.replayed and a.gpu == "NVIDIA H200" and a.model == "gpt-a" and a.strategy == "refine"


def test_run_b_metrics_and_ranking(filled):
    lb = build(filled.store)
    b = _run(lb, filled.ids["b"])
    s = b.summary
    assert s.fast == approx({"fast_0": 0.8, "fast_1": 0.8, "fast_1.5": 0.4, "fast_2": 0.2})
    assert s.geomean_eager_correct == approx(gm(1.1, 1.8, 3.0, 1.2))
    assert s.geomean_eager_all == approx(gm(1.1, 1.8, 3.0, 1.2, 1.0))
    assert b.levels["1"].fast["fast_1"] == approx(2 / 3) and b.levels["2"].fast["fast_2"] == approx(0.5)
    assert b.replayed and b.cost_usd == approx(4.0) and b.cost_per_task == approx(0.8)
    assert b.tokens_per_task == approx(600) and b.gpu_seconds_per_task == approx(2.0)
    assert b.wins == 4 and b.wins_per_usd == approx(1.0)
    group = next(g for g in lb.groups if b in g.runs)
    assert [r.run_id for r in group.runs] == [filled.ids["b"], filled.ids["a"]]  # fast_1 0.8 > 0.4
    assert [r.rank for r in group.runs] == [1, 2]


def test_different_reference_hashes_never_ranked_together(filled):
    lb = build(filled.store)
    assert len(lb.groups) == 2
    ga, gb = lb.groups
    assert {r.run_id for r in ga.runs} == {filled.ids["a"], filled.ids["b"]}
    assert [r.run_id for r in gb.runs] == [filled.ids["c"]]
    # same problem (relu, level 1, problem 1) but a different reference hash
    relu_a = next(t for t in ga.tasks if t["name"] == "relu")
    relu_b = next(t for t in gb.tasks if t["name"] == "relu")
    assert (relu_a["level"], relu_a["problem_id"]) == (relu_b["level"], relu_b["problem_id"]) == (1, 1)
    assert relu_a["hash"] == filled.tasks["relu"].hash and relu_b["hash"] == filled.relu_v2.hash
    assert relu_a["hash"] != relu_b["hash"]
    c = gb.runs[0]
    assert c.rank == 1 and c.summary.fast["fast_2"] == 1.0  # would top set A, but is not in it
    assert c.wins_per_usd is None and c.cost_usd == 0.0 and c.gpu == "NVIDIA A100" and c.label == "v2"
    assert (ga.name, gb.name) == ("A", "B") and ga.set_id != gb.set_id
    assert any("'relu' has 2 reference versions" in n for n in lb.notes)


def test_filters(filled):
    lb = build(filled.store, kind="bench")
    assert [r.run_id for r in lb.runs] == [filled.ids["c"]]
    lb = build(filled.db, run_ids=[filled.ids["a"][:6] + filled.ids["a"][6:]])
    assert [r.run_id for r in lb.runs] == [filled.ids["a"]] and len(lb.groups) == 1
    assert build(filled.store, kind="generations").groups == []


def test_pure_metrics():
    o = [mt.TaskOutcome("h1", "x", correct=True, speedup_eager=2.0), mt.TaskOutcome("h2", "y"),
         mt.TaskOutcome("h3", "z", correct=True, speedup_eager=None)]  # correct but untimed: fast_0 only
    assert mt.fast_p(o, 0) == approx(2 / 3) and mt.fast_p(o, 1) == approx(1 / 3) and mt.fast_p(o, 2) == 0
    assert mt.geomean_correct(o) == approx(2.0) and mt.geomean_all(o) == approx(2 ** (1 / 3))
    assert mt.fast_p([], 1) is None and mt.geomean([]) is None
    assert mt.per_dollar(3, 0.0) is None and mt.per_dollar(3, 1.5) == approx(2.0)
    curve = mt.curve(o)
    assert curve[0] == (0.0, approx(2 / 3)) and curve[-1] == (4.0, 0.0) and len(curve) == 81
