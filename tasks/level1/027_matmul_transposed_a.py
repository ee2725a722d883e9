"""Matrix multiplication with a transposed operand: C = A.T @ B, A of shape [2048, 2048] (K x M), B [2048, 2048]."""
import math

import torch
import torch.nn as nn

M = 2048
K = 2048
N = 2048


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A.T, B)


def get_inputs():
    return [torch.randn(K, M) / math.sqrt(K), torch.randn(K, N)]


def get_init_inputs():
    return []
