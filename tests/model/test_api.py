"""kernelsmith.optimize(module, example_inputs) on the CPU: the real capture, task file and
search loop (scripted model, recorded-results evaluator, SQLite runs.db), the drop-in module
and its fallbacks, and the errors of bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import kernelsmith
from kernelsmith.model.errors import ModelError
from kernelsmith.store.runs import RunStore
from tests.model.common import fake_timer, fenced, evaluator
from tests.search.search_fakes import FakeLLM


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(32))

    def forward(self, x):
        return torch.relu(x * self.w)


def kernel(tag: str, factor: str = "1.0") -> str:
    return ("import torch\nimport torch.nn as nn\n\n"
            f"# kernel: {tag}\n"
            "class ModelNew(nn.Module):\n"
            "    def __init__(self, w):\n"
            "        super().__init__()\n"
            "        self.register_buffer('w', w.detach().clone())\n\n"
            "    def forward(self, x):\n"
            f"        return torch.relu(x * self.w * {factor})\n")


def _run(tmp_path, replies, module=None, **kw):
    torch.manual_seed(0)
    m = module or Scaled().eval()
    x = torch.randn(4, 32)
    llm = FakeLLM([fenced(r) for r in replies])
    fast = kernelsmith.optimize(m, [x], llm=llm, evaluator=evaluator(), store=RunStore(f"sqlite:///{tmp_path}/r.db"),
                                out_dir=tmp_path / "out", budget=len(replies), options={"chains": 1},
                                sanitize=False, confirm=False, verbose=False, **kw)
    return m, x, fast, llm


def test_drop_in_module_runs_the_verified_kernel(tmp_path, on_cpu, monkeypatch):
    monkeypatch.setattr("kernelsmith.model.api.time_pair", fake_timer)
    m, x, fast, llm = _run(tmp_path, [kernel("fast12"), kernel("fast17")])
    rep = fast.kernelsmith
    assert rep["installed"] and rep["task_speedup"] == pytest.approx(1.7) and rep["e2e"]["speedup"] == 1.25
    assert "Model(" in llm.prompts[0] and "def get_init_inputs" in llm.prompts[0]  # the task went to the model
    with torch.no_grad():
        torch.testing.assert_close(fast(x), m(x))
    # the module's live parameters: a change in place is seen by the kernel
    with torch.no_grad():
        m.w.mul_(2)
        torch.testing.assert_close(fast(x), m(x))
    assert (tmp_path / "out" / "scaled_kernelsmith.py").is_file() and (tmp_path / "out" / "scaled_kernelsmith.md").is_file()
    # other shapes: the original module, with a warning
    with pytest.warns(UserWarning, match="running the original module"):
        torch.testing.assert_close(fast(torch.ones(2, 32)), m(torch.ones(2, 32)))


def test_no_faster_kernel_returns_the_original_module(tmp_path, on_cpu):
    m, _, fast, _ = _run(tmp_path, [kernel("fast9"), kernel("wrong1")])
    assert fast is m and not fast.kernelsmith["installed"]
    assert "not faster than 1x" in fast.kernelsmith["note"]


def test_kernel_wrong_in_this_process_is_not_installed(tmp_path, on_cpu, monkeypatch):
    monkeypatch.setattr("kernelsmith.model.api.time_pair", fake_timer)
    with pytest.warns(UserWarning, match="disagrees with the module"):
        m, _, fast, _ = _run(tmp_path, [kernel("fast20", factor="1.5")])
    assert fast is m and "end-to-end check failed" in fast.kernelsmith["note"]


def test_bad_input_is_a_clear_error(tmp_path):
    m = Scaled().eval()
    with pytest.raises(ModelError, match="is on cpu, not a CUDA device"):
        kernelsmith.optimize(m, [torch.randn(4, 32)])
    with pytest.raises(ModelError, match="dynamic shapes are not supported"):
        kernelsmith.optimize(m, [torch.randn(4, 32)], dynamic_shapes={"x": {0: "batch"}})
    with pytest.raises(ModelError, match="training mode"):
        kernelsmith.optimize(Scaled(), [torch.randn(4, 32)])
    with pytest.raises(ModelError, match="unsupported module .*LSTM"):
        kernelsmith.optimize(nn.Sequential(nn.LSTM(4, 4)).eval(), [torch.randn(2, 3, 4)], dry_run=True)
