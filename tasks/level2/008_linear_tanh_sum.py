"""Fused chain: nn.Linear(1024, 512) then tanh then sum over features, on a batch of 8192 (output [8192])."""
import torch
import torch.nn as nn

BATCH = 8192
IN_FEATURES = 1024
OUT_FEATURES = 512


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x)).sum(dim=1)


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES]
