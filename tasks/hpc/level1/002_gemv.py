"""GEMV (BLAS sgemv): y_out = alpha * A @ x + beta * y with A fp32 [8192, 8191], alpha = 1.5, beta = -0.5."""
import math

import torch
import torch.nn as nn

# A is 268 MB, read once: ~67 us at ~4 TB/s on an H200 (2 * 67M FLOPs is nothing at
# ~60 TFLOP/s). The row length is odd so vectorized loads need a tail.
M = 8192
N = 8191
ALPHA = 1.5
BETA = -0.5


class Model(nn.Module):
    """y_out[i] = alpha * sum_j A[i, j] * x[j] + beta * y[i]; y is not modified."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, A: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.addmv(y, A, x, beta=self.beta, alpha=self.alpha)


def get_inputs():
    # entries of A scaled by 1/sqrt(N): each A @ x entry is O(1), so fp32 summation-order
    # differences (~1e-6) stay far below the 1e-4 tolerance
    return [torch.randn(M, N).mul_(1.0 / math.sqrt(N)), torch.randn(N), torch.randn(M)]


def get_init_inputs():
    return [ALPHA, BETA]
