"""Triton candidate for hpc/005_jacobi2d: one launch per sweep over 32x64 tiles of ping-pong buffers; the boundary is carried over."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sweep_kernel(u, f, out, H, W, BH: tl.constexpr, BW: tl.constexpr):
    i = tl.program_id(0) * BH + tl.arange(0, BH)[:, None]
    j = tl.program_id(1) * BW + tl.arange(0, BW)[None, :]
    inside = (i < H) & (j < W)
    interior = (i > 0) & (j > 0) & (i < H - 1) & (j < W - 1)
    o = i.to(tl.int64) * W + j
    c = tl.load(u + o, mask=inside, other=0.0)
    n = tl.load(u + o - W, mask=interior, other=0.0)
    s = tl.load(u + o + W, mask=interior, other=0.0)
    w = tl.load(u + o - 1, mask=interior, other=0.0)
    e = tl.load(u + o + 1, mask=interior, other=0.0)
    fv = tl.load(f + o, mask=interior, other=0.0)
    tl.store(out + o, tl.where(interior, 0.25 * (n + s + w + e - fv), c), mask=inside)


class ModelNew(nn.Module):
    def __init__(self, sweeps: int):
        super().__init__()
        self.sweeps = int(sweeps)

    def forward(self, u0, f):
        u0 = u0.contiguous()
        f = f.contiguous()
        H, W = u0.shape
        bufs = [torch.empty_like(u0), torch.empty_like(u0)]
        grid = (triton.cdiv(H, 32), triton.cdiv(W, 64))
        src = u0
        for s in range(self.sweeps):
            dst = bufs[s % 2]
            _sweep_kernel[grid](src, f, dst, H, W, BH=32, BW=64)
            src = dst
        return src
