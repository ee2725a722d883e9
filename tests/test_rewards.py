"""Rewards on recorded results: the registry, each built-in, TRL-style batching."""

from __future__ import annotations

import math

import pytest

import rewards
from tests.search.search_fakes import compile_error, correct, incorrect, runtime_error
from kernelsmith.results import EvalResult, Verdict

REJECTED = EvalResult(Verdict.REJECTED, "t", "c", message="torch-compute")
TIMEOUT = EvalResult(Verdict.TIMEOUT, "t", "c")


def test_registry_lists_builtins_and_explains_unknown_names():
    assert {"speedup", "log_speedup", "staged", "contrastive", "penalized"} <= set(rewards.names())
    with pytest.raises(KeyError, match="known: .*speedup"):
        rewards.get("nope")


def test_speedup_gates_on_correctness_and_accepts_dicts():
    fn = rewards.get("speedup")
    res = [correct(2.0), incorrect(speedup=50.0), None, correct(0.5).to_dict()]
    assert fn(["a"] * 4, res) == [2.0, 0.0, 0.0, 0.5]
    assert fn(["a"], [None], none_for_missing=True) == [None]


def test_log_speedup_is_clipped_and_fails_low():
    fn = rewards.get("log_speedup")
    out = fn([""] * 3, [correct(1.0), correct(1000.0), compile_error()])
    assert out[0] == 0.0 and out[1] == pytest.approx(math.log(10)) and out[2] == -1.0


def test_staged_orders_the_stages():
    fn = rewards.get("staged")
    out = fn([""] * 6, [compile_error(), runtime_error(), incorrect(), correct(0.8), correct(1.5), correct(3.0)])
    assert out == pytest.approx([0.0, 0.1, 0.3, 0.6, 0.8, 1.0])
    invalid = EvalResult(Verdict.INVALID_TASK, "t", "c")
    assert fn([""], [invalid]) == [None]


def test_contrastive_normalises_within_groups():
    fn = rewards.get("contrastive")
    res = [correct(1.0), correct(2.0), correct(4.0), incorrect(), correct(3.0), correct(3.0)]
    out = fn([""] * 6, res, group=[0, 0, 0, 0, 1, 1])
    assert out[0] < out[1] < out[2]  # faster kernels rank higher in their group
    assert out[3] < out[0]  # a failure is below every correct one
    assert sum(out[:3]) == pytest.approx(0.0)  # z-scores of the correct ones
    assert out[4] == out[5] == 0.0  # equal speedups: no preference


def test_penalized_punishes_cheats_most():
    fn = rewards.get("penalized")
    out = fn([""] * 4, [REJECTED, TIMEOUT, compile_error(), correct(2.0)])
    assert out[0] < out[1] < out[2] < out[3]


def test_a_dropped_in_file_is_selectable(tmp_path, monkeypatch):
    import importlib
    import sys

    extra = tmp_path / "rewards_extra"
    extra.mkdir()
    path = list(rewards.__path__)
    (tmp_path / "rewards_extra" / "custom.py").write_text(
        "from rewards import register\n\n@register('always_one')\ndef f(completions, results, **kw):\n"
        "    return [1.0 for _ in results]\n")
    monkeypatch.setattr(rewards, "__path__", path + [str(extra)])
    monkeypatch.setattr(rewards, "_loaded", False)
    try:
        assert rewards.get("always_one")([""], [None]) == [1.0]
    finally:
        rewards._REGISTRY.pop("always_one", None)
        sys.modules.pop("rewards.custom", None)
        importlib.invalidate_caches()
