"""Matrix multiplication: C = A @ B for square fp32 matrices of size 4096 x 4096."""
import math

import torch
import torch.nn as nn

M = 4096
K = 4096
N = 4096


class Model(nn.Module):
    """Plain fp32 matrix product C[M, N] = A[M, K] @ B[K, N]."""

    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, B)


def get_inputs():
    # A is scaled by 1/sqrt(K) so entries of C are O(1): fp32 accumulation-order
    # differences (~1e-6) then stay far below an absolute tolerance of 1e-4.
    A = torch.randn(M, K).mul_(1.0 / math.sqrt(K))
    B = torch.randn(K, N)
    return [A, B]


def get_init_inputs():
    return []
