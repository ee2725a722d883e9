"""Per-sample cross-entropy with soft (probability) targets, reduction='none', on [8192, 1024] logits."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 8192
CLASSES = 1024


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, reduction="none")


def get_inputs():
    logits = torch.randn(BATCH, CLASSES) * 3.0
    target = torch.softmax(torch.randn(BATCH, CLASSES) * 2.0, dim=1)
    return [logits, target]


def get_init_inputs():
    return []
