"""Vocabulary of the static screen: which names, imports, attributes and CUDA/C++ patterns
each rule looks for, kept as data so a rule change is a table edit, not a code change.

Names are matched after alias resolution (`F.gelu` -> `torch.nn.functional.gelu`, done by
context.Ctx); the CUDA regexes run on the source strings that Ctx collects.
"""

from __future__ import annotations

import re

_words = str.split  # the tables below are whitespace-separated word lists

# --- torch / cupy names: what counts as the task's work ----------------------------------
COMPUTE = set(_words("""matmul rmatmul imatmul mm bmm addmm addbmm baddbmm addmv addr mv dot vdot inner outer ger
 einsum tensordot kron chain_matmul cdist linear bilinear conv1d conv2d conv3d conv_transpose1d conv_transpose2d
 conv_transpose3d convolution conv_tbc softmax log_softmax layer_norm group_norm batch_norm instance_norm rms_norm
 native_layer_norm native_batch_norm native_group_norm gelu relu relu6 silu mish elu selu celu leaky_relu hardtanh
 hardswish hardsigmoid softplus prelu rrelu glu logsigmoid threshold tanh sigmoid exp exp2 expm1 log log2 log10
 log1p sqrt rsqrt pow square erf erfc erfinv sin cos tan sinh cosh asin acos atan atan2 reciprocal abs clamp
 clamp_min clamp_max clip where maximum minimum fmax fmin lerp addcmul addcdiv masked_fill sign floor ceil round
 trunc sum nansum mean nanmean max min amax amin aminmax argmax argmin cumsum cumprod cummax cummin logcumsumexp
 logsumexp prod std var std_mean var_mean norm median nanmedian mode kthvalue sort argsort msort topk unique
 count_nonzero histc bincount scatter_add scatter_reduce index_add index_reduce dropout max_pool1d max_pool2d
 max_pool3d avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
 adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d scaled_dot_product_attention"""))
GLUE = set(_words("add sub subtract mul multiply div divide true_divide floor_divide neg negative rsub radd rmul rtruediv "
             "iadd isub imul itruediv triu tril"))  # elementwise glue: warn only
F_OK = {"pad", "unfold"}
NN_OK = set(_words("Module Parameter ParameterList ParameterDict ModuleList ModuleDict Sequential Identity Flatten "
              "Unflatten Buffer"))
COMPUTE_NS = ("torch.linalg.", "torch.fft.", "torch.special.", "torch.ops.aten.", "torch.ops.prims.", "torch._C._nn.",
              "torch._C._VariableFunctions.", "torch._C._linalg.", "torch._refs.", "torch._prims.", "torch._decomp.",
              "torch._inductor.", "torch._dynamo.", "torch.jit.", "cupy.linalg.", "cupy.fft.", "cupy.cublas.",
              "cupyx.scipy.", "cupyx.cutensor.")
FUNC_NS = {"torch", "torch.Tensor", "cupy", "cupyx", "operator"}
TENSOR_METHODS = set(_words("contiguous view reshape t transpose permute float half double bfloat16 to clone detach "
                       "flatten squeeze unsqueeze expand expand_as narrow view_as reshape_as cuda type_as"))
CREATORS = set(_words("empty empty_like zeros zeros_like ones ones_like full full_like randn rand tensor as_tensor cat "
                 "stack arange from_dlpack"))
BUILDERS = set(_words("torch.utils.cpp_extension.load_inline torch.utils.cpp_extension.load cupy.RawKernel cupy.RawModule "
                 "cupy.ElementwiseKernel cupy.ReductionKernel cupyx.jit.rawkernel torch.cuda.jiterator._create_jit_fn "
                 "pycuda.compiler.SourceModule"))
# Decorators that make a Python function a GPU kernel (Triton, Numba's CUDA target)
KERNEL_DECORATORS = set(_words("triton.jit numba.cuda.jit"))

# --- rule tables: name -> rule id ---------------------------------------------------------
IMPORT_RULES = {
    **dict.fromkeys(_words("threading _thread multiprocessing concurrent asyncio signal sched torch.multiprocessing"),
                    "streams-threads"),
    **dict.fromkeys(_words("subprocess socket urllib http requests httpx aiohttp shutil tempfile ftplib smtplib pty "
                      "webbrowser site torch.hub"), "system-access"),
    **dict.fromkeys(_words("importlib imp runpy code codeop base64 codecs zlib marshal pickle dill bz2 lzma gzip ctypes "
                      "cffi"), "dynamic-code"),
    **dict.fromkeys(_words("gc inspect traceback __main__ model models reference ref task kernelbench src solution"),
                    "reference-delegation"),
    **dict.fromkeys(_words("kernelsmith builtins unittest.mock mock torch.library torch.overrides "
                      "torch.utils._python_dispatch"), "harness-tampering"),
}
QUIET_IMPORTS = set(_words("torch cupy cupyx triton numba pycuda numpy math typing functools dataclasses collections "
                      "itertools operator "
                      "__future__ warnings enum abc contextlib textwrap string re struct"))
