"""Reduction: y = x.mean(dim=-1) for x of shape [8192, 4096]."""
import torch
import torch.nn as nn

BATCH = 8192
DIM = 4096


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean(x, dim=-1)


def get_inputs():
    # per-row offsets make the means O(1) and varied
    return [torch.randn(BATCH, DIM) + torch.randn(BATCH, 1)]


def get_init_inputs():
    return []
