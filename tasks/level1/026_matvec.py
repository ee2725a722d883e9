"""Matrix-vector product: y = A @ x with A of shape [8192, 8192] and x of shape [8192, 1]."""
import math

import torch
import torch.nn as nn

M = 8192
K = 8192


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, x)


def get_inputs():
    return [torch.randn(M, K) / math.sqrt(K), torch.randn(K, 1)]


def get_init_inputs():
    return []
