"""Residual conv block (NCHW [16, 32, 64, 64]): relu(bn2(conv3x3(relu(bn1(conv3x3(x))))) + x), BatchNorm in inference form."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 16
CHANNELS = 32
HEIGHT = 64
WIDTH = 64


class Model(nn.Module):
    """Two bias-free 3x3 convs (padding 1), each followed by BatchNorm2d with random running stats and affine."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.weight.normal_(1.0, 0.2)
                bn.bias.normal_(0.0, 0.2)
                bn.running_mean.normal_(0.0, 0.2)
                bn.running_var.uniform_(0.5, 1.5)

    @staticmethod
    def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
        # always uses the running statistics, whatever the module's training flag
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self._bn(self.conv1(x), self.bn1))
        h = self._bn(self.conv2(h), self.bn2)
        return F.relu(h + x)


def get_inputs():
    return [torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH)]


def get_init_inputs():
    return [CHANNELS]
