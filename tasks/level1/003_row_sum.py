"""Reduction: y = x.sum(dim=1) for a 3-D tensor x of shape [32, 4096, 1024] (keepdim=False)."""
import math

import torch
import torch.nn as nn

BATCH = 32
DIM1 = 4096         # reduced dimension
DIM2 = 1024         # 128M fp32 elements in total (512 MiB)


class Model(nn.Module):
    """Sum over dimension 1 of a [B, R, C] tensor, giving [B, C]."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sum(x, dim=1)


def get_inputs():
    # Scaled by 1/sqrt(DIM1) so the sums are O(1): fp32 summation-order differences
    # then stay far below an absolute tolerance of 1e-4.
    return [torch.randn(BATCH, DIM1, DIM2).mul_(1.0 / math.sqrt(DIM1))]


def get_init_inputs():
    return []
