"""Per-row KL divergence: F.kl_div(log_q, p, reduction='none').sum(dim=1) for [8192, 2048] distributions."""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 8192
DIM = 2048


class Model(nn.Module):
    """Eager PyTorch reference for this task."""

    def __init__(self):
        super().__init__()

    def forward(self, log_q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return F.kl_div(log_q, p, reduction="none").sum(dim=1)


def get_inputs():
    log_q = torch.log_softmax(torch.randn(BATCH, DIM) * 1.5, dim=1)
    p = torch.softmax(torch.randn(BATCH, DIM) * 1.5, dim=1)
    return [log_q, p]


def get_init_inputs():
    return []
