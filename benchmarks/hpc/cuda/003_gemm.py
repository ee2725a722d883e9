"""CUDA C++ (load_inline) candidate for hpc/003_gemm: 64x64 shared-memory tiles, 4x4 outputs per thread, alpha * A @ B + beta * C (the CuPy fixture's kernels)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

#define BM 64
#define BN 64
#define BK 16

__global__ void __launch_bounds__(256) sgemm(
        const float* __restrict__ A, const float* __restrict__ B, const float* __restrict__ C,
        float* __restrict__ out, int M, int N, int K, float alpha, float beta) {
    __shared__ float As[BK][BM + 1];  // A tile stored k-major
    __shared__ float Bs[BK][BN];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = threadIdx.x; e < BM * BK; e += 256) {
            const int m = e / BK, k = e % BK;
            const int gm = row0 + m, gk = k0 + k;
            As[k][m] = (gm < M && gk < K) ? A[(long long)gm * K + gk] : 0.f;
        }
        for (int e = threadIdx.x; e < BK * BN; e += 256) {
            const int k = e / BN, n = e % BN;
            const int gk = k0 + k, gn = col0 + n;
            Bs[k][n] = (gk < K && gn < N) ? B[(long long)gk * N + gn] : 0.f;
        }
        __syncthreads();
        for (int k = 0; k < BK; ++k) {
            float a[4], b[4];
            for (int i = 0; i < 4; ++i) a[i] = As[k][ty + 16 * i];
            for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx + 16 * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        const int gm = row0 + ty + 16 * i;
        if (gm >= M) continue;
        for (int j = 0; j < 4; ++j) {
            const int gn = col0 + tx + 16 * j;
            if (gn < N) {
                const long long o = (long long)gm * N + gn;
                out[o] = alpha * acc[i][j] + beta * C[o];
            }
        }
    }
}

torch::Tensor gemm(torch::Tensor A, torch::Tensor B, torch::Tensor C, double alpha, double beta) {
    TORCH_CHECK(A.is_cuda() && A.is_contiguous() && B.is_contiguous() && C.is_contiguous(), "contiguous CUDA tensors");
    const int M = A.size(0), K = A.size(1), N = B.size(1);
    auto out = torch::empty_like(C);
    dim3 grid((N + 63) / 64, (M + 63) / 64);
    sgemm<<<grid, 256, 0, at::cuda::getCurrentCUDAStream()>>>(A.data_ptr<float>(), B.data_ptr<float>(),
        C.data_ptr<float>(), out.data_ptr<float>(), M, N, K, (float)alpha, (float)beta);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}
"""

cpp_source = "torch::Tensor gemm(torch::Tensor A, torch::Tensor B, torch::Tensor C, double alpha, double beta);"

_ext = load_inline(name="ks_hpc_gemm_inline", cpp_sources=cpp_source, cuda_sources=cuda_source,
                   functions=["gemm"], verbose=False, extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, alpha: float, beta: float):
        super().__init__()
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, A, B, C):
        return _ext.gemm(A.contiguous(), B.contiguous(), C.contiguous(), self.alpha, self.beta)
