"""Reduction: logsumexp over the last dimension of a [8192, 4096] matrix."""
import torch
import torch.nn as nn

BATCH = 8192
DIM = 4096


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(x, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, DIM) * 2.0 + torch.randn(BATCH, 1)]


def get_init_inputs():
    return []
