"""Softmax over the channel dimension (dim=1) of a [32, 128, 8192] tensor."""
import torch
import torch.nn as nn

BATCH = 32
CHANNELS = 128
LENGTH = 8192


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, LENGTH) * 3.0]


def get_init_inputs():
    return []
