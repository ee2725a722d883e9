"""Row softmax: y = softmax(x, dim=-1) over the last dimension of a [4096, 8192] matrix."""
import torch
import torch.nn as nn

BATCH = 4096
DIM = 8192
# Logits are scaled so each row's distribution is peaked (largest entries ~0.1-0.9)
# rather than nearly uniform (~1/DIM everywhere), so that errors are visible above
# an absolute tolerance of 1e-4.
LOGIT_SCALE = 3.0


class Model(nn.Module):
    """Softmax over the last dimension."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, DIM) * LOGIT_SCALE]


def get_init_inputs():
    return []
