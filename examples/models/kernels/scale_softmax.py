"""softmax(x * 0.125, dim=-1) for rows of <= 1024 values, fp32, fused: one warp per row, the row in
registers, read once and written once (CuPy RawKernel). For the mul+softmax group of
tiny_transformer (the attention scores, scale 1/sqrt(64))."""
import cupy as cp
import torch
import torch.nn as nn

_SRC = r"""
extern "C" __global__ void scale_softmax(const float* __restrict__ x, float* __restrict__ y,
                                         int rows, int cols, float scale) {
    const int row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const float* xr = x + (long long)row * cols;
    float* yr = y + (long long)row * cols;
    float v[32];
    float m = __int_as_float(0xff800000);
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        v[k] = c < cols ? xr[c] * scale : __int_as_float(0xff800000);
        m = fmaxf(m, v[k]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        v[k] = c < cols ? expf(v[k] - m) : 0.f;
        s += v[k];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float inv = 1.f / s;
#pragma unroll
    for (int k = 0; k < 32; ++k) {
        const int c = lane + 32 * k;
        if (c < cols) yr[c] = v[k] * inv;
    }
}
"""

_kernel = cp.RawKernel(_SRC, "scale_softmax", options=("-std=c++17",))
_WARPS = 8
SCALE = 0.125


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        cols = x.shape[-1]
        if cols > 1024:
            raise ValueError("scale_softmax handles rows of at most 1024 values")
        rows = x.numel() // cols
        y = torch.empty_like(x)
        blocks = (rows + _WARPS - 1) // _WARPS
        with cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
            _kernel((blocks,), (32 * _WARPS,),
                    (cp.from_dlpack(x.detach()), cp.from_dlpack(y), cp.int32(rows), cp.int32(cols),
                     cp.float32(SCALE)))
        return y
