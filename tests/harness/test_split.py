"""An LLM-style CUDA source split into light kernels and main.cpp wrappers
(kernelsmith/harness/build/split.py, issue 15): what moves, what is refused, the fallback
to the source as it came, and (with nvcc) a real build and the same device code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from kernelsmith.harness.build import inline, layout, pch, split
from tests.harness.test_binding import Builds
from tests.harness.test_build import record

nvcc = pytest.mark.skipif(not (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")),
                          reason="nvcc not installed")

# The way LLMs write it: torch's header, kernels, and the torch wrapper that launches them.
LLM = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
constexpr int THREADS = 256;  // used on both sides

__device__ __forceinline__ float leaky(float v) { return v > 0.f ? v : 0.01f * v; }

__global__ void __launch_bounds__(256) leaky_kernel(const float* __restrict__ x, float* __restrict__ y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = leaky(x[i]);
}

__global__ void scale_kernel(float* y, long long n, float s) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] *= s;
}

int grid_for(long long n) { return (int)CEIL_DIV(n, (long long)THREADS); }

torch::Tensor leaky_scale(torch::Tensor x, double s, int64_t stream) {
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous; got strides ", x.strides());
    auto y = torch::empty_like(x);
    const long long n = x.numel();
    cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
    leaky_kernel<<<grid_for(n), THREADS, 0, st>>>(x.data_ptr<float>(), y.data_ptr<float>(), n);
    scale_kernel<<<dim3(grid_for(n)), dim3(THREADS)>>>(y.data_ptr<float>(), n, (float)s);
    return y;
}
"""
CPP = "torch::Tensor leaky_scale(torch::Tensor x, double s, int64_t stream);"


def llm_record(cuda: str = LLM) -> dict:
    return {**record(cuda=cuda, cpp=CPP), "functions": ["leaky_scale"]}


def test_the_torch_part_moves_and_the_launches_become_calls():
    moved, kernels = split.split([LLM])
    assert not layout._TORCH.search(kernels)  # light: no torch header needed
    assert "__global__ void __launch_bounds__(256) leaky_kernel" in kernels and "leaky(float v)" in kernels
    assert "ks_launch_leaky_kernel(grid_for(n), THREADS, 0, st, x.data_ptr<float>(), y.data_ptr<float>(), n)" in moved
    assert "ks_launch_scale_kernel(dim3(grid_for(n)), dim3(THREADS), 0, 0, y.data_ptr<float>(), n, (float)s)" in moved
    assert "<<<" not in moved and "__global__" not in moved and "threadIdx" not in moved
    # the launchers take the kernels' own parameter types, so arguments convert as at the launch
    assert ("void ks_launch_scale_kernel(dim3 ks_grid, dim3 ks_block, size_t ks_smem, cudaStream_t ks_stream, "
            "float* ks_a0, long long ks_a1, float ks_a2) { scale_kernel<<<ks_grid, ks_block, ks_smem, ks_stream>>>"
            "(ks_a0, ks_a1, ks_a2); }") in kernels
    assert "void ks_launch_scale_kernel(dim3 ks_grid" in moved  # its declaration
    # stateless things on both sides; a plain host function's prototype for the wrapper
    for both in ("#define CEIL_DIV(a, b)", "constexpr int THREADS = 256;"):
        assert both in moved and both in kernels
    assert "int grid_for(long long n);" in moved and "int grid_for(long long n) {" in kernels
    assert "#include <torch/extension.h>" in moved and "torch/extension.h" not in kernels
    assert moved.index("void ks_launch_leaky_kernel") < moved.index("torch::Tensor leaky_scale")
    assert '"x must be contiguous; got strides "' in moved  # strings untouched


@pytest.mark.parametrize("change", [
    ("leaky_kernel<<<", "leaky_kernel<float><<<"),  # a template launch
    ("#include <cuda_runtime.h>", "#include <cuda_runtime.h>\n#ifdef X\n#endif"),  # a conditional
    ("constexpr int THREADS", "namespace k { int z; }\nconstexpr int THREADS"),  # a namespace block
    ("float* y, long long n, float s)", "float* y, long long n, float s, torch::Half h)"),  # device code names torch
    ("int grid_for", 'const char* k = R"(x)";\nint grid_for'),  # a raw string
    ("__global__ void scale_kernel(float* y,", "__global__ void scale_kernel(float y[],"),  # not a plain parameter
    ("scale_kernel<<<", "other_kernel<<<"),  # a kernel defined elsewhere
    ("torch::Tensor leaky_scale", "template <int K> torch::Tensor leaky_scale"),  # a template wrapper
    ("int grid_for", "__global__ void scale_kernel(float* y, long long n, int s) {}\nint grid_for"),  # an overload
])
def test_what_is_not_plainly_safe_is_not_split(change):
    assert split.split([LLM.replace(*change)]) is None


