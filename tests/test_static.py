"""Tests for the static screen (kernelsmith/evaluate/static/): no GPU, no compiler."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from kernelsmith.evaluate.static import RULES, screen
from kernelsmith.results import ErrorClass, StaticResult

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent

TASK = '''
import torch
import torch.nn as nn

BATCH = 4096
DIM = 8192
SCALE = 1.5


class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.tanh(x) * self.scale + x


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [SCALE]
'''

GOOD_CUDA = r'''
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

__global__ void tsa_kernel(const float* __restrict__ x, float* __restrict__ y, float scale, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = x[i];
        y[i] = tanhf(v) * scale + v;   // not cublas, not at::tanh: our own math
    }
}

torch::Tensor tsa(torch::Tensor x, double scale) {
    TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
    auto y = torch::empty_like(x);
    auto tmp = at::empty({1}, x.options());
    int64_t n = x.numel();
    if (n == 0) return y;
    const int threads = 256;
    int blocks = (int)std::min<int64_t>((n + threads - 1) / threads, 1 << 20);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "tsa", [&] {});
    tsa_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), (float)scale, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
'''

GOOD_INLINE = f'''
"""An honest load_inline candidate."""
import math
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

cuda_source = r"""{GOOD_CUDA}"""
cpp_source = "torch::Tensor tsa(torch::Tensor x, double scale);"

_ext = load_inline(name="tsa_ext", cpp_sources=cpp_source, cuda_sources=cuda_source,
                   functions=["tsa"], verbose=False, extra_cuda_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = float(scale)
        self.lin = nn.Linear(16, 16)          # construction in __init__ only holds weights
        self.register_buffer("w", torch.randn(4, 4).sum(dim=0))  # setup math in __init__ is fine
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.lin.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(16)
        nn.init.uniform_(self.lin.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.is_cuda and x.dim() == 2
        x = x.contiguous()
        w = self.lin.weight.detach().contiguous()
        n = x.numel() // x.size(-1) * x.shape[-1]
        return _ext.tsa(x.view(-1, x.size(-1)), self.scale).view(x.shape)
'''

GOOD_CUPY = '''
import cupy as cp
import torch
import torch.nn as nn

_SRC = r"""
extern "C" __global__ void tsa(const float* __restrict__ x, float* __restrict__ y, float scale, long long n) {
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = x[i];
        y[i] = tanhf(v) * scale + v;
    }
}
"""
_kernel = cp.RawKernel(_SRC, "tsa", options=("-std=c++17",))
_THREADS = 256


def _launch(x, y, scale):
    n = x.numel()
    blocks = max(1, min((n + _THREADS - 1) // _THREADS, 1 << 20))
    with cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
        _kernel((blocks,), (_THREADS,), (cp.from_dlpack(x), cp.from_dlpack(y), cp.float32(scale), cp.int64(n)))


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = float(scale)

    def forward(self, x):
        x = x.detach().contiguous()
        y = torch.empty_like(x)
        if x.numel() == 0 or not x.is_cuda:
            return y
        torch.cuda.current_device()
        _launch(x, y, self.scale)
        return y
'''

HEAD = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.cpp_extension import load_inline

cuda_source = r"""__global__ void k(float* y) {{ }}
{cuda}
"""
_ext = load_inline(name="e", cpp_sources="torch::Tensor run(torch::Tensor x);", cuda_sources=cuda_source,
                   functions=["run"])
{top}

class ModelNew(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
{init}
    def forward(self, x):
{body}
'''


def make(body: str = "return _ext.run(x)", top: str = "", init: str = "", cuda: str = "") -> str:
    indent = lambda s, n: "\n".join(" " * n + line for line in s.strip("\n").splitlines())
    return HEAD.format(cuda=cuda, top=top, init=indent(init, 8) if init else "", body=indent(body, 8))


def rules_of(result: StaticResult) -> set[str]:
    text = result.message + "\n" + "\n".join(result.warnings)
    return set(re.findall(r"^([a-z][a-z-]+):", text, flags=re.M))


def assert_rejects(code: str, rule_id: str, task: str | None = TASK) -> StaticResult:
    r = screen(code, task)
    assert not r.ok and r.error is ErrorClass.STATIC_RULE, (r.error, r.message)
    assert re.search(rf"^{rule_id}: .* at line \d+", r.message, flags=re.M), r.message
    return r


def assert_warns(code: str, rule_id: str, task: str | None = TASK) -> StaticResult:
    r = screen(code, task)
    assert r.ok, r.message
    assert any(w.startswith(rule_id + ":") for w in r.warnings), r.warnings
    return r


# --- correct candidates pass --------------------------------------------------------
@pytest.mark.parametrize("code", [GOOD_INLINE, GOOD_CUPY, make()], ids=["inline", "cupy", "template"])
def test_correct_candidates_pass_cleanly(code):
    r = screen(code, TASK)
    assert r.ok and r.error is ErrorClass.NONE and r.message == "", r.message
    assert r.warnings == [], r.warnings
    assert r.seconds >= 0  # recorded; its speed is not a test's business


def _fixture_pairs():
    manifest = FIXTURES / "solutions" / "manifest.json"
    if not manifest.exists():
        return []
    out = []
    for name, entry in json.loads(manifest.read_text()).items():
        for sol, verdict in entry["solutions"].items():
            if verdict == "correct":
                out.append(pytest.param(FIXTURES / "solutions" / name / sol, ROOT / entry["task"], id=f"{name}/{sol}"))
    return out


@pytest.mark.parametrize("path,task", _fixture_pairs())
def test_correct_solution_fixtures_pass(path, task):
    r = screen(path.read_text(), task.read_text() if task.exists() else None)
    assert r.ok, r.message
    assert not [w for w in r.warnings if not w.startswith("hardcoded-shape")], r.warnings


@pytest.mark.parametrize("name", ["good_inline.py", "good_cupy.py"])
def test_hostile_controls_pass(name):
    path = FIXTURES / "hostile" / name
    if not path.exists():
        pytest.skip("hostile corpus not present")
    r = screen(path.read_text(), (FIXTURES / "hostile" / "task.py").read_text())
    assert r.ok, r.message


# --- syntax / format ----------------------------------------------------------------
def test_syntax_error_reports_line():
    r = screen("import torch\n\nclass ModelNew(:\n    pass\n")
    assert not r.ok and r.error is ErrorClass.SYNTAX
    assert "line 3" in r.message


def test_null_bytes_are_a_syntax_error():
    assert screen("x = 1\x00").error is ErrorClass.SYNTAX


def test_missing_modelnew_is_format():
    r = screen(GOOD_INLINE.replace("ModelNew", "MyModel"))
    assert not r.ok and r.error is ErrorClass.FORMAT and "ModelNew" in r.message


def test_modelnew_without_forward_is_format():
    code = GOOD_CUPY.replace("def forward(self, x):", "def fwd(self, x):")
    r = screen(code)
    assert r.error is ErrorClass.FORMAT and "forward" in r.message


def test_cheat_without_modelnew_is_static_rule():
    code = "import base64\nexec(base64.b64decode('Y2xhc3MgTW9kZWxOZXc6IHBhc3M=').decode())\n"
    r = screen(code)
    assert r.error is ErrorClass.STATIC_RULE and "dynamic-code" in r.message


# --- torch-compute ------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    "return torch.matmul(x, x)",
    "return torch.tanh(x) * self.scale + x",
    "return F.gelu(_ext.run(x))",
    "return torch.nn.functional.softmax(x, dim=-1)",
    "return _ext.run(x).sum(dim=1)",
    "return x.exp()",
    "y = _ext.run(x)\nreturn y.tanh_()",
    "return x @ x",
    "return torch.clamp(x, min=0)",
    "return torch.where(x > 0, x, 0.01 * x)",
    "return torch.ops.aten.mm(x, x)",
    "return torch.Tensor.sum(x)",
    "from torch import softmax as sm\nreturn sm(x, -1)",
    "mm = torch.mm\nreturn mm(x, x)",
    "return nn.Linear(4, 4).to(x.device)(x)",
    "return getattr(torch, 'tanh')(x)",
    "import cupy as cp\nreturn torch.from_dlpack(cp.matmul(cp.from_dlpack(x), cp.from_dlpack(x)))",
])
def test_torch_compute_in_forward_rejected(body):
    assert_rejects(make(body), "torch-compute")


@pytest.mark.parametrize("init,body", [
    ("self.lin = nn.Linear(4, 4)", "return self.lin(x)"),
    ("self.act = nn.GELU()", "return self.act(_ext.run(x))"),
    ("self.act = F.relu", "return self.act(_ext.run(x))"),
    ("self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])", "for l in self.layers:\n    x = l(x)\nreturn x"),
    ("self.seq = nn.Sequential(nn.Linear(4, 4), nn.ReLU())", "return self.seq[0].forward(x)"),
    ("self.f = torch.compile(lambda t: t * 2)", "return self.f(x)"),
])
def test_calling_torch_modules_built_in_init_rejected(init, body):
    assert_rejects(make(body, init=init), "torch-compute")


def test_torch_compute_in_helper_called_from_forward_rejected():
    top = "def _finish(y):\n    return torch.softmax(y, dim=-1)\n"
    assert_rejects(make("return _finish(_ext.run(x))", top=top), "torch-compute")


def test_message_is_actionable():
    r = assert_rejects(make("return torch.matmul(x, x)"), "torch-compute")
    line = next(l for l in r.message.splitlines() if l.startswith("torch-compute"))
    assert "`torch.matmul` at line" in line and line.count(";") >= 2 and "kernel" in line


def test_setup_code_may_use_torch_ops():
    top = ("W0 = torch.randn(8, 8)\nW1 = torch.matmul(W0, W0)  # module-level setup\n\n"
           "def _make(n):\n    return torch.softmax(torch.randn(n), 0)\n\nTABLE = _make(8)\n")
    init = "self.register_buffer('t', torch.tanh(torch.randn(4)))\nself.lin = nn.Linear(4, 4)"
    r = screen(make("return _ext.run(x.contiguous()).view(x.shape)", top=top, init=init), TASK)
    assert r.ok, r.message


def test_unused_reference_model_class_is_not_compute():
    top = ("class Model(nn.Module):\n    def forward(self, x):\n        return torch.tanh(x)\n\n"
           "def get_inputs():\n    return [torch.randn(4, 4).sum(0)]\n")
    assert screen(make(top=top), TASK).ok


# --- cublas-cudnn -------------------------------------------------------------------
@pytest.mark.parametrize("cuda", [
    "#include <cublas_v2.h>",
    "void f(cublasHandle_t h) { cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1); }",
    "torch::Tensor g(torch::Tensor a, torch::Tensor b) { return at::matmul(a, b); }",
    "torch::Tensor g(torch::Tensor a) { return torch::softmax(a, -1); }",
    "torch::Tensor g(torch::Tensor a) { return a.sum(1); }",
    "#include <cudnn.h>",
    "torch::Tensor g(torch::Tensor a, torch::Tensor w) { return torch::nn::functional::linear(a, w); }",
])
def test_library_calls_in_cuda_rejected(cuda):
    assert_rejects(make(cuda=cuda), "cublas-cudnn")


def test_cuda_comments_and_strings_are_ignored():
    cuda = '// faster than cublasSgemm and at::matmul\n/* cudnn */ void h() { printf("at::matmul("); }'
    assert screen(make(cuda=cuda), TASK).ok


# --- fallback -----------------------------------------------------------------------
def test_try_in_forward_rejected():
    assert_rejects(make("try:\n    return _ext.run(x)\nexcept Exception:\n    return x * 2"), "fallback")


def test_try_in_helper_and_suppress_rejected():
    top = "import contextlib\n\ndef _go(x):\n    try:\n        return _ext.run(x)\n    finally:\n        pass\n"
    assert_rejects(make("return _go(x)", top=top), "fallback")
    body = "with contextlib.suppress(RuntimeError):\n    return _ext.run(x)\nreturn x"
    assert_rejects(make(body, top="import contextlib"), "fallback")


def test_try_in_module_level_build_is_allowed():
    top = "try:\n    _ext2 = _ext\nexcept Exception:\n    raise\n"
    assert screen(make(top=top), TASK).ok


# --- reference-delegation -------------------------------------------------------------
@pytest.mark.parametrize("top,body", [
    ("from model import Model", "return Model(1.5)(x)"),
    ("", "return sys.modules['ks_ref'].Model.forward(self, x)"),
    ("import gc", "m = [o for o in gc.get_objects() if type(o).__name__ == 'Model'][0]\nreturn m(x)"),
    ("import inspect", "f = inspect.currentframe().f_back\nreturn _ext.run(x)"),
    ("", "return sys._getframe(1).f_locals['ref'](x)"),
    ("", "return [c for c in nn.Module.__subclasses__() if c.__name__ != 'ModelNew'][0](1.5)(x)"),
    ("", "return globals()['_ext'].run(x)"),
    ("import sys\nsys.path.insert(0, '/task')", "return _ext.run(x)"),
    ("from . import reference", "return _ext.run(x)"),
])
def test_reference_delegation_rejected(top, body):
    assert_rejects(make(body, top="import sys\n" + top), "reference-delegation")


def test_subclassing_model_rejected():
    code = make().replace("class ModelNew(nn.Module)", "class ModelNew(Model)")
    assert_rejects(code, "reference-delegation")


# --- streams-threads ----------------------------------------------------------------
@pytest.mark.parametrize("top,body,cuda", [
    ("import threading", "return _ext.run(x)", ""),
    ("from concurrent.futures import ThreadPoolExecutor", "return _ext.run(x)", ""),
    ("import asyncio", "return _ext.run(x)", ""),
    ("", "s = torch.cuda.Stream()\nwith torch.cuda.stream(s):\n    return _ext.run(x)", ""),
    ("import cupy as cp", "with cp.cuda.Stream(non_blocking=True):\n    return _ext.run(x)", ""),
    ("import cupy as cp", "with cp.cuda.ExternalStream(torch.cuda.default_stream().cuda_stream):\n"
     "    return _ext.run(x)", ""),
    ("import os", "os.fork()\nreturn _ext.run(x)", ""),
    # CuPy's raw stream API: a handle for cupy.cuda.driver.launchKernel, unordered with the timer's stream
    ("import cupy as cp", "h = cp.cuda.runtime.streamCreateWithFlags(1)\nreturn _ext.run(x)", ""),
    ("from cupy.cuda.runtime import streamCreate as mk", "h = mk()\nreturn _ext.run(x)", ""),
    ("import cupy as cp", "with cp.cuda.Stream.ptds:\n    return _ext.run(x)", ""),
    ("", "return _ext.run(x)", "void f() { cudaStream_t s; cudaStreamCreateWithFlags(&s, 1); }"),
    ("", "return _ext.run(x)", "void f() { CUstream s; cuStreamCreate(&s, 1); }"),  # the driver API
    ("", "return _ext.run(x)", "void f(cudaStreamAttrValue a) { a.accessPolicyWindow.num_bytes = 1; }"),
    ("", "return _ext.run(x)", "void f() { cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 1); }"),
])
def test_streams_threads_rejected(top, body, cuda):
    assert_rejects(make(body, top=top, cuda=cuda), "streams-threads")


def test_external_stream_on_current_stream_is_allowed():
    assert screen(GOOD_CUPY, TASK).ok
    body = "with torch.cuda.stream(torch.cuda.current_stream()):\n    return _ext.run(x)"
    assert screen(make(body), TASK).ok
    for ok in ("n = cp.cuda.runtime.getDeviceCount()", "cp.cuda.runtime.streamSynchronize(0)",
               "h = cp.cuda.runtime.streamLegacy",  # the legacy default stream: ordered with the timer's
               "cp.cuda.runtime.streamSynchronize(torch.cuda.current_stream().cuda_stream)"):
        assert screen(make(ok + "\nreturn _ext.run(x)", top="import cupy as cp"), TASK).ok, ok


# --- harness-tampering --------------------------------------------------------------
@pytest.mark.parametrize("top", [
    "torch.cuda.synchronize = lambda *a: None",
    "torch.backends.cuda.matmul.allow_tf32 = True",
    "torch.set_float32_matmul_precision('medium')",
    "setattr(torch.cuda.Event, 'elapsed_time', lambda s, e: 1e-3)",
    "import time\ntime.perf_counter = lambda: 0.0",
    "torch.Tensor.__sub__ = lambda a, b: a * 0",
    "import kernelsmith",
    "from kernelsmith.harness import timing",
    "ks_task = None",
    "import builtins\nbuiltins.print = lambda *a: None",
    "torch.manual_seed(0)",
    "class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):\n        return 0",
])
def test_harness_tampering_rejected(top):
    assert_rejects(make(top=top), "harness-tampering")


def test_aten_override_in_cuda_rejected():
    assert_rejects(make(cuda="TORCH_LIBRARY_IMPL(aten, CUDA, m) { }"), "harness-tampering")


# --- dynamic-code -------------------------------------------------------------------
@pytest.mark.parametrize("top,body", [
    ("", "return eval('_ext.run')(x)"),
    ("exec('y = 1')", "return _ext.run(x)"),
    ("", "return __import__('torch').tanh(x)"),
    ("import importlib", "return importlib.import_module('torch').tanh(x)"),
    ("import base64", "return _ext.run(x)"),
    ("import marshal, zlib", "return _ext.run(x)"),
    ("import ctypes", "return _ext.run(x)"),
    ("NAME = 'ta' + 'nh'", "return getattr(torch, NAME)(x)"),
    ("code = compile('1', 'f', 'eval')", "return _ext.run(x)"),
])
def test_dynamic_code_rejected(top, body):
    assert_rejects(make(body, top=top), "dynamic-code")


# --- system-access ------------------------------------------------------------------
@pytest.mark.parametrize("top,body", [
    ("import os", "k = os.environ.get('HOME')\nreturn _ext.run(x)"),
    ("import os", "os.system('nvidia-smi')\nreturn _ext.run(x)"),
    ("from os import getenv", "getenv('X')\nreturn _ext.run(x)"),
    ("import subprocess", "return _ext.run(x)"),
    ("", "open('/tmp/out', 'w').write('x')\nreturn _ext.run(x)"),
    ("", "data = open('task.py').read()\nreturn _ext.run(x)"),
    ("import sys", "sys.exit(0)"),
    ("", "exit()"),
    ("", "raise SystemExit(0)"),
    ("import shutil", "return _ext.run(x)"),
    ("import socket", "return _ext.run(x)"),
    ("import urllib.request", "return _ext.run(x)"),
    ("import os", "os._exit(0)"),
    ("CMD = 'pip install triton'", "return _ext.run(x)"),
    ("import pathlib", "pathlib.Path('/tmp/x').write_text('1')\nreturn _ext.run(x)"),
])
def test_system_access_rejected(top, body):
    assert_rejects(make(body, top=top), "system-access")


def test_system_calls_in_cuda_rejected():
    assert_rejects(make(cuda='void f() { system("ls"); FILE* f = fopen("/x", "w"); }'), "system-access")


@pytest.mark.parametrize("cuda", ["void f() { std::exit(0); }", "void f() { _exit(0); }", "void f() { abort(); }",
                                  "void f() { raise(SIGSEGV); }", "void f() { kill(getpid(), 9); }",
                                  "void f() { std::terminate(); }", "void f() { quick_exit(0); }"])
def test_process_exits_in_cuda_rejected(cuda):
    """A job that ends itself from C++ returns no result (hostile 83_cpp_exit)."""
    assert_rejects(make(cuda=cuda), "system-access")


def test_exit_like_names_in_cuda_pass():
    cuda = ("__global__ void g(float* y, int exit_code) { if (exit_code) __trap(); y[0] = 1.f; }\n"
            "__device__ float raised(float v) { return v + 1.f; }")
    assert screen(make(cuda=cuda), TASK).ok


# --- no-kernel ----------------------------------------------------------------------
def test_no_kernel_rejected():
    code = "import torch\nimport torch.nn as nn\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n" \
           "        return x.clone()\n"
    r = assert_rejects(code, "no-kernel")
    assert "write a CUDA kernel" in r.message


def test_kernel_built_with_cupy_counts():
    code = ("import cupy as cp\nimport torch.nn as nn\nk = cp.ElementwiseKernel('float32 x', 'float32 y', 'y = x', 'cp')\n"
            "class ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n")
    assert "no-kernel" not in rules_of(screen(code))


# --- warnings -----------------------------------------------------------------------
@pytest.mark.parametrize("body,cuda", [
    ("return _ext.run(x.half()).float()", ""),
    ("return _ext.run(x.to(torch.bfloat16))", ""),
    ("return _ext.run(x)", "#include <cuda_fp16.h>\n__device__ __half h(float v) { return __float2half(v); }"),
])
def test_precision_warns(body, cuda):
    assert_warns(make(body, cuda=cuda), "precision")


def test_precision_silent_when_task_uses_half():
    r = screen(make("return _ext.run(x.half())"), TASK + "\nDTYPE = torch.float16\n")
    assert r.ok and not any(w.startswith("precision") for w in r.warnings)


def test_hardcoded_shape_warns_only_with_task():
    cuda = "__global__ void g(float* y) { y[threadIdx.x] = 8192; int half = 4096 / 2; }"
    r = assert_warns(make(cuda=cuda), "hardcoded-shape")
    assert "8192" in next(w for w in r.warnings if w.startswith("hardcoded-shape"))
    assert not any(w.startswith("hardcoded-shape") for w in screen(make(cuda=cuda)).warnings)


def test_print_in_forward_warns():
    assert_warns(make("print(x.shape)\nreturn _ext.run(x)"), "print")


def test_import_os_alone_warns():
    assert_warns(make(top="import os\nHERE = os.path.dirname(__file__)"), "suspicious-import")


@pytest.mark.parametrize("body", ["y = _ext.run(x)\nreturn y + x", "y = torch.empty_like(x)\ny *= self.scale\nreturn y",
                                  "return x.contiguous().mul(2)"])
def test_tensor_glue_warns(body):
    assert_warns(make(body), "tensor-glue")


def test_scalar_arithmetic_does_not_warn():
    body = "n = x.numel()\nblocks = (n + 255) // 256 * 2\nrows = x.shape[0] * x.size(1)\nreturn _ext.run(x)"
    r = screen(make(body), TASK)
    assert r.ok and r.warnings == [], r.warnings


# --- table, multiple rules, speed ---------------------------------------------------
def test_rule_table_is_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert {r.severity for r in RULES} <= {"reject", "warn"}
    for needed in ["torch-compute", "cublas-cudnn", "fallback", "reference-delegation", "streams-threads",
                   "harness-tampering", "dynamic-code", "system-access", "no-kernel", "precision",
                   "hardcoded-shape", "print"]:
        assert needed in ids
    assert all(r.why and r.fix for r in RULES)


def test_every_violated_rule_is_listed():
    body = "import subprocess\ntry:\n    return torch.matmul(x, x)\nexcept Exception:\n    return x"
    r = screen(make(body), TASK)
    assert r.error is ErrorClass.STATIC_RULE
    assert {"torch-compute", "fallback", "system-access"} <= rules_of(r)


def test_screen_is_fast_on_300_lines():
    helpers = "\n".join(f"def _helper_{i}(x, n):\n    m = (n + {i}) // 256\n    return x.view(-1), m\n"
                        for i in range(60))
    code = GOOD_INLINE + "\n" + helpers
    assert code.count("\n") >= 300
    screen(code, TASK)
    best = min(_timed(code) for _ in range(5))
    assert best < 0.020, best


def _timed(code):
    t = time.perf_counter()
    r = screen(code, TASK)
    assert r.ok, r.message
    return time.perf_counter() - t


# --- hostile corpus -----------------------------------------------------------------
def _hostile_entries():
    manifest = FIXTURES / "hostile" / "manifest.json"
    if not manifest.exists():
        return []
    data = json.loads(manifest.read_text())
    entries = data.get("entries", data) if isinstance(data, dict) else data
    if isinstance(entries, dict):
        entries = [dict(v, file=v.get("file", k)) for k, v in entries.items()]
    out = []
    for e in entries:
        static = e.get("expect") == "rejected" and "static_rule" in (e.get("errors") or [])
        if static or e.get("kind") == "control":
            out.append(pytest.param(e, id=str(e.get("file") or e.get("name"))))
    return out


@pytest.mark.parametrize("entry", _hostile_entries())
def test_hostile_manifest(entry):
    path = FIXTURES / "hostile" / (entry.get("file") or entry.get("name"))
    task = FIXTURES / "hostile" / "task.py"
    r = screen(path.read_text(), task.read_text() if task.exists() else None)
    if entry.get("kind") == "control":
        assert r.ok, r.message
    else:
        assert not r.ok and r.error is ErrorClass.STATIC_RULE, (r.error, r.message)


# --- no false positives on the candidate's own names ----------------------------------
@pytest.mark.parametrize("top,body", [
    ("", "return _ext.softmax(x)"),
    ("", "return self.ext.matmul(x, x)"),
    ("import functools\n\n@functools.lru_cache(None)\ndef _load():\n    return load_inline(name='m', "
     "cpp_sources='', cuda_sources=cuda_source, functions=['tanh'])\n", "return _load().tanh(x)"),
    ("", "return self.relu(_ext.run(x))"),
    ("", "sizes = [3, 1, 2]\nsizes.sort()\nreturn _ext.run(x)"),
])
def test_own_functions_named_like_torch_ops_pass(top, body):
    code = make(body, top=top, init="self.ext = _ext")
    code += "\n    def relu(self, y):\n        return _ext.run(y)\n"
    r = screen(code, TASK)
    assert r.ok, r.message


def test_fstring_cuda_source_is_scanned():
    top = 'N = 4\nSRC = f"""\n__global__ void g(float* y) {{ y[0] = {N}; }}\nvoid h() {{ cublasCreate(0); }}\n"""'
    assert_rejects(make(top=top), "cublas-cudnn")


def test_unused_reference_model_with_super_call_passes():
    top = ("class Model(nn.Module):\n    def __init__(self):\n        super(Model, self).__init__()\n\n"
           "    def forward(self, x):\n        return torch.tanh(x)\n")
    r = screen(make(top=top), TASK)
    assert r.ok, r.message


def test_aliased_imports_are_resolved():
    top = "from torch.nn import functional as Fn\nfrom torch import tanh as th\nact = Fn.silu"
    for body in ["return Fn.relu(x)", "return th(x)", "return act(x)"]:
        assert_rejects(make(body, top=top), "torch-compute")


def test_main_guard_test_code_is_ignored():
    code = make() + ("\n\nif __name__ == '__main__':\n    torch.manual_seed(0)\n    x = torch.randn(4, 4)\n"
                     "    print(torch.allclose(ModelNew()(x), torch.tanh(x)))\n")
    r = screen(code, TASK)
    assert r.ok and r.warnings == [], (r.message, r.warnings)


def _inline_candidate(cpp_extra: str) -> str:
    return f'''
import torch
from torch.utils.cpp_extension import load_inline
cuda_src = r"""
__global__ void k(const float* x, float* y, int n) {{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = x[i]; }}
torch::Tensor run(torch::Tensor x) {{ auto y = torch::empty_like(x); k<<<(x.numel() + 255) / 256, 256>>>(x.data_ptr<float>(), y.data_ptr<float>(), x.numel()); return y; }}
"""
cpp_src = r"""{cpp_extra}
torch::Tensor run(torch::Tensor x);
"""
mod = load_inline("m", cpp_src, cuda_sources=cuda_src, functions=["run"])
class ModelNew(torch.nn.Module):
    def __init__(self, *a):
        super().__init__()
    def forward(self, x):
        return mod.run(x)
'''


import pytest  # noqa: E402


@pytest.mark.parametrize("cpp,rule", [
    ('static int _p = (py::exec("import torch"), 0);', "dynamic-code"),
    ('static int _q = (py::module_::import("torch").attr("tanh") = py::none(), 0);', "dynamic-code"),
    ("void f() { PyEval_GetFrame(); }", "dynamic-code"),
    ("#define NS aten\nTORCH_LIBRARY_IMPL(NS, CUDA, m) { }", "harness-tampering"),
    ("void g() { auto& d = c10::Dispatcher::singleton(); (void)d; }", "harness-tampering"),
])
def test_host_cpp_reaching_the_interpreter_or_the_dispatcher_is_rejected(cpp, rule):
    """Issue 13: host C++ that runs Python, walks frames or registers operator kernels can
    change what the reference runs on, out of the screen's sight."""
    from kernelsmith.evaluate import static

    r = static.screen(_inline_candidate(cpp), "import torch\n")
    assert not r.ok and r.message.startswith(rule), r.message


def test_plain_bindings_still_pass():
    from kernelsmith.evaluate import static

    assert static.screen(_inline_candidate(""), "import torch\n").ok
