"""Conjugate gradient: 16 CG iterations from x0 = 0 on A x = b, A a dense fp32 SPD 4096 x 4096 matrix (eigenvalues ~[0.04, 2.9])."""
import math

import torch
import torch.nn as nn

# Per iteration one GEMV over A (67 MB: ~17 us at ~4 TB/s on an H200) plus vector updates
# and two dot products: ~0.3 ms for 16 iterations, launch-bound in eager PyTorch (~10 kernels
# per iteration). A = (R + R^T)/2 + SHIFT * I with R ~ N(0, 1/n): the eigenvalues fill
# [SHIFT - sqrt(2), SHIFT + sqrt(2)] = ~[0.04, 2.9] (condition ~80), so CG reduces the error
# ~0.8x per iteration: after 16 it is far from converged, and a kernel that breaks the
# recurrence (stale beta, wrong step, one iteration more or less) ends 20-10000x the tolerance
# away from the reference, while fp32 summation-order differences stay below 1/20 of the
# 1e-4 tolerance (tests/test_hpc_tasks.py measures both), so no looser tolerance is needed.
SIZE = 4096
ITERS = 16
SHIFT = 1.45


class Model(nn.Module):
    """Textbook CG: x = 0, r = p = b, rr = r.r; each iteration: Ap = A p, alpha = rr / (p.Ap),
    x += alpha p, r -= alpha Ap, rr' = r.r, p = r + (rr'/rr) p, rr = rr'. Returns x."""

    def __init__(self, iters: int):
        super().__init__()
        self.iters = int(iters)

    def forward(self, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(b)
        r = b.clone()
        p = r.clone()
        rr = torch.dot(r, r)
        for _ in range(self.iters):
            Ap = torch.mv(A, p)
            alpha = rr / torch.dot(p, Ap)
            x = x + alpha * p
            r = r - alpha * Ap
            rr_new = torch.dot(r, r)
            p = r + (rr_new / rr) * p
            rr = rr_new
        return x


def get_inputs():
    R = torch.randn(SIZE, SIZE).mul_(1.0 / math.sqrt(SIZE))
    A = (R + R.T).mul_(0.5)
    A.diagonal().add_(SHIFT)
    return [A, torch.randn(SIZE)]


def get_init_inputs():
    return [ITERS]