OS_OK = set(_words("path cpu_count getpid sep pathsep linesep name fspath fork forkpty register_at_fork"))
FILE_FUNCS = set(_words("sys.exit io.open torch.utils.cpp_extension.load torch.load torch.save numpy.load numpy.save "
                   "numpy.fromfile"))
TAMPER_CALLS = set(_words("torch.set_float32_matmul_precision torch.set_default_dtype torch.set_default_device "
                     "torch.set_default_tensor_type torch.use_deterministic_algorithms torch.set_flush_denormal "
                     "torch.set_num_threads torch.manual_seed torch.seed torch.cuda.manual_seed torch.cuda.manual_seed_all "
                     "torch.cuda.set_sync_debug_mode torch.cuda.set_device torch.cuda.set_per_process_memory_fraction "
                     "random.seed numpy.random.seed"))
TAMPER_NS = ("torch.library.", "torch.overrides.", "torch.utils._python_dispatch.", "torch._C._set", "torch.random.")
DELEGATE_NS = ("gc.", "inspect.", "traceback.", "sys.modules", "sys._getframe", "sys.settrace", "sys.setprofile",
               "sys.meta_path", "sys.path", "sys._current_frames", "sys.addaudithook")
REF_RULES = [  # predicates on resolved dotted names, applied everywhere in the file
    ("torch-compute", lambda d: d == "torch.compile" or d.startswith(("torch.jit.", "torch._dynamo."))),
    ("reference-delegation", lambda d: d.startswith(DELEGATE_NS)),
    ("streams-threads", lambda d: d in ("os.fork", "os.forkpty", "os.register_at_fork")),
    ("harness-tampering", lambda d: d in TAMPER_CALLS or d.startswith(TAMPER_NS)
     or re.match(r"torch\.backends\..*\.(set_|enable_|preferred_)\w*$", d) is not None
     # nn.Module's global hooks run inside the reference's every call
     or re.search(r"(^|\.)register_module_\w*hook$", d) is not None),
    ("dynamic-code", lambda d: d.endswith(".__dict__") or d in ("types.FunctionType", "types.CodeType",
                                                                "torch.ops.load_library", "operator.attrgetter")),
    ("system-access", lambda d: d in FILE_FUNCS or d.startswith("torch.hub.")
     or (d.startswith("os.") and d.split(".")[1] not in OS_OK)),
    ("precision", lambda d: d in ("torch.float16", "torch.half", "torch.bfloat16", "cupy.float16")),
]
NAME_RULES = {**dict.fromkeys(_words("exec eval compile __import__ breakpoint"), "dynamic-code"),
              **dict.fromkeys(_words("open exit quit"), "system-access"),
              **dict.fromkeys(_words("globals locals vars __builtins__ Model"), "reference-delegation")}
ATTR_RULES = {**dict.fromkeys(_words("f_back f_globals f_locals f_builtins f_code tb_frame gi_frame cr_frame ag_frame "
                                "__subclasses__ __globals__ __closure__ __code__ __builtins__ Model"),
                              "reference-delegation"),
              **dict.fromkeys(_words("write_text write_bytes read_text read_bytes unlink touch mkdir rmdir symlink_to"),
                              "system-access")}
HARNESS_NAME = re.compile(r"^(ks_task|ks_candidate|harness|_harness|kernelsmith|__torch_function__|"
                          r"__torch_dispatch__)$")

