"""Functions of a fast build bound as torch operators (harness/build/binding.py, issue 15):
which signatures qualify, the rewritten call, the order of attempts and their fallbacks,
and a real C++ build on this machine's torch called through the module it returns."""

from __future__ import annotations

import json

import pytest

from kernelsmith.harness.build import binding, inline, layout, pch
from tests.harness.test_build import KERNEL, WRAPPER, FakeBuild, record

LIGHT_ELU = r"""
#include <cuda_runtime.h>
void elu_launch(const float* x, float* y, float p, long long n, cudaStream_t stream);
torch::Tensor elu_forward(torch::Tensor x, double p, int64_t stream) {
    x = x.contiguous();
    auto y = torch::empty_like(x);
    elu_launch(x.data_ptr<float>(), y.data_ptr<float>(), (float)p, x.numel(), reinterpret_cast<cudaStream_t>(stream));
    return y;
}
"""


def rec(cpp, functions, **kw) -> dict:
    return dict(name="ext", cpp_sources=cpp, cuda_sources=KERNEL, functions=functions, **kw)


# -- which signatures ---------------------------------------------------------------------------
def test_signatures_the_dispatcher_takes_as_written_qualify():
    assert binding.bindable(record())  # twice(torch::Tensor, int64_t)
    assert binding.bindable(rec(LIGHT_ELU, ["elu_forward"]))
    assert binding.bindable(rec(LIGHT_ELU, {"elu_forward": "the docstring"}))
    assert binding.bindable(rec("at::Tensor f(const at::Tensor& a, const torch::Tensor &b, bool flip) { return a; }\n"
                                "void g(torch::Tensor out) {}\n"
                                "std::vector<torch::Tensor> h(torch::Tensor x) { return {x}; }\n"
                                "std::tuple<torch::Tensor, torch::Tensor> t(torch::Tensor x) { return {x, x}; }\n",
                                ["f", "g", "h", "t"]))
    # declared in the C++ source, defined in the CUDA one (the pch layout's usual split)
    assert binding.bindable(dict(name="e", cpp_sources="torch::Tensor f(torch::Tensor x, double s);",
                                 cuda_sources=KERNEL + "torch::Tensor f(torch::Tensor x, double s) { return x; }",
                                 functions=["f"]))


@pytest.mark.parametrize("cpp,functions", [
    ("torch::Tensor f(torch::Tensor x, float s) { return x; }", ["f"]),  # pybind11 converts; the schema refuses
    ("torch::Tensor f(torch::Tensor x, int n) { return x; }", ["f"]),
    ("torch::Tensor f(torch::Tensor& x) { return x; }", ["f"]),  # a non-const reference: an alias annotation
    ("float f(torch::Tensor x) { return 1.f; }", ["f"]),
    ("torch::Tensor f(torch::Tensor x) { return x; }\ntorch::Tensor f(torch::Tensor x, double s) { return x; }", ["f"]),
    ("torch::Tensor f(std::vector<int64_t> shape) { return {}; }", ["f"]),
    ("torch::Tensor f(torch::Tensor x) { return x; }", ["g"]),  # not found: pybind11 reports it
    ("torch::Tensor f(torch::Tensor x) { return x; }", None),
    ("torch::Tensor f(torch::Tensor x) { return x; }", ["f", "f"]),
    ("// torch::Tensor f(torch::Tensor x) { return x; }\n", ["f"]),  # only in a comment
])
def test_other_signatures_keep_pybind11(cpp, functions):
    assert not binding.bindable(rec(cpp, functions))


def test_a_call_that_is_no_python_module_is_left_alone():
    assert not binding.bindable(record(is_python_module=False))


# -- the rewritten call -----------------------------------------------------------------------
def test_rewrite_registers_the_functions_as_operators():
    kw = inline.rewrite(record(), layout.LIGHT, "/pch/ops", binding.OPS)
    assert kw["functions"] is None and kw["is_python_module"] is False and kw["no_implicit_headers"]
    main = "\n".join(kw["cpp_sources"])
    assert "#include <torch/library.h>" in main and "pybind" not in main and '"/pch/ops/ks_torch.h"' in main
    ns = binding.namespace(record(), [WRAPPER], kw["cuda_sources"])
    assert f"TORCH_LIBRARY({ns}, m)" in main and 'm.def("twice", &twice);' in main
    assert ns.startswith("ks_ext_") and ns.isidentifier()
    other = inline.rewrite(record(cpp=WRAPPER + "\n// changed"), layout.LIGHT, None, binding.OPS)
    assert f"TORCH_LIBRARY({ns}," not in "\n".join(other["cpp_sources"])  # another build, another namespace
    assert inline.rewrite(record(), layout.LIGHT, "/pch/slim") == inline.rewrite(record(), layout.LIGHT, "/pch/slim",
                                                                                 binding.PYBIND)
    assert inline.rewrite(record(), layout.HEAVY, None, binding.OPS) == record()


