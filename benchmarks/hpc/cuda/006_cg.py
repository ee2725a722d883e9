"""CUDA C++ (load_inline) candidate for hpc/006_cg: three kernels per iteration (GEMV fused with p.Ap, x/r update fused with r.r, p update); scalars on the GPU (the CuPy fixture's kernels)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

__device__ float blk_sum(float v, float* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x >> 1; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// x = 0, r = p = b, rr[0] += b.b
__global__ void cg_init(const float* __restrict__ b, float* __restrict__ x, float* __restrict__ r,
                                   float* __restrict__ p, float* __restrict__ rr, int n) {
    __shared__ float sh[256];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = 0.f;
    if (i < n) {
        const float bi = b[i];
        x[i] = 0.f; r[i] = bi; p[i] = bi;
        v = bi * bi;
    }
    v = blk_sum(v, sh);
    if (threadIdx.x == 0) atomicAdd(rr, v);
}

// Ap = A p (one block per row), pAp[0] += p.Ap
__global__ void cg_matvec(const float* __restrict__ A, const float* __restrict__ p,
                                     float* __restrict__ Ap, float* __restrict__ pAp, int n) {
    __shared__ float sh[256];
    const float* a = A + (long long)blockIdx.x * n;
    float s = 0.f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s = fmaf(a[j], p[j], s);
    s = blk_sum(s, sh);
    if (threadIdx.x == 0) {
        Ap[blockIdx.x] = s;
        atomicAdd(pAp, s * p[blockIdx.x]);
    }
}

// alpha = rr[t] / pAp[t]; x += alpha p; r -= alpha Ap; rr[t + 1] += r.r
__global__ void cg_update_xr(float* __restrict__ x, float* __restrict__ r, const float* __restrict__ p,
                                        const float* __restrict__ Ap, const float* __restrict__ rr,
                                        const float* __restrict__ pAp, float* __restrict__ rr_next, int n) {
    __shared__ float sh[256];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float alpha = rr[0] / pAp[0];
    float v = 0.f;
    if (i < n) {
        x[i] = fmaf(alpha, p[i], x[i]);
        const float ri = fmaf(-alpha, Ap[i], r[i]);
        r[i] = ri;
        v = ri * ri;
    }
    v = blk_sum(v, sh);
    if (threadIdx.x == 0) atomicAdd(rr_next, v);
}

// p = r + (rr[t + 1] / rr[t]) p
__global__ void cg_update_p(float* __restrict__ p, const float* __restrict__ r,
                                       const float* __restrict__ rr, const float* __restrict__ rr_next, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = fmaf(rr_next[0] / rr[0], p[i], r[i]);
}

torch::Tensor cg(torch::Tensor A, torch::Tensor b, int64_t iters) {
    TORCH_CHECK(A.is_cuda() && A.is_contiguous() && b.is_contiguous(), "contiguous CUDA tensors expected");
    const int n = b.numel();
    auto x = torch::empty_like(b), r = torch::empty_like(b), p = torch::empty_like(b), Ap = torch::empty_like(b);
    // rr[t] for t = 0..iters, then pAp[t] for t = 0..iters-1: every accumulator starts at 0
    auto scal = torch::zeros({2 * iters + 1}, b.options());
    float* rr = scal.data_ptr<float>();
    float* pAp = rr + iters + 1;
    const int blocks = (n + 255) / 256;
    auto stream = at::cuda::getCurrentCUDAStream();
    cg_init<<<blocks, 256, 0, stream>>>(b.data_ptr<float>(), x.data_ptr<float>(), r.data_ptr<float>(),
                                        p.data_ptr<float>(), rr, n);
    for (int64_t t = 0; t < iters; ++t) {
        cg_matvec<<<n, 256, 0, stream>>>(A.data_ptr<float>(), p.data_ptr<float>(), Ap.data_ptr<float>(), pAp + t, n);
        cg_update_xr<<<blocks, 256, 0, stream>>>(x.data_ptr<float>(), r.data_ptr<float>(), p.data_ptr<float>(),
                                                 Ap.data_ptr<float>(), rr + t, pAp + t, rr + t + 1, n);
        cg_update_p<<<blocks, 256, 0, stream>>>(p.data_ptr<float>(), r.data_ptr<float>(), rr + t, rr + t + 1, n);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return x;
}
"""

cpp_source = "torch::Tensor cg(torch::Tensor A, torch::Tensor b, int64_t iters);"

_ext = load_inline(name="ks_hpc_cg_inline", cpp_sources=cpp_source, cuda_sources=cuda_source,
                   functions=["cg"], verbose=False, extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, iters: int):
        super().__init__()
        self.iters = int(iters)

    def forward(self, A, b):
        return _ext.cg(A.contiguous(), b.contiguous(), self.iters)
