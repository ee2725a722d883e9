"""Whole-model mode on the CPU: the real capture, task files, search loop (agent.optimize with
a scripted model), runs.db, install as torch.library ops and end-to-end check; the evaluator
is the recorded-results fake and the kernels are PyTorch stand-ins (on a GPU: tests/gpu and
dev/device/model.py)."""

from __future__ import annotations

import json

import pytest
import torch

from kernelsmith.model.pipeline import optimize_model, read_generations, write_report
from kernelsmith.model.search import SearchSettings, Searcher
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from tests.model.common import cpu_kernel, evaluator, fake_timer, tiny


def _searcher(tmp_path):
    settings = SearchSettings(budget=Budget(max_candidates=4), sanitize=False, confirm=False,
                              options={"chains": 1})
    return Searcher(settings, evaluator=evaluator(), store=RunStore(f"sqlite:///{tmp_path / 'runs.db'}"))


def _generations(tmp_path, rows):
    p = tmp_path / "gen.jsonl"
    p.write_text("".join(json.dumps({"key": k, "code": c}) + "\n" for k, c in rows))
    return read_generations(p), str(p)


def test_winner_is_installed_as_a_custom_op_and_the_model_verified(tmp_path, on_cpu):
    m, xs = tiny()
    replies, name = _generations(tmp_path, [("ln+act+mul", cpu_kernel("fast8")), ("ln+act+mul", cpu_kernel("fast15"))])
    with _searcher(tmp_path) as s:
        report, opt, winners = optimize_model(m, xs, "tiny", s, tmp_path / "out", top=2, replies_for=replies,
                                              replies_name=name, timer=fake_timer)
    by = {g.key: g for g in report.groups}
    assert by["fc"].note == "skipped: no generation for this group" and not by["fc"].installed
    g = by["ln+act+mul"]
    assert g.installed and g.result["speedup"] == pytest.approx(1.5) and g.result["candidates"] == 2
    assert [w.group.key for w in winners] == ["ln+act+mul"]
    # the rewritten graph calls the op instead of the three nodes
    code = opt._forward.code
    assert f"torch.ops.{report.namespace}.ln_act_mul.default(" in code and "layer_norm" not in code
    with torch.no_grad():
        torch.testing.assert_close(opt(*xs), m(*xs))
    assert report.e2e["correct"] and report.e2e["speedup"] == 1.25 and report.e2e["trials"] == 5
    # recorded like any optimize run; the best kernel and its report written beside the task
    run = RunStore(f"sqlite:///{tmp_path / 'runs.db'}").get_run(g.result["run_id"])
    assert run.kind == "optimize" and run.model.startswith("generations:")
    assert (tmp_path / "out" / "kernels" / "tiny__ln_act_mul_kernelsmith.md").is_file()
    assert any("linear" in r["name"] or "addmm" in r["name"] for r in report.profile)  # torch.profiler's view
    md, js = write_report(report, tmp_path / "out")
    assert "End to end: **1.250x**" in md.read_text() and "torch.profiler" in md.read_text() and json.loads(js.read_text())["namespace"] == report.namespace


def test_a_kernel_that_breaks_the_whole_model_is_not_installed(tmp_path, on_cpu):
    """Verified on its task (the fake evaluator says so) but wrong in the model: the end-to-end
    check catches it and nothing is replaced."""
    m, xs = tiny()
    replies, name = _generations(tmp_path, [("ln+act+mul", cpu_kernel("fast20", wrong=True))])
    with _searcher(tmp_path) as s:
        report, opt, winners = optimize_model(m, xs, "tiny", s, tmp_path / "out", top=2, replies_for=replies,
                                              replies_name=name, timer=fake_timer)
    assert opt is None and winners == []
    g = {g.key: g for g in report.groups}["ln+act+mul"]
    assert not g.installed and "the whole model then fails" in g.note
    assert "unchanged" in report.note


def test_slower_or_unverified_kernels_are_not_installed(tmp_path, on_cpu):
    m, xs = tiny()
    replies, name = _generations(tmp_path, [("ln+act+mul", cpu_kernel("fast9")), ("fc", cpu_kernel("wrong1"))])
    with _searcher(tmp_path) as s:
        report, opt, winners = optimize_model(m, xs, "tiny", s, tmp_path / "out", top=2, replies_for=replies,
                                              replies_name=name, timer=fake_timer)
    by = {g.key: g for g in report.groups}
    assert opt is None and winners == []
    assert by["ln+act+mul"].note == "not installed: 0.900x is not over 1x"
    assert by["fc"].note == "not installed: no candidate verified correct"


def test_other_inputs_run_the_original_module(tmp_path, on_cpu):
    m, xs = tiny()
    replies, name = _generations(tmp_path, [("ln+act+mul", cpu_kernel("fast15"))])
    with _searcher(tmp_path) as s:
        _, opt, _ = optimize_model(m, xs, "tiny", s, tmp_path / "out", top=2, replies_for=replies,
                                   replies_name=name, timer=fake_timer)
    other = torch.randn(2, 8, 16)
    with pytest.warns(UserWarning, match=r"input 0 is \(\(2, 8, 16\), 'float32'\), verified at"):
        out = opt(other)
    torch.testing.assert_close(out, m(other))


def test_bad_generations_file(tmp_path):
    from kernelsmith.model.errors import ModelError

    p = tmp_path / "g.jsonl"
    p.write_text('{"code": "x"}\n')
    with pytest.raises(ModelError, match=r"g.jsonl:1: expected a JSON object with \"key\""):
        read_generations(p)