# -- the order of attempts --------------------------------------------------------------------
@pytest.fixture
def ops_header(tmp_path, monkeypatch):
    """A pch root where the operator header counts as built, and the binding switched on."""
    root = tmp_path / "pch"
    d = pch.directory(str(root), kind=pch.OPS)
    (tmp_path / "pch").mkdir()
    import os

    os.makedirs(d)
    open(os.path.join(d, pch.HEADER + ".gch"), "w").close()
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1")
    return str(root), d


class Builds(FakeBuild):
    """FakeBuild keyed by the directory's name (light-ops, light, heavy); what it returns
    is a stand-in (not a library's path, which binding.module would load)."""

    def __call__(self, kw, where):
        import os

        name = os.path.basename(where)
        self.calls.append((name, kw))
        if name in self.fail:
            raise RuntimeError(f"Error building extension 'ext':\n{self.fail[name]}")
        return ["module from", name]


def test_operators_first_where_the_header_is_ready_and_the_switch_on(ops_header, tmp_path, monkeypatch):
    root, d = ops_header
    b = Builds({})
    assert inline.build_inline(b, record(), str(tmp_path / "t"), pch_root=root) == ["module from", "light-ops"]
    marker = json.loads((tmp_path / "t" / inline.MARKER).read_text())
    assert marker["binding"] == "ops" and marker["pch"] == d and marker["layout"] == "light"
    again = Builds({})  # the GPU stage makes the very same call
    inline.build_inline(again, record(), str(tmp_path / "t"))
    assert [c[0] for c in again.calls] == ["light-ops"] and again.calls[0][1] == b.calls[0][1]
    off = Builds({})
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "0")
    inline.build_inline(off, record(), str(tmp_path / "off"), pch_root=root)
    assert [c[0] for c in off.calls] == ["light"]
    not_bindable = Builds({})
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1")
    inline.build_inline(not_bindable, rec("torch::Tensor twice(torch::Tensor x, float s) { return x; }", ["twice"]),
                        str(tmp_path / "nb"), pch_root=root)
    assert [c[0] for c in not_bindable.calls] == ["light"]


def test_operators_without_their_header_while_it_is_not_built(tmp_path, monkeypatch):
    # torch/types.h + torch/library.h parse faster than the pybind11 glue: no header is no
    # reason to fall back to pybind11; main.cpp then starts with the plain includes.
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1")
    b = Builds({})
    assert inline.build_inline(b, record(), str(tmp_path / "t"), pch_root=str(tmp_path / "empty")) \
        == ["module from", "light-ops"]
    marker = json.loads((tmp_path / "t" / inline.MARKER).read_text())
    assert marker["binding"] == "ops" and marker["pch"] is None
    main = b.calls[0][1]["cpp_sources"]
    assert main[0] == "\n".join(pch.INCLUDES[pch.OPS]) and "__has_include" not in main[0]


def test_an_operator_build_failing_in_main_cpp_is_built_with_pybind11(ops_header, tmp_path):
    root, _ = ops_header
    b = Builds({"light-ops": "main.cpp:12:3: error: static assertion failed: You tried to register a kernel"})
    log = inline.BuildLog()
    assert inline.build_inline(b, record(), str(tmp_path / "t"), pch_root=root, log=log) == ["module from", "light"]
    assert [c[0] for c in b.calls] == ["light-ops", "light"] and b.calls[1][1]["functions"] == ["twice"]
    assert not (tmp_path / "t" / "light-ops").exists()
    info = json.loads((tmp_path / "t" / inline.MARKER).read_text())
    assert info["binding"] == "pybind" and info["fell_back"] and log.calls[0]["binding"] == "pybind"


def test_an_operator_build_failing_in_cuda_cu_goes_as_pybind11_would(ops_header, tmp_path):
    root, _ = ops_header
    missing = Builds({"light-ops": 'cuda.cu(9): error: namespace "std" has no member "vector"'})
    assert inline.build_inline(missing, record(), str(tmp_path / "a"), pch_root=root) == ["module from", "heavy"]
    assert [c[0] for c in missing.calls] == ["light-ops", "heavy"]  # the header a light cuda.cu lacks
    own = Builds({"light-ops": 'cuda.cu(4): error: expected a ";"'})
    with pytest.raises(RuntimeError, match='expected a ";"'):
        inline.build_inline(own, record(), str(tmp_path / "b"), pch_root=root)
    assert [c[0] for c in own.calls] == ["light-ops"]  # the candidate's own error, once


def test_the_module_holds_the_operators_under_their_names():
    import torch

    assert binding.module(["a stand-in"], "ns", ["f"], "ext") == ["a stand-in"]  # a compile-only builder's
    mod = binding.module("/x/ext.so", "aten", ["relu", "add"], "ext")
    assert mod.__name__ == "ext" and mod.relu is torch.ops.aten.relu and mod.__file__ == "/x/ext.so"


