"""GEMM (BLAS sgemm): C_out = alpha * A @ B + beta * C, fp32, M = N = 2048, K = 2050, alpha = 0.75, beta = 0.25."""
import math

import torch
import torch.nn as nn

# 2 * 2048 * 2048 * 2050 = 17.2 GFLOP: ~290 us at ~60 TFLOP/s fp32 (no TF32) on an H200;
# 50 MB of operands are nothing next to that. K is not a multiple of 32 or 64, so a tiled
# kernel that drops the last partial K tile is caught.
M = 2048
N = 2048
K = 2050
ALPHA = 0.75
BETA = 0.25


class Model(nn.Module):
    """C_out[i, j] = alpha * sum_k A[i, k] B[k, j] + beta * C[i, j]; C is not modified."""

    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        return torch.addmm(C, A, B, beta=self.beta, alpha=self.alpha)


def get_inputs():
    # A scaled by 1/sqrt(K) so the products are O(1) (see 002_gemv)
    return [torch.randn(M, K).mul_(1.0 / math.sqrt(K)), torch.randn(K, N), torch.randn(M, N)]


def get_init_inputs():
    return [ALPHA, BETA]
