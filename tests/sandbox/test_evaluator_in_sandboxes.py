"""The evaluator's compile stage through both sandboxes: candidate files, build
directories and the cache live in the evaluator's cache dir, which the Docker sandbox
mounts at the same path; nvcc runs inside the sandbox. Inline candidates build the fast
way there too (issue 15)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.results import ErrorClass
from kernelsmith.task import Task
from tests.sandbox.conftest import make_sandbox

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tasks" / "level1" / "005_relu.py"
GOOD = (ROOT / "tests" / "fixtures" / "solutions" / "level1_005_relu" / "correct_cupy.py").read_text()
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


@pytest.mark.parametrize("kind", ["process", "docker"])
def test_compile_stage_in_sandbox(kind, shared_dir):
    cache = Path(tempfile.mkdtemp(prefix=f"ks-ev-{kind}-", dir="/tmp"))
    os.chmod(cache, 0o755)
    try:
        sandbox = make_sandbox(kind, shared_dir)
        with Evaluator(EvalConfig(cache_dir=cache, arch="9.0", compile_workers=1), sandbox=sandbox) as ev:
            task = Task.load(TASK)
            ok = ev.compile(task, GOOD)
            assert ok.ok and ok.backend == "cupy", (ok.message, ok.log)
            assert ev.compile(task, GOOD).cached  # the marker the sandboxed job wrote is visible here
            broken = ev.compile(task, GOOD.replace("__global__", "__global__ int nope = ;", 1))
            assert not broken.ok and broken.error is ErrorClass.COMPILE and "error" in broken.log
    finally:
        shutil.rmtree(cache, ignore_errors=True)


LIGHT = ROOT / "tests" / "fixtures" / "inline" / "level1_005_relu.py"


@pytest.fixture(scope="module")
def warm_cache():
    """One evaluator cache with the headers both bindings use already built (as a search's
    later candidates find it): the slim one (pybind11) and the operators' one."""
    from kernelsmith.evaluate.fastbuild import HeaderCache
    from kernelsmith.harness.build import pch

    cache = Path(tempfile.mkdtemp(prefix="ks-ev-warm-", dir="/tmp"))
    os.chmod(cache, 0o755)
    headers = HeaderCache(cache / "pch", variants=((pch.SLIM, ()), (pch.OPS, ())))
    headers._build_all()  # both, waiting for them
    assert all("error" not in r for r in headers.report), headers.report
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("binding", ["pybind", "ops"])
@pytest.mark.parametrize("kind", ["process", "docker"])
def test_light_inline_candidate_builds_fast_in_sandbox(kind, binding, shared_dir, warm_cache, monkeypatch):
    """The fast layout inside either sandbox: the job finds the orchestrator's header in
    the mounted cache and builds light with it; with KERNELSMITH_OPS_BINDING=1 (passed to
    the job) its functions are bound as torch operators."""
    import json

    from kernelsmith.harness.build import inline, pch

    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1" if binding == "ops" else "0")
    code = LIGHT.read_text() + f"\n# {kind} {binding}\n"  # a build of its own per case
    before = set((warm_cache / "build").glob(f"*/*/{inline.MARKER}"))
    sandbox = make_sandbox(kind, shared_dir)
    with Evaluator(EvalConfig(cache_dir=warm_cache, arch="9.0", compile_workers=1), sandbox=sandbox) as ev:
        ev.headers.variants = ()  # built by the fixture
        res = ev.compile(Task.load(TASK), code)
        assert res.ok, (res.message, res.log)
    new = set((warm_cache / "build").glob(f"*/*/{inline.MARKER}")) - before
    assert len(new) == 1, new  # written by the job, inside the sandbox
    info = json.loads(new.pop().read_text())
    header = pch.OPS if binding == "ops" else pch.SLIM
    assert info["layout"] == "light" and info["binding"] == binding and not info["fell_back"], info
    assert info["pch"] and os.path.basename(info["pch"]).endswith("-" + header), info


# ReLU the way LLMs write it: torch's header, the kernel and its torch wrapper in one CUDA source.
LLM_STYLE = '''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""
#include <torch/extension.h>
__global__ void relu_kernel(const float* __restrict__ x, float* __restrict__ y, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = fmaxf(x[i], 0.f);
}
torch::Tensor relu_forward(torch::Tensor x, int64_t stream) {
    TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
    auto y = torch::empty_like(x);
    const long long n = x.numel();
    relu_kernel<<<(n + 255) / 256, 256, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), n);
    return y;
}
"""
_ext = load_inline(name="ks_llm_relu", cpp_sources="torch::Tensor relu_forward(torch::Tensor x, int64_t stream);",
                   cuda_sources=cuda_source, functions=["relu_forward"])


class ModelNew(nn.Module):
    def forward(self, x):
        return _ext.relu_forward(x, torch.cuda.current_stream().cuda_stream)
'''


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["process", "docker"])
def test_llm_style_candidate_is_split_in_sandbox(kind, shared_dir, warm_cache, monkeypatch):
    """With KERNELSMITH_SPLIT_SOURCES=1 (passed to the job), an LLM-style CUDA source is
    split inside either sandbox: kernels light, the wrapper in main.cpp with the header."""
    import json

    from kernelsmith.harness.build import inline, pch

    monkeypatch.setenv("KERNELSMITH_SPLIT_SOURCES", "1")
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "0")
    code = LLM_STYLE + f"\n# {kind}\n"
    before = set((warm_cache / "build").glob(f"*/*/{inline.MARKER}"))
    with Evaluator(EvalConfig(cache_dir=warm_cache, arch="9.0", compile_workers=1),
                   sandbox=make_sandbox(kind, shared_dir)) as ev:
        ev.headers.variants = ()
        res = ev.compile(Task.load(TASK), code)
        assert res.ok, (res.message, res.log)
    new = set((warm_cache / "build").glob(f"*/*/{inline.MARKER}")) - before
    assert len(new) == 1, new
    info = json.loads(new.pop().read_text())
    assert info["layout"] == "split" and not info["fell_back"], info
    assert info["pch"] and os.path.basename(info["pch"]).endswith("-" + pch.SLIM), info
