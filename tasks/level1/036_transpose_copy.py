"""Transpose copy: x.transpose(1, 2).contiguous() for x of shape [32, 1024, 1024]."""
import torch
import torch.nn as nn

BATCH = 32
ROWS = 1024
COLS = 1024


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).contiguous()


def get_inputs():
    return [torch.randn(BATCH, ROWS, COLS)]


def get_init_inputs():
    return []
