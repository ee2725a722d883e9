"""Reduction: y = x.max(dim=1).values for x of shape [64, 1024, 1024]."""
import torch
import torch.nn as nn

BATCH = 64
DIM1 = 1024
DIM2 = 1024


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.max(x, dim=1).values


def get_inputs():
    return [torch.randn(BATCH, DIM1, DIM2)]


def get_init_inputs():
    return []