def test_macros_of_torch_names_go_with_the_wrappers():
    checks = ('#define CHECK_CUDA(x) TORCH_CHECK(x.is_cuda(), #x " must be a CUDA tensor")\n'
              "#define CHECK_INPUT(x) CHECK_CUDA(x); TORCH_CHECK(x.is_contiguous(), #x \" must be contiguous\")\n")
    src = LLM.replace("constexpr int THREADS", checks + "constexpr int THREADS").replace(
        "    auto y = torch::empty_like(x);", "    CHECK_INPUT(x);\n    auto y = torch::empty_like(x);")
    moved, kernels = split.split([src])
    assert "#define CHECK_CUDA(x)" in moved and "#define CHECK_INPUT(x)" in moved and "CHECK_INPUT(x);" in moved
    assert "CHECK_" not in kernels and not layout._TORCH.search(kernels)


def test_a_source_that_launches_nothing_from_torch_code_is_not_split():
    assert split.split([LLM.split("torch::Tensor leaky_scale")[0]]) is None


def test_the_split_is_tried_first_only_with_the_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "0")
    off = Builds({})
    inline.build_inline(off, llm_record(), str(tmp_path / "off"))
    assert [c[0] for c in off.calls] == ["pch"]
    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "1")
    b = Builds({})
    assert inline.build_inline(b, llm_record(), str(tmp_path / "t")) == ["module from", "split"]
    kw = b.calls[0][1]
    assert kw["cuda_sources"][:2] == inline.CUDA_PRELUDE and "torch" not in "".join(kw["cuda_sources"])
    assert kw["cpp_sources"][-1].startswith("// kernelsmith: the torch part") and kw["no_implicit_headers"]
    marker = json.loads((tmp_path / "t" / inline.MARKER).read_text())
    assert marker["layout"] == "split" and not marker["fell_back"]
    again = Builds({})  # the GPU stage: the very same call, whatever its environment says
    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "0")
    inline.build_inline(again, llm_record(), str(tmp_path / "t"))
    assert [c[0] for c in again.calls] == ["split"] and again.calls[0][1] == kw


@pytest.mark.parametrize("error", ["main.cpp:40:5: error: 'grid_helper' was not declared in this scope",
                                   "cuda.cu(12): error: expected a \";\"",
                                   "ImportError: ext.so: undefined symbol: _Z9grid_forx"])
def test_a_split_that_fails_anywhere_is_built_as_it_came(error, tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "1")
    b = Builds({"split": error})
    log = inline.BuildLog()
    assert inline.build_inline(b, llm_record(), str(tmp_path / "t"), log=log) == ["module from", "pch"]
    assert [c[0] for c in b.calls] == ["split", "pch"]
    assert log.calls[0]["layout"] == "pch" and log.calls[0]["fell_back"]
    assert not (tmp_path / "t" / "split").exists()


def test_a_light_source_is_not_split(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "1")
    b = Builds({})
    inline.build_inline(b, record(), str(tmp_path / "t"))
    assert [c[0] for c in b.calls] == ["light"]


# -- real compiles ------------------------------------------------------------------------------
@nvcc
@pytest.mark.slow
def test_a_split_source_builds_and_its_kernels_are_the_same(tmp_path, monkeypatch):
    """Through the compile-only builder (torch's own flags, main.cpp and cuda.cu as
    load_inline writes them): the split builds; its cuda.cu's PTX equals that of the source
    as it came with load_inline's torch prelude (less the one-byte globals torch defines)."""
    from kernelsmith.harness.compile import _nvcc, nvcc_builder

    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "1")
    log = inline.BuildLog()
    inline.build_inline(nvcc_builder("9.0", 600), llm_record(), str(tmp_path / "t"), log=log)
    assert log.calls[0]["layout"] == "split" and not log.calls[0]["fell_back"], log.calls
    assert (tmp_path / "t" / "split" / "main.o").stat().st_size > 0

    _, _, flags = pch.torch_build_flags(pch.cuda_home())
    flags = [f for f in flags if not f.startswith("-DTORCH_EXTENSION_NAME")]

    def ptx(source: str, tag: str) -> list[str]:
        src, out = tmp_path / f"{tag}.cu", tmp_path / f"{tag}.ptx"
        src.write_text(source)
        proc = subprocess.run([_nvcc(), *flags, "-arch=sm_90", "-ptx", str(src), "-o", str(out)],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [ln for ln in out.read_text().splitlines()
                if not ln.startswith("//") and not ln.startswith(".global .align 1 .b8 _ZN")]

    kernels = (tmp_path / "t" / "split" / "cuda.cu").read_text()
    as_written = ptx("\n".join(inline.TORCH_CUDA_PRELUDE) + "\n" + LLM, "as_written")
    mine = ptx(kernels, "split")
    assert any(".entry" in ln for ln in mine)
    assert mine == as_written
