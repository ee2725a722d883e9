"""Fused chain: nn.LayerNorm(2048, random affine) then exact GELU on an [8192, 2048] matrix."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 8192
DIM = 2048


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self, dim: int):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        with torch.no_grad():
            self.ln.weight.normal_(1.0, 0.2)
            self.ln.bias.normal_(0.0, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.ln(x))


def get_inputs():
    return [torch.randn(BATCH, DIM) * 2.0 + 1.0]


def get_init_inputs():
    return [DIM]
