"""Compile-only stage on a machine with no GPU: real nvcc, through the process sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.results import ErrorClass
from kernelsmith.sandbox.local import LocalSandbox
from kernelsmith.task import Task

ROOT = Path(__file__).resolve().parents[1]
SOL = ROOT / "tests" / "fixtures" / "solutions" / "level1_001_leaky_relu_scale"
TASK = ROOT / "tasks" / "level1" / "001_leaky_relu_scale.py"
nvcc = pytest.mark.skipif(not (os.path.exists("/usr/local/cuda/bin/nvcc") or __import__("shutil").which("nvcc")),
                          reason="nvcc not installed")


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with Evaluator(EvalConfig(cache_dir=cache, arch="9.0", compile_workers=2), sandbox=LocalSandbox()) as e:
        yield e


@nvcc
def test_cupy_candidate_compiles_then_hits_cache(ev):
    task, code = Task.load(TASK), (SOL / "correct_cupy.py").read_text()
    first = ev.compile(task, code)
    assert first.ok, first.log
    assert first.backend == "cupy" and not first.cached
    second = ev.compile(task, code)
    assert second.ok and second.cached and second.seconds == 0.0


@nvcc
def test_cupy_compile_error_is_reported_with_log(ev):
    task = Task.load(TASK)
    code = (SOL / "correct_cupy.py").read_text()
    broken = code.replace("__global__", "__global__ int oops = ;", 1)
    assert broken != code
    before = set((ev.root / "build").iterdir())
    res = ev.compile(task, broken)
    assert not res.ok and res.error is ErrorClass.COMPILE
    assert "error" in res.log and len(res.log) <= 4100
    # a failed build leaves no directory behind that a later attempt could trip over
    assert set((ev.root / "build").iterdir()) == before


@nvcc
def test_compile_timeout_kills_nvcc_and_cleans_up(tmp_path):
    cfg = EvalConfig(cache_dir=tmp_path, arch="9.0", compile_timeout=3)
    code = (SOL / "correct_cupy.py").read_text().replace(
        "__global__", "template<int N> struct F { static const int v = F<N-1>::v + F<N-2>::v; };\n"
        "template<> struct F<0> { static const int v = 0; }; template<> struct F<1> { static const int v = 1; };\n"
        "__device__ int fib = F<100000>::v;\n__global__", 1)
    with Evaluator(cfg, sandbox=LocalSandbox()) as e:
        res = e.compile(Task.load(TASK), code)
    assert not res.ok
    assert res.error in (ErrorClass.COMPILE_TIMEOUT, ErrorClass.COMPILE)
    assert list((tmp_path / "build").iterdir()) == []


@nvcc
@pytest.mark.slow
def test_inline_candidate_compiles_with_nvcc(ev):
    """load_inline sources through nvcc with torch's headers (about a minute on 2 cores).

    Written here rather than taken from the fixtures: those include ATen/cuda/CUDAContext.h,
    which needs cusparse.h, a header this CI machine's CUDA toolkit does not ship."""
    res = ev.compile(Task.load(TASK), INLINE)
    assert res.ok, res.log
    assert res.backend == "load_inline"
    broken = ev.compile(Task.load(TASK), INLINE.replace("o[i] = v", "o[i] = undefined_name"))
    assert not broken.ok and "undefined_name" in broken.log


INLINE = '''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <torch/extension.h>
__global__ void leaky_scale(const float* x, float* o, float s, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) { float v = x[i] > 0.f ? x[i] : 0.01f * x[i]; o[i] = v * s; }
}
torch::Tensor run(torch::Tensor x, double s) {
    auto o = torch::empty_like(x);
    long n = x.numel();
    leaky_scale<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), o.data_ptr<float>(), (float)s, n);
    return o;
}
"""
ext = load_inline(name="leaky_scale_ext", cpp_sources="torch::Tensor run(torch::Tensor x, double s);",
                  cuda_sources=CUDA, functions=["run"])


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return ext.run(x.contiguous(), self.scale)
'''


def test_one_build_per_key_when_asked_twice_at_once(tmp_path):
    """The same code twice in a batch (or evaluate() during a background precompile): the
    second request waits for the first build instead of deleting it mid-build."""
    import threading
    import time as _time

    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.results import CompileResult

    ev = Evaluator(EvalConfig(cache_dir=tmp_path, arch="9.0"))
    calls = []

    def slow_build(cand, build):
        calls.append(build)
        _time.sleep(0.5)
        return CompileResult(ok=True, backend="cupy", seconds=0.5)

    ev._compile_now = slow_build
    build = tmp_path / "build" / "k1"
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(ev._compile(tmp_path / "c.py", build))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 4 and all(r.ok for r in out)
    assert sorted(r.cached for r in out) == [False, True, True, True]
    assert not ev._inflight  # nothing left behind for the next request
    ev.close()
