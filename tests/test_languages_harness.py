"""Triton, Numba and PyCUDA candidates on the CPU: the static screen lets their kernels
count as the candidate's own and still rejects framework fallbacks; the loader finds
their kernels and the provenance check recognises them by the names the profiler lists."""

import types
from pathlib import Path

import pytest

from kernelsmith.evaluate import static
from kernelsmith.harness import provenance
from kernelsmith.harness.loader import Capture, kernel_kind

ROOT = Path(__file__).resolve().parents[1]
AXPY = ROOT / "tests" / "fixtures" / "languages"
TASK = (ROOT / "tasks" / "hpc" / "level1" / "001_axpy.py").read_text()


@pytest.mark.parametrize("name", ["axpy_triton_correct.py", "axpy_numba_correct.py", "axpy_pycuda_correct.py",
                                  "axpy_triton_wrong.py", "axpy_numba_wrong.py"])
def test_each_language_fixture_passes_the_screen(name):
    res = static.screen((AXPY / name).read_text(), TASK)
    assert res.ok, res.message


def test_a_triton_candidate_calling_a_library_op_is_rejected():
    """The same rule as for CUDA C++: a library op doing the work (elementwise glue such as
    torch.add is a warning statically; the profiled calls decide at runtime)."""
    code = (AXPY / "axpy_triton_correct.py").read_text().replace("        return out", "        return torch.tanh(out) + y")
    res = static.screen(code, TASK)
    assert not res.ok and "torch" in res.message, res.message


def test_triton_imported_without_a_kernel_is_no_kernel():
    code = (AXPY / "axpy_triton_correct.py").read_text().replace("@triton.jit\n", "")
    res = static.screen(code, TASK)
    assert not res.ok and "no-kernel" in res.message, res.message


def _fake(module: str, **attrs):
    cls = type("K", (), {"__module__": module})
    obj = cls()
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def test_loader_finds_triton_and_numba_kernels():
    def axpy_kernel():
        pass

    def numba_kernel():
        pass

    jit = _fake("triton.runtime.jit", fn=axpy_kernel)
    tuned = _fake("triton.runtime.autotuner", fn=jit)  # @triton.autotune over @triton.jit
    nb = _fake("numba.cuda.dispatcher", py_func=numba_kernel)
    assert kernel_kind(tuned) == ("triton", "axpy_kernel")
    assert kernel_kind(nb) == ("numba", "numba_kernel")
    assert kernel_kind(axpy_kernel) == ("", "")
    mod = types.ModuleType("ks_candidate")
    mod.a, mod.b = tuned, nb
    mod.ModelNew = type("ModelNew", (), {"__module__": "ks_candidate", "k": jit})
    cap = Capture()
    cap.scan(mod)
    assert cap.triton == ["axpy_kernel"] and cap.numba == ["numba_kernel"] and cap.backend == "triton+numba"
    assert provenance.kernel_names(cap) == {"axpy_kernel", "numba_kernel"}


@pytest.mark.parametrize("profiled,own", [
    ("cudapy::ks_candidate::axpy_kernel$241(Array<float, 1, C, mutable, aligned>, float)", True),  # Numba
    # numba-cuda 0.2x on an H200 (2026-12-04): ABI tags between the name and its arguments
    ("ks_candidate::axpy_kernel[abi:v1][abi:cw51cXTLSUwv1sDUaKthqaNgoDY](Array<float, 1, C, mutable, aligned>)", True),
    ("ks_candidate::axpy_kernel_v2[abi:v1][abi:cw51cXTLSUwv1sDUaKthqaNgoDY](Array<float, 1, C, mutable>)", False),
    ("axpy_kernel", True),  # Triton: the function's name
    ("void at::native::vectorized_elementwise_kernel<4, at::native::AddFunctor<float>>(int, ...)", False),
])
def test_profiler_names_of_python_kernels_are_recognised(profiled, own):
    assert provenance._is_own(profiled, {"axpy_kernel"}) is own


def test_the_profiler_releases_cupti_when_it_ends(monkeypatch):
    """Kineto keeps CUPTI attached after a session unless TEARDOWN_CUPTI=1: kernels timed
    after a profiled call would carry its instrumentation (the H200's CG reference read
    1.4-1.9 ms against 0.80 ms before). The harness sets it, over a candidate's value."""
    import os

    monkeypatch.setenv("TEARDOWN_CUPTI", "0")
    provenance.profiler()
    assert os.environ["TEARDOWN_CUPTI"] == "1"
