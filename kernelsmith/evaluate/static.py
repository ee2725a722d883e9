"""Static screen: the cheap first stage of the cascade, before anything compiles.

`screen(code, task_source)` parses the candidate with `ast`, resolves import aliases
(`F.gelu` -> `torch.nn.functional.gelu`), and scans the CUDA/C++ source strings it
embeds. Every rule is one entry of `RULES` (id, severity, why, fix, check); a check
yields `(line, what)` findings. Reject findings fail the stage with a message an LLM
can act on; warn findings only go into `warnings`.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from kernelsmith.results import ErrorClass, StaticResult

Finding = Iterator[tuple[int, str]]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str  # "reject" | "warn"
    why: str
    fix: str
    check: Callable[["Ctx"], Finding]


RULES: list[Rule] = []


def rule(id: str, severity: str, why: str, fix: str):
    def register(fn):
        RULES.append(Rule(id, severity, why, fix, fn))
        return fn
    return register


# --- vocabulary ---------------------------------------------------------------------
_W = str.split
COMPUTE = set(_W("""matmul rmatmul imatmul mm bmm addmm addbmm baddbmm addmv addr mv dot vdot inner
 outer ger einsum tensordot kron chain_matmul cdist linear bilinear conv1d conv2d conv3d conv_transpose1d
 conv_transpose2d conv_transpose3d convolution conv_tbc softmax log_softmax layer_norm group_norm batch_norm
 instance_norm rms_norm native_layer_norm native_batch_norm native_group_norm gelu relu relu6 silu mish elu
 selu celu leaky_relu hardtanh hardswish hardsigmoid softplus prelu rrelu glu logsigmoid threshold tanh
 sigmoid exp exp2 expm1 log log2 log10 log1p sqrt rsqrt pow square erf erfc erfinv sin cos tan sinh cosh
 asin acos atan atan2 reciprocal abs clamp clamp_min clamp_max clip where maximum minimum fmax fmin lerp
 addcmul addcdiv masked_fill sign floor ceil round trunc sum nansum mean nanmean max min amax amin aminmax
 argmax argmin cumsum cumprod cummax cummin logcumsumexp logsumexp prod std var std_mean var_mean norm
 median nanmedian mode kthvalue sort argsort msort topk unique count_nonzero histc bincount scatter_add
 scatter_reduce index_add index_reduce dropout max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d
 avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
 adaptive_max_pool2d adaptive_max_pool3d scaled_dot_product_attention"""))
GLUE = set(_W("add sub subtract mul multiply div divide true_divide floor_divide neg negative rsub radd rmul "
              "rtruediv iadd isub imul itruediv triu tril"))
F_OK = {"pad", "unfold"}
NN_OK = set(_W("Module Parameter ParameterList ParameterDict ModuleList ModuleDict Sequential Identity "
               "Flatten Unflatten Buffer"))
ANY_IN_NS = ("torch.nn.functional.", "torch.linalg.", "torch.fft.", "torch.special.", "torch.ops.aten.",
             "torch.ops.prims.", "torch._C._nn.", "torch._C._VariableFunctions.", "torch._C._linalg.",
             "torch._refs.", "torch._prims.", "torch._decomp.", "torch._inductor.", "torch._dynamo.",
             "torch.jit.", "cupy.linalg.", "cupy.fft.", "cupy.cublas.", "cupyx.scipy.", "cupyx.cutensor.")
FUNC_NS = {"torch", "torch.Tensor", "cupy", "cupyx", "operator"}
TENSOR_METHODS = set(_W("contiguous view reshape t transpose permute float half double bfloat16 to clone "
                        "detach flatten squeeze unsqueeze expand expand_as narrow view_as reshape_as cuda type_as"))
CREATORS = set(_W("empty empty_like zeros zeros_like ones ones_like full full_like randn rand tensor as_tensor "
                  "cat stack arange from_dlpack"))
BUILDERS = set(_W("torch.utils.cpp_extension.load_inline torch.utils.cpp_extension.load cupy.RawKernel "
                  "cupy.RawModule cupy.ElementwiseKernel cupy.ReductionKernel cupyx.jit.rawkernel "
                  "torch.cuda.jiterator._create_jit_fn"))
HALF_NAMES = set(_W("torch.float16 torch.half torch.bfloat16 cupy.float16 numpy.float16"))
OS_OK = set(_W("path cpu_count getpid sep pathsep linesep name fspath"))
IMPORT_RULES = {
    **dict.fromkeys(_W("threading _thread multiprocessing concurrent asyncio signal sched "
                       "torch.multiprocessing"), "streams-threads"),
    **dict.fromkeys(_W("subprocess socket urllib http requests httpx aiohttp shutil tempfile ftplib "
                       "smtplib pty webbrowser site torch.hub"), "system-access"),
    **dict.fromkeys(_W("importlib imp runpy code codeop base64 codecs zlib marshal pickle dill bz2 lzma "
                       "gzip ctypes cffi"), "dynamic-code"),
    **dict.fromkeys(_W("gc inspect traceback __main__ model models reference ref task kernelbench "
                       "src solution"), "reference-delegation"),
    **dict.fromkeys(_W("kernelsmith builtins unittest.mock mock torch.library torch.overrides "
                       "torch.utils._python_dispatch"), "harness-tampering"),
}
QUIET_IMPORTS = set(_W("torch cupy cupyx numpy math typing functools dataclasses collections itertools "
                       "operator __future__ warnings enum abc contextlib textwrap string re struct"))
SYS_RULES = {**dict.fromkeys(_W("modules _getframe settrace setprofile meta_path path_hooks path "
                                "_current_frames addaudithook"), "reference-delegation"),
             "exit": "system-access"}
FRAME_ATTRS = set(_W("f_back f_globals f_locals f_builtins f_code tb_frame gi_frame cr_frame ag_frame "
                     "__subclasses__ __globals__ __closure__ __code__ __builtins__"))
TAMPER_CALLS = set(_W("torch.set_float32_matmul_precision torch.set_default_dtype torch.set_default_device "
                      "torch.set_default_tensor_type torch.use_deterministic_algorithms torch.set_flush_denormal "
                      "torch.set_num_threads torch.manual_seed torch.seed torch.cuda.manual_seed "
                      "torch.cuda.manual_seed_all torch.cuda.set_sync_debug_mode torch.cuda.set_device "
                      "torch.cuda.set_per_process_memory_fraction random.seed numpy.random.seed"))
TAMPER_NS = ("torch.library.", "torch.overrides.", "torch.utils._python_dispatch.", "torch._C._set", "torch.random.")
HARNESS_NAME = re.compile(r"^(ks_task|ks_candidate|harness|_harness|kernelsmith)$")
PATH_METHODS = set(_W("write_text write_bytes read_text read_bytes unlink touch mkdir rmdir symlink_to chmod"))

# CUDA/C++ patterns: (rule id, regex, what); applied to sources without comments (and string literals)
_CPP_NS_OPS = "|".join(sorted(COMPUTE - {"where", "abs", "sign", "round", "floor", "ceil"}))
_BLAS = ("cublas", "cudnn", "cusparse", "cusolver", "cufft", "blas")
CUDA_PATTERNS = [  # (rule id, regex, lowercase needles that must occur for the regex to be tried)
    ("cublas-cudnn", r"#include\s*[<\"](?:cublas|cudnn|cusparse|cusolver|cufft)\w*", _BLAS),
    ("cublas-cudnn", r"\b(?:cublas|cudnn|cusparse|cusolver|cufft)\w+|getCurrentCUDABlasHandle|at::cuda::blas", _BLAS),
    ("cublas-cudnn", rf"\b(?:at|torch)::(?:native::|_ops::)?(?:{_CPP_NS_OPS})\s*[(<]|\btorch::nn::", ("::",)),
    ("cublas-cudnn", r"\.\s*(?:matmul|mm|bmm|addmm|baddbmm|linear|softmax|log_softmax|sum|mean|amax|argmax|"
     r"cumsum|prod|norm|topk|sort|exp|tanh|sigmoid|relu|gelu|erf|clamp|pow|sqrt|rsqrt|max|min)\s*\(", (".",)),
    ("streams-threads", r"\bcudaStreamCreate\w*|cudaStreamSetAttribute|cudaCtxResetPersistingL2Cache|"
     r"accessPolicyWindow|cudaDeviceSetLimit|getStreamFromPool|cudaStreamPerThread|std::thread|std::async|"
     r"pthread_create|cudaLaunchHostFunc|cudaStreamAddCallback",
     ("stream", "thread", "accesspolicy", "persisting", "setlimit", "async", "hostfunc")),
    ("system-access", r"\b(?:system|popen|fopen|getenv|setenv|putenv|fork|execv?[lpe]*)\s*\(|std::[io]?fstream|"
     r"#include\s*[<\"](?:fstream|unistd\.h|sys/)", ("system", "popen", "env", "fork", "exec", "fstream",
                                                   "unistd", "sys/")),
    ("dynamic-code", r"\bdl(?:open|sym)\s*\(|#include\s*[<\"]dlfcn", ("dlopen", "dlsym", "dlfcn")),
    ("harness-tampering", r"TORCH_LIBRARY(?:_IMPL|_FRAGMENT)?\s*\(\s*aten\b|\bcudaDeviceReset\b",
     ("torch_library", "cudadevicereset")),
]
CUDA_PATTERNS = [(rid, re.compile(rx), needles) for rid, rx, needles in CUDA_PATTERNS]
HALF_CUDA = re.compile(r"__half\w*|__nv_bfloat16\w*|\bnv_bfloat16|cuda_(?:fp16|bf16)\.h|__float2(?:half|bfloat16)"
                       r"\w*|\bhalf2\b|\bhalf\s*\*|precision::tf32|__float_to_tf32|\bat::(?:Half|BFloat16)\b|"
                       r"\bk(?:Half|BFloat16)\b|\.(?:f16|bf16|tf32)\b")
HALF_NEEDLES = ("half", "bfloat16", "bf16", "tf32", "f16")
C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
C_STRING = re.compile(r"\"(?:\\.|[^\"\\\n])*\"")
C_INT = re.compile(r"(?<![\w.])(\d+)[uUlL]*(?![\w.])")


def _blank(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def _norm(name: str) -> str:
    return name.strip("_") if name.startswith("__") else name.rstrip("_")


def compute_kind(dotted: str | None) -> str | None:
    """'reject' / 'warn' / None for a fully resolved dotted name."""
    if not dotted:
        return None
    head, _, last = dotted.rpartition(".")
    if dotted.startswith("torch.nn.functional."):
        return None if last in F_OK else "reject"
    if dotted == "torch.compile" or dotted.startswith(ANY_IN_NS):
        return "reject"
    if head == "torch.nn" and last[:1].isupper():
        return None if last in NN_OK else "reject"
    if head in FUNC_NS:
        n = _norm(last)
        return "reject" if n in COMPUTE else "warn" if n in GLUE else None
    return None


def _strings(node: ast.AST) -> list[ast.AST]:
    return [n for n in ast.walk(node) if isinstance(n, ast.JoinedStr)
            or (isinstance(n, ast.Constant) and isinstance(n.value, str))]


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)
    return node.value


def _snip(node: ast.AST) -> str:
    s = ast.unparse(node)
    return f"`{s if len(s) <= 50 else s[:47] + '...'}`"


# --- context: one walk, alias resolution, scopes, CUDA sources --------------------------
class Ctx:
    def __init__(self, tree: ast.Module, task_source: str | None):
        self.tree, self.task_source = tree, task_source
        self.recs: list[tuple[ast.AST, ast.AST | None, ast.AST | None, ast.AST | None]] = []
        self.by_type: dict[type, list] = {}
        self.parent: dict[ast.AST, ast.AST] = {}
        self._walk(tree, None, None, None)
        self.aliases: dict[str, str] = {}
        self.self_alias: dict[str, str] = {}
        self._build_aliases()
        self._res: dict[ast.AST, str | None] = {}  # resolve() cache, valid once aliases are final
        self.runtime = self._runtime_functions()
        self.holders = self._holders()
        self.docstrings = {id(n.body[0].value) for n, *_ in self.recs
                           if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                           and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        self.cuda = self._cuda_sources()
        self._tnames: dict[ast.AST, set[str]] = {}

    def _walk(self, root, fn, codefn, cls):
        stack = [(root, fn, codefn, cls)]
        while stack:
            rec = stack.pop()
            node, fn, codefn, cls = rec
            self.recs.append(rec)
            self.by_type.setdefault(type(node), []).append(rec)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = codefn = node
            elif isinstance(node, ast.Lambda):
                codefn = node
            elif isinstance(node, ast.ClassDef):
                cls, fn, codefn = node, None, None
            children = list(ast.iter_child_nodes(node))
            for child in children:
                self.parent[child] = node
            stack.extend((c, fn, codefn, cls) for c in reversed(children))

    def nodes(self, *types):
        return (rec for t in types for rec in self.by_type.get(t, ()))

    def _build_aliases(self):
        for n, *_ in self.nodes(ast.Import, ast.ImportFrom):
            mod = "." * getattr(n, "level", 0) + (getattr(n, "module", None) or "")
            for a in n.names:
                if isinstance(n, ast.Import):
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                elif a.name == "*":
                    self.aliases.update({k: f"{mod}.{k}" for k in COMPUTE | GLUE})
                else:
                    self.aliases[a.asname or a.name] = f"{mod}.{a.name}"
        for _ in range(2):
            for n, *_ in self.nodes(ast.Assign):
                d = self.resolve(n.value)
                for t in n.targets if d else ():
                    if isinstance(t, ast.Name):
                        self.aliases[t.id] = d
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        self.self_alias[t.attr] = d

    def resolve(self, node) -> str | None:
        cache = getattr(self, "_res", None)
        if cache is None:
            return self._resolve(node)
        if node not in cache:
            cache[node] = self._resolve(node)
        return cache[node]

    def _resolve(self, node) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_alias.get(node.attr)
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            base = self.resolve(node.args[0])
            return f"{base}.{node.args[1].value}" if base else None
        return None

    def _runtime_functions(self) -> set[ast.AST]:
        """Code that can run with inputs: every function/lambda except __init__, get_inputs,
        an unused reference `Model`, and helpers that are only *called* from such setup code."""
        refs: dict[str, list[tuple[ast.AST | None, bool]]] = {}
        for n, fn, _, _ in self.nodes(ast.Name, ast.Attribute):
            key = n.id if isinstance(n, ast.Name) else n.attr
            p = self.parent.get(n)
            refs.setdefault(key, []).append((fn, isinstance(p, ast.Call) and p.func is n))
        funcs = [(n, cls) for n, _, _, cls in self.nodes(ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)]
        self.model_used = "Model" in refs
        dead_model = not self.model_used
        setup = {f for f, cls in funcs if isinstance(f, ast.FunctionDef) and (
            f.name in ("__init__", "get_inputs", "get_init_inputs") or (dead_model and cls and cls.name == "Model"))}
        changed = True
        while changed:
            changed = False
            for f, _ in funcs:
                name = getattr(f, "name", None)
                if f in setup or not name or name.startswith("__") or name == "forward":
                    continue
                uses = refs.get(name)
                if uses and all(call and (owner is None or owner in setup) for owner, call in uses):
                    setup.add(f)
                    changed = True
        return {f for f, _ in funcs if f not in setup}

    def in_runtime(self, codefn, cls) -> bool:
        if codefn is None:  # class bodies run as part of the model; module level is setup
            return cls is not None and not (cls.name == "Model" and not self.model_used)
        return codefn in self.runtime

    def _holders(self) -> set[str]:
        """Names / self attributes bound to nn compute modules or torch compute functions."""
        out: set[str] = set()
        for n, *_ in self.nodes(ast.Assign, ast.AnnAssign, ast.For):
            value = n.iter if isinstance(n, ast.For) else n.value
            if value is None:
                continue
            hit = (self._key(value) in out) if isinstance(n, ast.For) else any(
                compute_kind(self.resolve(s)) == "reject" for s in ast.walk(value)
                if isinstance(s, (ast.Name, ast.Attribute)))
            targets = [n.target] if not isinstance(n, ast.Assign) else n.targets
            out.update(k for t in targets if hit and (k := self._key(t)))
        return out

    @staticmethod
    def _key(node) -> str | None:
        while isinstance(node, ast.Subscript) or (isinstance(node, ast.Attribute) and node.attr in (
                "forward", "__call__", "_call_impl")):
            node = node.value
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return "self." + node.attr
        return None

    def _cuda_sources(self) -> list[tuple[int, str, str]]:
        """(first line, text without comments, text without comments and string literals)."""
        passed, picked = set(), {}
        for n, *_ in self.nodes(ast.Call):
            if self.resolve(n.func) in BUILDERS:
                for arg in [*n.args, *(k.value for k in n.keywords)]:
                    passed.update(s.id for s in ast.walk(arg) if isinstance(s, ast.Name))
                    picked.update((id(s), s) for s in _strings(arg))
        for n, fn, _, _ in self.nodes(ast.Assign, ast.AnnAssign):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if n.value is not None and (fn is None or any(isinstance(t, ast.Name) and t.id in passed
                                                          for t in targets)):
                picked.update((id(s), s) for s in _strings(n.value))
        for n, *_ in self.nodes(ast.Constant):
            if isinstance(n.value, str) and re.search(r"__global__|#include|extern \"C\"", n.value):
                picked[id(n)] = n
        out = []
        for key, s in picked.items():
            if key in self.docstrings:
                continue
            raw = C_COMMENT.sub(_blank, _text(s)) if "/" in _text(s) else _text(s)
            out.append((s.lineno, raw, C_STRING.sub(_blank, raw) if '"' in raw else raw, raw.lower()))
        return out

    def cuda_hits(self, rx: re.Pattern, bare: bool = True, needles=()) -> Finding:
        for line, raw, stripped, low in self.cuda:
            if needles and not any(k in low for k in needles):
                continue
            text = stripped if bare else raw
            for m in rx.finditer(text):
                yield line + text.count("\n", 0, m.start()), f"`{m.group(0).strip()}` in CUDA/C++ source"

    def tensorish(self, node, fn) -> bool:
        names = self._tensor_names(fn)
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.Subscript):
            return self.tensorish(node.value, fn)
        if isinstance(node, ast.BinOp):
            return self.tensorish(node.left, fn) or self.tensorish(node.right, fn)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            d = self.resolve(node.func)
            if d:
                return d.startswith("torch.") and (d.rpartition(".")[2] in CREATORS or compute_kind(d) is not None)
            return node.func.attr in TENSOR_METHODS and self.tensorish(node.func.value, fn) \
                or _norm(node.func.attr) in COMPUTE
        return False

    def _tensor_names(self, fn) -> set[str]:
        if fn is None:
            return set()
        if fn not in self._tnames:
            names = self._tnames[fn] = {a.arg for a in fn.args.args[1:]} if fn.name == "forward" else set()
            assigns = [n for n, f, *_ in self.nodes(ast.Assign) if f is fn]
            for _ in range(2):
                for n in assigns:
                    if self.tensorish(n.value, fn):
                        names.update(t.id for t in n.targets if isinstance(t, ast.Name))
        return self._tnames[fn]


# --- rules ---------------------------------------------------------------------------
def _imports(ctx: Ctx):
    for n, *_ in ctx.nodes(ast.Import, ast.ImportFrom):
        if isinstance(n, ast.Import):
            yield from ((n, a.name) for a in n.names)
        else:
            mod = "." * n.level + (n.module or "")
            yield n, mod
            yield from ((n, f"{mod}.{a.name}") for a in n.names)


def _import_rule(name: str) -> str | None:
    if name.startswith("."):
        return "reference-delegation"
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in IMPORT_RULES:
            return IMPORT_RULES[".".join(parts[:i])]
    return None


def _banned_imports(rule_id: str):
    def check(ctx: Ctx) -> Finding:
        for n, name in _imports(ctx):
            if _import_rule(name) == rule_id:
                yield n.lineno, f"import of `{name}`"
    return check


def _cuda_rule(ctx: Ctx, rule_id: str) -> Finding:
    for rid, rx, needles in CUDA_PATTERNS:
        if rid == rule_id:
            yield from ctx.cuda_hits(rx, "#include" not in rx.pattern[:9], needles)


def _refs(ctx: Ctx, pred) -> Finding:
    """Outermost Name/Attribute chains whose resolved dotted name satisfies pred."""
    for n, *_ in ctx.nodes(ast.Name, ast.Attribute):
        p = ctx.parent.get(n)
        if isinstance(p, ast.Attribute) and p.value is n:
            continue
        d = ctx.resolve(n)
        if d and pred(d, n):
            yield n.lineno, f"`{d}`"


def _calls(ctx: Ctx, names: set[str]) -> Finding:
    for n, *_ in ctx.nodes(ast.Call):
        if isinstance(n.func, ast.Name) and n.func.id in names and n.func.id not in ctx.aliases:
            yield n.lineno, f"`{n.func.id}()` call"


@rule("torch-compute", "reject",
      "PyTorch/CuPy library ops do the task's work instead of your kernel, so the speedup measures the library",
      "implement that computation inside your own __global__ kernel (allocation with torch.empty*, "
      ".contiguous(), .view/.reshape and shape queries are fine; nn modules may be built in __init__ "
      "to hold weights, but pass their .weight/.bias to your kernel instead of calling them)")
def torch_compute(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.recs:
        if not ctx.in_runtime(code, cls):
            continue
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult):
            yield n.lineno, f"`@` operator in {_snip(n)}"
        elif isinstance(n, (ast.Name, ast.Attribute)):
            p = ctx.parent.get(n)
            if not (isinstance(p, ast.Attribute) and p.value is n) and \
                    compute_kind(d := ctx.resolve(n)) == "reject":
                yield n.lineno, f"`{d}`"
        elif isinstance(n, ast.Call):
            if compute_kind(d := ctx.resolve(n)) == "reject":  # getattr(torch, "tanh")
                yield n.lineno, f"`{d}`"
            elif (k := Ctx._key(n.func)) in ctx.holders:
                yield n.lineno, f"call of `{k}` (a torch module/function bound outside forward)"
            elif isinstance(n.func, ast.Attribute) and ctx.resolve(n.func.value) is None \
                    and _norm(n.func.attr) in COMPUTE \
                    and not (n.func.attr == "sort" and isinstance(ctx.parent.get(n), ast.Expr)):
                yield n.lineno, f"tensor method {_snip(n.func)}"
    yield from _refs(ctx, lambda d, n: d == "torch.compile" or d.startswith(("torch.jit.", "torch._dynamo.")))


@rule("cublas-cudnn", "reject",
      "cuBLAS/cuDNN/ATen ops called from C++ do the work instead of your kernel",
      "write the GEMM/convolution/reduction yourself in a __global__ kernel; in C++ only allocate "
      "(torch::empty, empty_like, zeros), check inputs and launch your kernels")
def cublas_cudnn(ctx: Ctx) -> Finding:
    yield from _cuda_rule(ctx, "cublas-cudnn")


@rule("fallback", "reject",
      "a try/except around the kernel path hides failures and can silently fall back to another implementation",
      "remove the try/except (and contextlib.suppress) from forward and its helpers; let errors surface")
def fallback(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.nodes(*{ast.Try, getattr(ast, "TryStar", ast.Try)}, ast.withitem):
        if not ctx.in_runtime(code, cls):
            continue
        if isinstance(n, ast.withitem):
            if ctx.resolve(getattr(n.context_expr, "func", n.context_expr)) == "contextlib.suppress":
                yield n.context_expr.lineno, "`contextlib.suppress`"
        else:
            yield n.lineno, "`try` statement in forward or a function it calls"


@rule("reference-delegation", "reject",
      "the candidate must not reach the reference Model, the task module or other live objects",
      "compute the result with your own kernel; do not subclass or look up `Model`, frames, gc or sys.modules")
def reference_delegation(ctx: Ctx) -> Finding:
    yield from _banned_imports("reference-delegation")(ctx)
    for n, *_ in ctx.nodes(ast.Name, ast.Attribute, ast.alias, ast.Constant):
        name = getattr(n, "id", None) or getattr(n, "attr", None) or getattr(n, "name", None) or n.value
        if name == "Model" and id(n) not in ctx.docstrings:
            yield getattr(n, "lineno", 0) or 0, "reference to `Model`"
        elif isinstance(n, (ast.Attribute, ast.Name)) and name in FRAME_ATTRS:
            yield n.lineno, f"`{name}`"
    yield from _refs(ctx, lambda d, n: d.startswith(("gc.", "inspect.")) or
                     (d.startswith("sys.") and SYS_RULES.get(d.split(".")[1]) == "reference-delegation"))
    yield from _calls(ctx, {"globals", "locals", "vars"})


@rule("streams-threads", "reject",
      "work on side streams, threads or processes escapes the timer, and cache-policy changes skew timing",
      "launch everything on torch.cuda.current_stream() (CuPy: "
      "`with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):`) from the calling thread")
def streams_threads(ctx: Ctx) -> Finding:
    yield from _banned_imports("streams-threads")(ctx)
    for n, *_ in ctx.nodes(ast.Call):
        d = ctx.resolve(n.func) or ""
        last = d.rpartition(".")[2]
        if d in ("os.fork", "os.forkpty", "os.register_at_fork"):
            yield n.lineno, f"`{d}`"
        elif d.startswith(("torch.", "cupy.")) and last in ("Stream", "ExternalStream", "stream", "set_stream"):
            if last == "Stream" or not any(isinstance(s, ast.Attribute) and s.attr == "current_stream"
                                           for s in ast.walk(n)):
                yield n.lineno, f"{_snip(n)} (a stream other than torch's current one)"
    yield from _cuda_rule(ctx, "streams-threads")


@rule("harness-tampering", "reject",
      "changing torch, timer, builtins or harness state alters how the reference and the timer behave",
      "leave torch/time/sys/builtins settings alone; only define ModelNew and your kernels")
def harness_tampering(ctx: Ctx) -> Finding:
    yield from _banned_imports("harness-tampering")(ctx)
    for n, *_ in ctx.nodes(ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete):
        for t in getattr(n, "targets", None) or [n.target]:
            while isinstance(t, ast.Subscript):
                t = t.value
            if isinstance(t, ast.Attribute) and (ctx.resolve(t.value) or "os").split(".")[0] != "os":
                yield n.lineno, f"assignment to {_snip(t)}"
    for n, *_ in ctx.nodes(ast.Call):
        f = n.func
        if isinstance(f, ast.Name) and f.id in ("setattr", "delattr") and n.args and ctx.resolve(n.args[0]):
            yield n.lineno, f"{_snip(n)}"
        d = ctx.resolve(f) or ""
        if d in TAMPER_CALLS or d.startswith(TAMPER_NS) or (d.startswith("torch.backends.") and re.match(
                r"(set_|enable_|preferred_|allow_)", d.rpartition(".")[2])):
            yield n.lineno, f"`{d}()`"
    for n, *_ in ctx.nodes(ast.FunctionDef, ast.Name, ast.Attribute, ast.Constant):
        name = getattr(n, "name", None) or getattr(n, "id", None) or getattr(n, "attr", None) or n.value
        if name in ("__torch_function__", "__torch_dispatch__") or (
                isinstance(name, str) and HARNESS_NAME.match(name) and id(n) not in ctx.docstrings):
            yield n.lineno, f"`{name}`"
    yield from _cuda_rule(ctx, "harness-tampering")


@rule("dynamic-code", "reject",
      "code built or decoded at run time cannot be screened",
      "write plain Python and plain CUDA source strings; no exec/eval/compile/__import__/importlib/ctypes")
def dynamic_code(ctx: Ctx) -> Finding:
    yield from _banned_imports("dynamic-code")(ctx)
    for n, *_ in ctx.nodes(ast.Name):
        if n.id in ("exec", "eval", "compile", "__import__", "breakpoint") and n.id not in ctx.aliases:
            yield n.lineno, f"`{n.id}`"
    for n, *_ in ctx.nodes(ast.Call):
        if isinstance(n.func, ast.Name) and n.func.id in ("getattr", "setattr") and len(n.args) >= 2 \
                and not isinstance(n.args[1], ast.Constant) and (ctx.resolve(n.args[0]) or
                                                                 _snip(n.args[0]) == "`__builtins__`"):
            yield n.lineno, f"{_snip(n)} with a computed attribute name"
    yield from _refs(ctx, lambda d, n: d in ("types.FunctionType", "types.CodeType", "torch.ops.load_library"))
    yield from _cuda_rule(ctx, "dynamic-code")


def _os_or_file(d: str, n) -> bool:
    parts = d.split(".")
    return (parts[0] == "os" and len(parts) > 1 and parts[1] not in OS_OK and parts[1] not in
            ("fork", "forkpty", "register_at_fork")) or d in (
        "sys.exit", "io.open", "torch.utils.cpp_extension.load", "torch.load", "torch.save",
        "numpy.load", "numpy.save", "numpy.fromfile") or d.startswith("torch.hub.")


@rule("system-access", "reject",
      "files, environment, processes and network are outside the task and can leak or tamper with results",
      "remove file/OS/network access; pass CUDA source as strings to load_inline or cupy.RawKernel")
def system_access(ctx: Ctx) -> Finding:
    yield from _banned_imports("system-access")(ctx)
    yield from _refs(ctx, _os_or_file)
    yield from _calls(ctx, {"open", "exit", "quit"})
    for n, *_ in ctx.nodes(ast.Raise):
        exc = getattr(n.exc, "func", n.exc)
        if isinstance(exc, ast.Name) and exc.id in ("SystemExit", "KeyboardInterrupt", "BaseException"):
            yield n.lineno, f"`raise {exc.id}` (ends the process)"
    for n, *_ in ctx.nodes(ast.Call):
        if isinstance(n.func, ast.Attribute) and n.func.attr in PATH_METHODS and ctx.resolve(n.func) is None:
            yield n.lineno, f"{_snip(n.func)} file access"
        if ctx.resolve(n.func) == "cupy.RawModule" and any(k.arg == "path" for k in n.keywords):
            yield n.lineno, "`cupy.RawModule(path=...)` loading a prebuilt binary"
    for n, *_ in ctx.nodes(ast.Constant):
        if isinstance(n.value, str) and re.search(r"\bpip3? install\b", n.value):
            yield n.lineno, "a `pip install` string"
    yield from _cuda_rule(ctx, "system-access")


@rule("no-kernel", "reject",
      "the candidate contains no CUDA kernel (no __global__ function, no load_inline/RawKernel/RawModule)",
      "write a CUDA kernel and build it with torch.utils.cpp_extension.load_inline or cupy.RawKernel")
def no_kernel(ctx: Ctx) -> Finding:
    has_global = any(isinstance(n.value, str) and "__global__" in n.value for n, *_ in ctx.nodes(ast.Constant))
    if not has_global and not any(ctx.resolve(n.func) in BUILDERS for n, *_ in ctx.nodes(ast.Call)):
        yield 1, "no CUDA kernel anywhere in the file"


@rule("precision", "warn", "lower precision may fail tolerance (the task computes in fp32)",
      "keep fp32 inputs, accumulation and outputs unless the task itself uses half types")
def precision(ctx: Ctx) -> Finding:
    if ctx.task_source and re.search(r"float16|half|bfloat16|bf16", ctx.task_source):
        return
    yield from _refs(ctx, lambda d, n: d in HALF_NAMES)
    for n, *_ in ctx.nodes(ast.Call):
        if isinstance(n.func, ast.Attribute) and n.func.attr in ("half", "bfloat16") and not n.args:
            yield n.lineno, f"{_snip(n.func)} conversion"
    yield from ctx.cuda_hits(HALF_CUDA, False, HALF_NEEDLES)


@rule("hardcoded-shape", "warn", "shapes are hard-coded; fine for this task but fragile",
      "read sizes from the tensors (x.size(i)) and pass them to the kernel (ignore this if they are tile sizes)")
def hardcoded_shape(ctx: Ctx) -> Finding:
    sizes = _task_sizes(ctx.task_source)
    for line, _, stripped, _ in ctx.cuda if sizes else ():
        for m in C_INT.finditer(stripped):
            if int(m.group(1)) in sizes:
                yield line + stripped.count("\n", 0, m.start()), f"literal {m.group(1)} (a task dimension)"


def _task_sizes(src: str | None) -> set[int]:
    try:
        tree = ast.parse(src) if src else None
    except (SyntaxError, ValueError):
        return set()
    if tree is None:
        return set()
    top = [n.value for n in tree.body if isinstance(n, ast.Assign)]
    top += [n for f in tree.body if isinstance(f, ast.FunctionDef) and f.name in ("get_inputs", "get_init_inputs")
            for n in ast.walk(f) if isinstance(n, ast.Constant)]
    return {n.value for n in top if isinstance(n, ast.Constant) and type(n.value) is int and n.value >= 64}


@rule("tensor-glue", "warn", "elementwise PyTorch ops in forward launch extra kernels and extra memory passes",
      "fuse the arithmetic into your CUDA kernel")
def tensor_glue(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.recs:
        if not ctx.in_runtime(code, cls):
            continue
        if isinstance(n, (ast.BinOp, ast.AugAssign)) and not isinstance(ctx.parent.get(n), ast.BinOp) \
                and not isinstance(n.op, (ast.MatMult, ast.BitAnd, ast.BitOr, ast.LShift, ast.RShift)):
            sides = (n.target, n.value) if isinstance(n, ast.AugAssign) else (n.left, n.right)
            if any(ctx.tensorish(s, fn) for s in sides):
                yield n.lineno, f"tensor arithmetic {_snip(n)}"
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            d = ctx.resolve(n.func)
            if compute_kind(d) == "warn" or (d is None and _norm(n.func.attr) in GLUE
                                             and ctx.tensorish(n.func.value, fn)):
                yield n.lineno, f"elementwise op {_snip(n.func)}"


@rule("print", "warn", "printing in forward is slow and pollutes timing", "remove print() from forward")
def print_in_forward(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.nodes(ast.Call):
        if isinstance(n.func, ast.Name) and n.func.id == "print" and ctx.in_runtime(code, cls):
            yield n.lineno, "`print()`"


@rule("suspicious-import", "warn", "correct candidates do not need this module",
      "import only torch, cupy, math and the like")
def suspicious_import(ctx: Ctx) -> Finding:
    for n, name in _imports(ctx):
        top = name.split(".")[0]
        if isinstance(n, ast.Import) or name == "." * n.level + (n.module or ""):
            if _import_rule(name) is None and top not in QUIET_IMPORTS:
                yield n.lineno, f"import of `{name}`"


# --- entry point ----------------------------------------------------------------------
def _format(rule_: Rule, hits: list[tuple[int, str]]) -> str:
    seen = list(dict.fromkeys(hits))
    where = ", ".join(f"{what} at line {line}" for line, what in seen[:4])
    more = f" (and {len(seen) - 4} more)" if len(seen) > 4 else ""
    return f"{rule_.id}: {where}{more}; {rule_.why}; {rule_.fix}"


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for st in body:
        yield st
        for block in ("body", "orelse", "finalbody", "handlers"):
            if not isinstance(st, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from _top_level(getattr(st, block, None) or [])


def _has_model_new(tree: ast.Module) -> str | None:
    stmts = list(_top_level(tree.body))
    cls = [n for n in stmts if isinstance(n, ast.ClassDef) and n.name == "ModelNew"]
    if not cls:
        assigned = any(isinstance(n, (ast.Assign, ast.ImportFrom)) and "ModelNew" in ast.dump(n) for n in stmts)
        return None if assigned else "no `class ModelNew` found; define `class ModelNew(nn.Module)` with a forward()"
    c = cls[0]
    local_base = any(not ast.unparse(b).endswith("Module") for b in c.bases)
    if not local_base and not any(isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == "forward"
                                  for f in c.body):
        return "`class ModelNew` has no forward() method; define forward(self, *inputs)"
    return None


def screen(code: str, task_source: str | None = None) -> StaticResult:
    """Screen a candidate's source before compiling it. Never raises."""
    t0 = time.perf_counter()

    def done(ok, error=ErrorClass.NONE, message="", warnings=()):
        return StaticResult(ok, time.perf_counter() - t0, error, message, list(warnings))

    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return done(False, ErrorClass.SYNTAX, f"syntax error at line {e.lineno}: {e.msg}; fix the Python syntax")
    except ValueError as e:
        return done(False, ErrorClass.SYNTAX, f"syntax error: {e}; the file must be plain Python text")
    problem = _has_model_new(tree)
    ctx = Ctx(tree, task_source)
    rejects, warnings = {}, []
    for r in RULES:
        hits = sorted(set(r.check(ctx)))
        if hits:
            (rejects.__setitem__(r.id, _format(r, hits)) if r.severity == "reject" else warnings.append(_format(r, hits)))
    if problem and set(rejects) <= {"no-kernel"}:  # a missing ModelNew says more than a missing kernel
        return done(False, ErrorClass.FORMAT, problem, warnings)
    if rejects:
        lines = list(rejects.values()) + ([f"format: {problem}"] if problem else [])
        return done(False, ErrorClass.STATIC_RULE, "\n".join(lines), warnings)
    return done(True, warnings=warnings)
