"""A small residual conv net (ResNet-style stem and two basic blocks), fp32, NCHW: the second
example model of whole-model mode.

    kernelsmith model examples/models/small_convnet.py --generations examples/models/small_convnet_generations.jsonl

KernelBench layout: `Model`, `get_inputs()` (a batch of 32 images of 3x64x64),
`get_init_inputs()`; built under torch.manual_seed(0), in eval mode (batch norm on its
running statistics, which are set to non-trivial values here so that the check means
something).
"""

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


class Model(nn.Module):
    def __init__(self, ch: int = 64, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU()
        self.blocks = nn.Sequential(Block(ch), Block(ch))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.head = nn.Linear(ch, classes)
        g = torch.Generator().manual_seed(1)
        for m in self.modules():  # trained-looking statistics instead of the (0, 1) defaults
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(ch, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(ch, generator=g) + 0.5)
                m.weight.data.copy_(torch.rand(ch, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(ch, generator=g) * 0.1)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(x)))
        x = self.blocks(x)
        return self.head(self.flat(self.pool(x)))


def get_inputs():
    return [torch.randn(32, 3, 64, 64)]


def get_init_inputs():
    return [64, 10]
