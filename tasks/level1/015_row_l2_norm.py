"""Reduction: Euclidean (L2) norm of each row of a [16384, 4096] matrix."""
import math

import torch
import torch.nn as nn

BATCH = 16384
DIM = 4096


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x, ord=2, dim=1)


def get_inputs():
    # rows get random scales so the norms spread over (0, 1)
    return [torch.randn(BATCH, DIM) * (torch.rand(BATCH, 1) / math.sqrt(DIM))]


def get_init_inputs():
    return []