# --- CUDA/C++ source ----------------------------------------------------------------------
# CUDA/C++ regexes: (rule id, regex, lowercase needles; the regex only runs when one occurs).
# Applied after removing comments; string literals are removed too unless the regex is about #include.
_BLAS = ("cublas", "cudnn", "cusparse", "cusolver", "cufft", "blas")
_CPP_OPS = "|".join(sorted(COMPUTE - {"where", "abs", "sign", "round", "floor", "ceil"}))
CUDA_RULES = [(rid, re.compile(rx), needles) for rid, rx, needles in [
    ("cublas-cudnn", r"#include\s*[<\"](?:cublas|cudnn|cusparse|cusolver|cufft)\w*", _BLAS),
    ("cublas-cudnn", r"\b(?:cublas|cudnn|cusparse|cusolver|cufft)\w+|getCurrentCUDABlasHandle|at::cuda::blas", _BLAS),
    ("cublas-cudnn", rf"\b(?:at|torch)::(?:native::)?(?:{_CPP_OPS})\s*[(<]|\btorch::nn::|\bat::_ops::", ("::",)),
    ("cublas-cudnn", r"\.\s*(?:matmul|mm|bmm|addmm|baddbmm|linear|softmax|log_softmax|sum|mean|amax|argmax|cumsum|"
     r"prod|norm|topk|sort|exp|tanh|sigmoid|relu|gelu|erf|clamp|pow|sqrt|rsqrt|max|min)\s*\(", (".",)),
    ("streams-threads", r"\bcudaStreamCreate\w*|\bcuStreamCreate\w*|CU_STREAM_PER_THREAD|cudaStreamSetAttribute|cudaCtxResetPersistingL2Cache|"
     r"accessPolicyWindow|cudaDeviceSetLimit|getStreamFromPool|cudaStreamPerThread|std::thread|std::async|"
     r"pthread_create|cudaLaunchHostFunc|cudaStreamAddCallback",
     ("stream", "thread", "accesspolicy", "persisting", "setlimit", "async", "hostfunc")),
    ("system-access", r"\b(?:system|popen|fopen|getenv|setenv|putenv|fork|execv?[lpe]*)\s*\(|std::[io]?fstream|"
     r"#include\s*<(?:fstream|unistd\.h|sys/)", ("system", "popen", "env", "fork", "exec", "fstream", "unistd", "sys/")),
    # ending the process from C++ (the job must return its result, or fail as a crash)
    ("system-access", r"\b(?:exit|_exit|_Exit|quick_exit|abort|kill|raise|socket)\s*\(|\bstd::terminate\b",
     ("exit", "abort", "kill", "raise", "socket", "terminate")),
    ("dynamic-code", r"\bdl(?:open|sym)\s*\(|#include\s*<dlfcn", ("dlopen", "dlsym", "dlfcn")),
    ("harness-tampering", r"TORCH_LIBRARY(?:_IMPL|_FRAGMENT)?\s*\(\s*aten\b|\bcudaDeviceReset\b",
     ("torch_library", "cudadevicereset")),
    # registering kernels for operators that exist (any namespace, a macro can hide "aten"),
    # or the dispatcher itself: the reference's ops would run the candidate's code
    ("harness-tampering", r"\bTORCH_LIBRARY_(?:IMPL|FRAGMENT)\b|\bc10::Dispatcher\b|\bRegisterOperators\b|"
     r"\bc10::impl::\w*(?:Dispatch|Tls|LocalDispatchKey)", ("torch_library", "dispatcher", "registeroperators", "c10::impl")),
    # the Python interpreter reached from C++ (pybind11's exec/eval/import/attr, the C API):
    # the screen cannot see what such code does; bindings (PYBIND11_MODULE, m.def) are fine
    ("dynamic-code", r"\bpy(?:bind11)?::(?:exec|eval|eval_file|module_?::import|import|globals|getattr|setattr|hasattr|"
     r"delattr|cast<py::object>)\b|\.attr\s*\(|\bPy(?:Run|Eval|Import|Frame|ThreadState|Object_SetAttr|Object_GetAttr|"
     r"Dict_SetItem|Dict_GetItem|Module_GetDict|Sys_|Code_|Marshal|Interpreter|GILState)\w*|\bPy_(?:Compile|Initialize|"
     r"Finalize|Main)\w*", ("py::", "pybind11::", ".attr", "py")),
    ("precision", r"__half\w*|__nv_bfloat16\w*|\bnv_bfloat16|cuda_(?:fp16|bf16)\.h|__float2(?:half|bfloat16)\w*|"
     r"\bhalf2\b|\bhalf\s*\*|precision::tf32|__float_to_tf32|\bat::(?:Half|BFloat16)\b|\bk(?:Half|BFloat16)\b|"
     r"\.(?:f16|bf16|tf32)\b", ("half", "bfloat16", "bf16", "tf32", "f16")),
]]
# `if __name__ == "__main__":` bodies never run on import, so the walk skips them.
MAIN_GUARDS = {"__name__ == '__main__'", "'__main__' == __name__"}
C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
C_STRING = re.compile(r"\"(?:\\.|[^\"\\\n])*\"")
C_INT = re.compile(r"(?<![\w.])(\d+)[uUlL]*(?![\w.])")


def op_name(name: str) -> str:
    """The op a method name stands for: dunders and in-place forms count as the op itself
    (`__matmul__` -> `matmul`, `add_` -> `add`)."""
    return name.strip("_") if name.startswith("__") else name.rstrip("_")


def compute_kind(dotted: str | None) -> str | None:
    """'reject' (the task's real work), 'warn' (elementwise glue) or None, for a resolved name."""
    if not dotted:
        return None
    head, _, last = dotted.rpartition(".")
    if dotted.startswith("torch.nn.functional."):
        return None if last in F_OK else "reject"
    if dotted == "torch.compile" or dotted.startswith(COMPUTE_NS):
        return "reject"
    if head == "torch.nn" and last[:1].isupper():
        return None if last in NN_OK else "reject"
    if head in FUNC_NS:
        n = op_name(last)
        return "reject" if n in COMPUTE else "warn" if n in GLUE else None
    return None


def import_rule_id(name: str) -> str | None:
    """The rule an import breaks, looked up from the longest matching package prefix; relative
    imports reach the task's own package, hence reference-delegation."""
    parts = name.split(".")
    hits = [IMPORT_RULES[p] for i in range(len(parts), 0, -1) if (p := ".".join(parts[:i])) in IMPORT_RULES]
    return "reference-delegation" if name.startswith(".") else (hits[0] if hits else None)
