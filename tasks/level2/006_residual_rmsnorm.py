"""Fused chain: h = x + residual, then RMSNorm(h) * weight (eps 1e-6) on [8192, 2048]."""
import torch
import torch.nn as nn

BATCH = 8192
DIM = 2048


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim) * 0.2 + 1.0)
        self.eps = 1e-6

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        h = x + residual
        return h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def get_inputs():
    return [torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
