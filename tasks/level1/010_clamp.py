"""Elementwise clamp to [-0.5, 0.75] on a [4096, 8192] fp32 tensor."""
import torch
import torch.nn as nn

BATCH = 4096
DIM = 8192


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, min=-0.5, max=0.75)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
