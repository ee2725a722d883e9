"""Batched matrix multiplication: C[b] = A[b] @ B[b] with 32 batches of 512 x 512 matrices."""
import math

import torch
import torch.nn as nn

BATCH = 32
M = 512
K = 512
N = 512


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.bmm(A, B)


def get_inputs():
    return [torch.randn(BATCH, M, K) / math.sqrt(K), torch.randn(BATCH, K, N)]


def get_init_inputs():
    return []
