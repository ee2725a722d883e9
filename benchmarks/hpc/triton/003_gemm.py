"""Triton candidate for hpc/003_gemm: 64x64x32 tiles with tl.dot in IEEE fp32 (no TF32), masked edges."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _gemm_kernel(A, B, C, out, M, N, K, alpha, beta,
                 BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        a = tl.load(A + rm[:, None].to(tl.int64) * K + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K),
                    other=0.0)
        b = tl.load(B + rk[:, None].to(tl.int64) * N + rn[None, :], mask=(rk[:, None] < K) & (rn[None, :] < N),
                    other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")  # TF32 would miss the 1e-4 tolerance
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    offs = rm[:, None].to(tl.int64) * N + rn[None, :]
    c = tl.load(C + offs, mask=mask, other=0.0)
    tl.store(out + offs, alpha * acc + beta * c, mask=mask)


class ModelNew(nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, A, B, C):
        A = A.contiguous()
        B = B.contiguous()
        C = C.contiguous()
        M, K = A.shape
        N = B.shape[1]
        out = torch.empty_like(C)
        grid = (triton.cdiv(M, 64), triton.cdiv(N, 64))
        _gemm_kernel[grid](A, B, C, out, M, N, K, self.alpha, self.beta, BM=64, BN=64, BK=32)
        return out
