"""Triton candidate for hpc/004_spmv_csr: one program per row, a loop over its nonzeros in chunks of 32; empty rows store 0."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _spmv_kernel(crow, col, val, x, y, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    start = tl.load(crow + row)
    end = tl.load(crow + row + 1)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k0 in range(start, end, BLOCK):
        k = k0 + tl.arange(0, BLOCK)
        m = k < end
        c = tl.load(col + k, mask=m, other=0)
        acc += tl.load(val + k, mask=m, other=0.0) * tl.load(x + c, mask=m, other=0.0)
    tl.store(y + row, tl.sum(acc, axis=0))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, crow, col, values, x):
        crow = crow.contiguous()
        col = col.contiguous()
        values = values.contiguous()
        x = x.contiguous()
        n = crow.numel() - 1
        y = torch.empty(n, dtype=x.dtype, device=x.device)
        _spmv_kernel[(n,)](crow, col, values, x, y, BLOCK=32)
        return y
