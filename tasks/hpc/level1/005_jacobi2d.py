"""2-D Jacobi stencil: 8 sweeps of u <- (u_N + u_S + u_W + u_E - f) / 4 on the interior of a 4096 x 4095 fp32 grid with fixed random (Dirichlet) boundary values."""
import torch
import torch.nn as nn

# Per sweep at least u and f read and u written, 3 x 67 MB = 201 MB: ~50 us at ~4 TB/s on an
# H200, 8 sweeps ~0.4 ms. The boundary holds random values that must be kept (not zero)
# and feed the interior next to it; the width is odd.
HEIGHT = 4096
WIDTH = 4095
SWEEPS = 8


class Model(nn.Module):
    """Jacobi iteration for -Laplace(u) = -f with grid spacing 1: each sweep computes, for every
    interior point (1 <= i < H-1, 1 <= j < W-1), from the previous sweep's grid only,
    u'[i, j] = 0.25 * (u[i-1, j] + u[i+1, j] + u[i, j-1] + u[i, j+1] - f[i, j]); boundary rows
    and columns keep u0's values. Returns the grid after `sweeps` sweeps (u0 is not modified)."""

    def __init__(self, sweeps: int):
        super().__init__()
        self.sweeps = int(sweeps)

    def forward(self, u0: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        u = u0.clone()
        for _ in range(self.sweeps):
            nxt = u.clone()
            nxt[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - f[1:-1, 1:-1])
            u = nxt
        return u


def get_inputs():
    return [torch.randn(HEIGHT, WIDTH), torch.randn(HEIGHT, WIDTH).mul_(0.1)]


def get_init_inputs():
    return [SWEEPS]
