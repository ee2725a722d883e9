"""CUDA C++ (load_inline) candidate for hpc/004_spmv_csr: one warp per row, shuffle reduction; empty rows write 0 (the CuPy fixture's kernels)."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

__global__ void spmv_warp(const int* __restrict__ crow, const int* __restrict__ col,
                                     const float* __restrict__ val, const float* __restrict__ x,
                                     float* __restrict__ y, int n) {
    const long long gt = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int row = (int)(gt >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= n) return;  // whole warps leave together: n rows take n warps exactly
    const int start = crow[row], end = crow[row + 1];
    float s = 0.f;
    for (int k = start + lane; k < end; k += 32) s = fmaf(val[k], x[col[k]], s);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) y[row] = s;
}

torch::Tensor spmv(torch::Tensor crow, torch::Tensor col, torch::Tensor values, torch::Tensor x) {
    TORCH_CHECK(crow.is_cuda() && crow.scalar_type() == torch::kInt32 && col.scalar_type() == torch::kInt32,
                "int32 CUDA crow / col expected");
    const int n = crow.numel() - 1;
    auto y = torch::empty({n}, x.options());
    const long long threads = (long long)n * 32;
    spmv_warp<<<(int)((threads + 255) / 256), 256, 0, at::cuda::getCurrentCUDAStream()>>>(
        crow.data_ptr<int>(), col.data_ptr<int>(), values.data_ptr<float>(), x.data_ptr<float>(),
        y.data_ptr<float>(), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
"""

cpp_source = "torch::Tensor spmv(torch::Tensor crow, torch::Tensor col, torch::Tensor values, torch::Tensor x);"

_ext = load_inline(name="ks_hpc_spmv_csr_inline", cpp_sources=cpp_source, cuda_sources=cuda_source,
                   functions=["spmv"], verbose=False, extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, crow, col, values, x):
        return _ext.spmv(crow.contiguous(), col.contiguous(), values.contiguous(), x.contiguous())
