"""Elementwise: y = leaky_relu(x, negative_slope=0.01) * scale, with scale a constructor argument."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4096
DIM = 8192          # 32M fp32 elements (128 MiB per tensor)
SCALE = 1.7


class Model(nn.Module):
    """Leaky ReLU with negative slope 0.01, then multiplication by a scalar."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, negative_slope=0.01) * self.scale


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [SCALE]
