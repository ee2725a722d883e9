"""adaptive_avg_pool2d(relu(batch_norm(x) + residual), 1), NCHW fp32: one block per (n, c)
plane reads both inputs once and writes one mean; nothing of the full-size activation is
stored (CuPy RawKernel). For the last block's bn2+add+relu+pool group of small_convnet."""
import cupy as cp
import torch
import torch.nn as nn

_SRC = r"""
extern "C" __global__ void bn_add_relu_pool(const float* __restrict__ x, const float* __restrict__ r,
                                            const float* __restrict__ mean, const float* __restrict__ var,
                                            const float* __restrict__ w, const float* __restrict__ b,
                                            float* __restrict__ y, int hw, int channels, float eps) {
    const int plane = blockIdx.x;
    const int c = plane % channels;
    const float sc = w[c] * rsqrtf(var[c] + eps);
    const float sh = b[c] - mean[c] * sc;
    const float* xp = x + (long long)plane * hw;
    const float* rp = r + (long long)plane * hw;
    float s = 0.f;
    for (int i = threadIdx.x; i < hw; i += blockDim.x) s += fmaxf(fmaf(xp[i], sc, sh) + rp[i], 0.f);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    __shared__ float part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (blockDim.x + 31) / 32 ? part[lane] : 0.f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) y[plane] = s / hw;
    }
}
"""

_kernel = cp.RawKernel(_SRC, "bn_add_relu_pool", options=("-std=c++17",))
_THREADS = 256


class ModelNew(nn.Module):
    def __init__(self, running_mean, running_var, weight, bias):
        super().__init__()
        for name, t in (("mean", running_mean), ("var", running_var), ("weight", weight), ("bias", bias)):
            self.register_buffer(name, t.detach().clone().float().contiguous())

    def forward(self, x, residual):
        x, residual = x.contiguous(), residual.contiguous()
        n, c = x.shape[0], x.shape[1]
        hw = x.numel() // (n * c)
        y = torch.empty((n, c, 1, 1), device=x.device, dtype=x.dtype)
        with cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
            _kernel((n * c,), (_THREADS,),
                    (cp.from_dlpack(x.detach()), cp.from_dlpack(residual.detach()), cp.from_dlpack(self.mean),
                     cp.from_dlpack(self.var), cp.from_dlpack(self.weight), cp.from_dlpack(self.bias),
                     cp.from_dlpack(y), cp.int32(hw), cp.int32(c), cp.float32(1e-5)))
        return y
