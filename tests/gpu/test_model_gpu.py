"""Whole-model mode and kernelsmith.optimize on a GPU with the example models' hand-written
kernels (dev/device/model.py runs the full version with the CLI and prints speedups)."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_convnet_bn_relu_is_installed_and_the_model_verified(evaluator, tmp_path):
    from kernelsmith.model.pipeline import load_model_file, optimize_model, read_generations
    from kernelsmith.model.search import SearchSettings, Searcher
    from kernelsmith.search.base import Budget
    from kernelsmith.store.runs import RunStore

    m, xs, name = load_model_file("examples/models/small_convnet.py", "cuda")
    settings = SearchSettings(budget=Budget(max_candidates=1), sanitize=False, confirm=False)
    with Searcher(settings, evaluator=evaluator, store=RunStore(f"sqlite:///{tmp_path / 'runs.db'}")) as s:
        report, opt, winners = optimize_model(
            m, xs, name, s, tmp_path / "out", only=["bn+relu", "blocks.1.bn2+add_1+blocks.1.relu+pool"],
            replies_for=read_generations("examples/models/small_convnet_generations.jsonl"), replies_name="gen")
    by = {g.key: g for g in report.groups}
    assert by["bn+relu"].result["verdicts"] == {"correct": 1}, json.dumps(report.to_dict(), default=str)[:3000]
    assert opt is not None and report.e2e["correct"] and report.e2e["speedup"] > 0
    with torch.no_grad():
        torch.testing.assert_close(opt(*xs), m(*xs), atol=1e-4, rtol=1e-4)


def test_optimize_api_on_a_module(evaluator, tmp_path):
    import kernelsmith
    from kernelsmith.store.runs import RunStore

    class Probs(torch.nn.Module):
        def forward(self, scores):
            return (scores * 0.125).softmax(dim=-1)

    m = Probs().eval().cuda()
    x = torch.randn(8, 8, 256, 256, device="cuda")
    fast = kernelsmith.optimize(m, [x], model="scripted:examples/optimize_api_replies.json", budget=1,
                                sanitize=False, confirm=False, evaluator=evaluator,
                                store=RunStore(f"sqlite:///{tmp_path / 'runs.db'}"), out_dir=tmp_path, verbose=False)
    rep = fast.kernelsmith
    assert rep["verdicts"] == {"correct": 1}, rep
    if rep["installed"]:
        with torch.no_grad():
            torch.testing.assert_close(fast(x), m(x), atol=1e-4, rtol=1e-4)
    else:
        assert fast is m and "not faster" in rep["note"]
