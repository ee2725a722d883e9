"""Shared pieces of the model tests: a tiny model, CPU stand-ins for kernels, and a fake
evaluator keyed by the kernels' tags (tests/search/search_fakes.py)."""

from __future__ import annotations

import torch
import torch.nn as nn

from kernelsmith.model.verify import EndToEnd
from tests.search.search_fakes import FakeEvaluator, correct, incorrect


class Tiny(nn.Module):
    """fc (a GEMM) then one fused chain ln -> act -> mul."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.ln = nn.LayerNorm(32)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.ln(self.fc(x))) * 2.0


def tiny():
    torch.manual_seed(0)
    return Tiny().eval(), [torch.randn(4, 8, 16)]


def cpu_kernel(tag: str, wrong: bool = False) -> str:
    """A candidate for the ln+act+mul group in plain PyTorch (the fake evaluator judges it by
    its tag; on the CPU it stands in for a GPU kernel in the installed model)."""
    factor = "2.5" if wrong else "2.0"
    return ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
            f"# kernel: {tag}\n"
            "class ModelNew(nn.Module):\n"
            "    def __init__(self, w, b):\n"
            "        super().__init__()\n"
            "        self.register_buffer('w', w.clone())\n"
            "        self.register_buffer('b', b.clone())\n\n"
            "    def forward(self, x):\n"
            f"        return F.gelu(F.layer_norm(x, (32,), self.w, self.b, 1e-5)) * {factor}\n")


def fenced(code: str) -> str:
    return f"Here it is.\n```python\n{code}```\n"


def evaluator() -> FakeEvaluator:
    """fastNN -> correct at NN/10 x; wrong* -> incorrect."""
    def default(tag):
        if (tag or "").startswith("wrong"):
            return incorrect()
        return correct(int(tag[4:]) / 10 if tag and tag.startswith("fast") else 1.0)
    return FakeEvaluator(default=default)


def fake_timer(original, optimized, make, result: EndToEnd, *a, **k) -> EndToEnd:
    """CUDA-event timing stands aside on the CPU: a fixed measurement."""
    result.eager_ms, result.optimized_ms, result.speedup, result.samples = 2.0, 1.6, 1.25, 15
    result.speedup_ci = (1.2, 1.3)
    return result