def test_jobs_see_the_switch():
    from kernelsmith.sandbox.base import PASSTHROUGH

    assert "KERNELSMITH_OPS_BINDING" in PASSTHROUGH


# -- a real build --------------------------------------------------------------------------------
CPU_WRAPPER = r"""
torch::Tensor scale_add(const torch::Tensor& x, torch::Tensor y, double a, int64_t k, bool neg) {
    TORCH_CHECK(x.sizes() == y.sizes(), "scale_add: sizes differ");
    auto out = x * a + y * static_cast<double>(k);
    return neg ? -out : out;
}
std::vector<torch::Tensor> plus_minus(torch::Tensor x) { return {x + 1, x - 1}; }
"""


@pytest.fixture(scope="module")
def built_ops_header(tmp_path_factory):
    root = tmp_path_factory.mktemp("pch")
    return root, pch.build(str(root), kind=pch.OPS)


@pytest.mark.slow
def test_a_real_build_calls_the_operators_like_pybind11_would(built_ops_header, tmp_path, monkeypatch):
    """The operator header built, a C++ extension through torch's load_inline with its
    functions registered as operators, called with the arguments pybind11 takes (an int
    for a double too); its errors are torch's; built again, the same module."""
    import torch
    import torch.utils.cpp_extension as cpp

    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1")
    root, built = built_ops_header
    assert built["built"] and pch.ready(str(root), kind=pch.OPS) == built["dir"]
    r = dict(name="ks_test_ops", cpp_sources=CPU_WRAPPER, functions=["scale_add", "plus_minus"], verbose=False)

    def real(kw, where):
        return cpp.load_inline(**kw, build_directory=where)

    log = inline.BuildLog()
    mod = inline.build_inline(real, r, str(tmp_path / "b"), pch_root=str(root), log=log)
    assert log.calls[0]["binding"] == "ops" and log.calls[0]["layout"] == "pch"
    torch.manual_seed(0)
    x, y = torch.randn(64), torch.randn(64)
    assert torch.equal(mod.scale_add(x, y, 2.0, 3, True), -(x * 2.0 + y * 3.0))
    assert torch.equal(mod.scale_add(x, y, 2, 3, False), x * 2.0 + y * 3.0)
    lo_hi = mod.plus_minus(x)
    assert torch.equal(lo_hi[0], x + 1) and torch.equal(lo_hi[1], x - 1)
    with pytest.raises(RuntimeError, match="sizes differ"):
        mod.scale_add(x, torch.randn(3), 1.0, 1, False)
    with pytest.raises(RuntimeError, match="Expected a value of type 'int'"):
        mod.scale_add(x, y, 1.0, 1.5, False)
    again = inline.build_inline(real, r, str(tmp_path / "b"), pch_root=str(root))  # the GPU stage's import
    assert torch.equal(again.scale_add(x, y, 2.0, 3, True), mod.scale_add(x, y, 2.0, 3, True))


def test_operators_that_do_not_load_are_built_with_pybind11(ops_header, tmp_path):
    """A library whose registration did not happen (here: a path, no such operators) is
    not handed to the candidate: the same layout is built with pybind11."""
    root, _ = ops_header

    def build(kw, where):
        return str(tmp_path / "ext.so") if where.endswith("-ops") else ["pybind11 module"]

    assert inline.build_inline(build, record(), str(tmp_path / "t"), pch_root=root) == ["pybind11 module"]


OPS_CANDIDATE = '''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

_ext = load_inline(name="ks_cpu_tanh", functions=["fwd"], verbose=False, cpp_sources="""
torch::Tensor fwd(const torch::Tensor& x, double scale) { return torch::tanh(x) * scale + x; }
""")


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x):
        return _ext.fwd(x, self.scale)
'''


@pytest.mark.slow
def test_a_candidate_bound_as_operators_passes_the_real_harness(built_ops_header, tmp_path, monkeypatch):
    """Through the GPU stage's own code on the CPU (tests/harness/cpu_harness.py): the
    operators' namespace, registered when the candidate loads, is no tampering, and the
    candidate's outputs are checked and timed as any other's."""
    from tests.harness import cpu_harness as ch

    root, _ = built_ops_header
    monkeypatch.setenv("KERNELSMITH_OPS_BINDING", "1")
    ch.install(monkeypatch)
    out = ch.evaluate(tmp_path, OPS_CANDIDATE, pch_root=str(root))
    assert (out["verdict"], out["error"]) == ("correct", "none"), out.get("message")
    markers = list((tmp_path / "build").glob(f"*/{inline.MARKER}"))
    assert len(markers) == 1 and json.loads(markers[0].read_text())["binding"] == "ops"
