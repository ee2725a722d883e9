"""relu(batch_norm(x) + residual), batch norm on running statistics, NCHW fp32, one pass with
float4 along H*W (a multiple of 4) (CuPy RawKernel). For the bn2+add+relu group of
small_convnet; forward(x, residual) as the task's (x0, x1)."""
import cupy as cp
import torch
import torch.nn as nn

_SRC = r"""
extern "C" __global__ void bn_add_relu4(const float4* __restrict__ x, const float4* __restrict__ r,
                                        const float* __restrict__ mean, const float* __restrict__ var,
                                        const float* __restrict__ w, const float* __restrict__ b,
                                        float4* __restrict__ y, long long n4, int hw4, int channels, float eps) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        const int c = (int)((i / hw4) % channels);
        const float sc = w[c] * rsqrtf(var[c] + eps);
        const float sh = b[c] - mean[c] * sc;
        float4 v = x[i];
        const float4 q = r[i];
        v.x = fmaxf(fmaf(v.x, sc, sh) + q.x, 0.f); v.y = fmaxf(fmaf(v.y, sc, sh) + q.y, 0.f);
        v.z = fmaxf(fmaf(v.z, sc, sh) + q.z, 0.f); v.w = fmaxf(fmaf(v.w, sc, sh) + q.w, 0.f);
        y[i] = v;
    }
}
"""

_kernel = cp.RawKernel(_SRC, "bn_add_relu4", options=("-std=c++17",))
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
        if hw % 4:
            raise ValueError("bn_add_relu4 needs H*W to be a multiple of 4")
        y = torch.empty_like(x)
        n4 = x.numel() // 4
        blocks = min((n4 + _THREADS - 1) // _THREADS, 132 * 16)
        with cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
            _kernel((blocks,), (_THREADS,),
                    (cp.from_dlpack(x.detach()), cp.from_dlpack(residual.detach()), cp.from_dlpack(self.mean),
                     cp.from_dlpack(self.var), cp.from_dlpack(self.weight), cp.from_dlpack(self.bias),
                     cp.from_dlpack(y), cp.int64(n4), cp.int32(hw // 4), cp.int32(c), cp.float32(1e-5)))
        return y
