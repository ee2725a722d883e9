"""RMSNorm: x * rsqrt(mean(x^2, -1) + 1e-6) * weight on a [8192, 2048] matrix."""
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def get_inputs():
    return [torch.randn(BATCH, DIM) * 2.0]


def get_init_inputs():
    return [DIM]
