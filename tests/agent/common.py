"""Shared pieces of the agent tests: a task, tagged kernels, and a recorded-results evaluator."""

from __future__ import annotations

import re

from tests.search.search_fakes import FakeEvaluator, compile_error, correct, incorrect

TASK_SRC = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def get_inputs():
    return [torch.randn(1024)]


def get_init_inputs():
    return []
'''


def kernel_reply(tag: str) -> str:
    """A model reply holding a complete candidate file tagged `tag` (the fake evaluator's key)."""
    return ("Here is the kernel.\n```python\nimport torch\nimport torch.nn as nn\nimport cupy as cp\n\n"
            f"# kernel: {tag}\n"
            'SRC = r"""extern "C" __global__ void relu(const float* x, float* y, int n) {\n'
            '  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f; }"""\n'
            'K = cp.RawKernel(SRC, "relu")\n\n\n'
            "class ModelNew(nn.Module):\n"
            "    def forward(self, x):\n"
            "        y = torch.empty_like(x)\n"
            "        n = x.numel()\n"
            "        with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):\n"
            "            K(((n + 255) // 256,), (256,), (cp.from_dlpack(x), cp.from_dlpack(y), cp.int32(n)))\n"
            "        return y\n```\n")


def speed_of(tag: str) -> float:
    m = re.match(r"fast(\d+)", tag or "")
    return int(m.group(1)) / 10 if m else 1.0


def evaluator_for(delay: float = 0.0) -> FakeEvaluator:
    """broken* -> compile error, wrong* -> incorrect, fastNN -> correct at NN/10 x."""
    def default(tag):
        if tag.startswith("broken"):
            return compile_error('kernel.cu(3): error: identifier "blockIdx_x" is undefined')
        if tag.startswith("wrong"):
            return incorrect("trial 1: 4096 of 1048576 values outside atol=1e-4; worst at index (1023,)")
        return correct(speed_of(tag))
    return FakeEvaluator(default=default, delay=delay)
