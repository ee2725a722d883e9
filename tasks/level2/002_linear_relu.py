"""Fused layer: y = relu(x @ W^T + b) with nn.Linear(2048, 2048) on a batch of 2048."""
import torch
import torch.nn as nn

BATCH = 2048
IN_FEATURES = 2048
OUT_FEATURES = 2048


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x))


def get_inputs():
    return [torch.randn(BATCH, IN_FEATURES)]


def get_init_inputs():
    return [IN_FEATURES, OUT_FEATURES]
