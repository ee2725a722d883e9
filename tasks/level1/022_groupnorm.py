"""nn.GroupNorm(8 groups, 64 channels, random affine) on a [32, 64, 64, 64] tensor."""
import torch
import torch.nn as nn

BATCH = 32
CHANNELS = 64
GROUPS = 8
HEIGHT = 64
WIDTH = 64


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self, groups: int, channels: int):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)
        with torch.no_grad():
            self.gn.weight.normal_(1.0, 0.2)
            self.gn.bias.normal_(0.0, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gn(x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH) * 2.0 + 0.5]


def get_init_inputs():
    return [GROUPS, CHANNELS]
