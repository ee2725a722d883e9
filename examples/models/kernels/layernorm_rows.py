"""LayerNorm over the last dimension (<= 1024 wide), fp32: one warp per row, the row in registers,
two-pass mean and variance (CuPy RawKernel). For the ln1 / ln2 groups of tiny_transformer."""
import cupy as cp
import torch
import torch.nn as nn

_SRC = r"""
extern "C" __global__ void layernorm_rows(const float* __restrict__ x, const float* __restrict__ w,
                                          const float* __restrict__ b, float* __restrict__ y,
                                          int rows, int cols, float eps) {
    const int row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float* yr = y + (long long)row * cols;
    float v[32];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        v[k] = c < cols ? xr[c] : 0.f;
        s += v[k];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float mean = s / cols;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        const float d = c < cols ? v[k] - mean : 0.f;
        q += d * d;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
    const float rstd = rsqrtf(q / cols + eps);
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        if (c < cols) yr[c] = (v[k] - mean) * rstd * w[c] + b[c];
    }
}
"""

_kernel = cp.RawKernel(_SRC, "layernorm_rows", options=("-std=c++17",))
_WARPS = 8


class ModelNew(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().float().contiguous())
        self.register_buffer("bias", bias.detach().clone().float().contiguous())

    def forward(self, x):
        x = x.contiguous()
        cols = self.weight.numel()
        if cols > 1024:
            raise ValueError("layernorm_rows handles rows of at most 1024 values")
        rows = x.numel() // cols
        y = torch.empty_like(x)
        blocks = (rows + _WARPS - 1) // _WARPS
        with cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
            _kernel((blocks,), (32 * _WARPS,),
                    (cp.from_dlpack(x.detach()), cp.from_dlpack(self.weight), cp.from_dlpack(self.bias),
                     cp.from_dlpack(y), cp.int32(rows), cp.int32(cols), cp.float32(1e-5)))
        return y
