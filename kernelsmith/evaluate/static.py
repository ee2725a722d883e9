"""Static screen: the cheap first stage of the cascade, before anything compiles.

`screen(code, task_source)` parses the candidate with `ast`, resolves import aliases
(`F.gelu` -> `torch.nn.functional.gelu`) and scans the CUDA/C++ strings it embeds.
Rules are data: `RULES` holds (id, severity, why, fix, check). Findings come from the
tables below (imports, resolved names, builtins, attributes, CUDA regexes), gathered in
one pass, plus each rule's own check; every finding is `(line, what)`.
"""

from __future__ import annotations

import ast
import functools
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
    check: Callable[["Ctx"], Finding]  # findings beyond the generic tables


RULES: list[Rule] = []


def rule(id: str, severity: str, why: str, fix: str):
    """Register a rule; the decorated function yields findings beyond the generic tables."""
    def register(fn):
        RULES.append(Rule(id, severity, why, fix, fn))
        return fn
    return register


# --- vocabulary ---------------------------------------------------------------------
_words = str.split
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
                 "cupy.ElementwiseKernel cupy.ReductionKernel cupyx.jit.rawkernel torch.cuda.jiterator._create_jit_fn"))
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
QUIET_IMPORTS = set(_words("torch cupy cupyx numpy math typing functools dataclasses collections itertools operator "
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
     or re.match(r"torch\.backends\..*\.(set_|enable_|preferred_)\w*$", d) is not None),
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
    ("streams-threads", r"\bcudaStreamCreate\w*|cudaStreamSetAttribute|cudaCtxResetPersistingL2Cache|"
     r"accessPolicyWindow|cudaDeviceSetLimit|getStreamFromPool|cudaStreamPerThread|std::thread|std::async|"
     r"pthread_create|cudaLaunchHostFunc|cudaStreamAddCallback",
     ("stream", "thread", "accesspolicy", "persisting", "setlimit", "async", "hostfunc")),
    ("system-access", r"\b(?:system|popen|fopen|getenv|setenv|putenv|fork|execv?[lpe]*)\s*\(|std::[io]?fstream|"
     r"#include\s*<(?:fstream|unistd\.h|sys/)", ("system", "popen", "env", "fork", "exec", "fstream", "unistd", "sys/")),
    ("dynamic-code", r"\bdl(?:open|sym)\s*\(|#include\s*<dlfcn", ("dlopen", "dlsym", "dlfcn")),
    ("harness-tampering", r"TORCH_LIBRARY(?:_IMPL|_FRAGMENT)?\s*\(\s*aten\b|\bcudaDeviceReset\b",
     ("torch_library", "cudadevicereset")),
    ("precision", r"__half\w*|__nv_bfloat16\w*|\bnv_bfloat16|cuda_(?:fp16|bf16)\.h|__float2(?:half|bfloat16)\w*|"
     r"\bhalf2\b|\bhalf\s*\*|precision::tf32|__float_to_tf32|\bat::(?:Half|BFloat16)\b|\bk(?:Half|BFloat16)\b|"
     r"\.(?:f16|bf16|tf32)\b", ("half", "bfloat16", "bf16", "tf32", "f16")),
]]
MAIN_GUARDS = {"__name__ == '__main__'", "'__main__' == __name__"}
C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
C_STRING = re.compile(r"\"(?:\\.|[^\"\\\n])*\"")
C_INT = re.compile(r"(?<![\w.])(\d+)[uUlL]*(?![\w.])")


def _blank(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def _norm(name: str) -> str:
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


def _import_rule(name: str) -> str | None:
    parts = name.split(".")
    hits = [IMPORT_RULES[p] for i in range(len(parts), 0, -1) if (p := ".".join(parts[:i])) in IMPORT_RULES]
    return "reference-delegation" if name.startswith(".") else (hits[0] if hits else None)


# --- context: one walk, aliases, scopes, CUDA sources, generic findings -----------------
class Ctx:
    def __init__(self, tree: ast.Module, task_source: str | None):
        self.task_source = task_source
        self.recs: list[tuple] = []  # (node, innermost def, innermost def-or-lambda, innermost class)
        self.by_type: dict[type, list[tuple]] = {}
        self.parent: dict[ast.AST, ast.AST] = {}
        self._walk(tree)
        self.aliases: dict[str, str] = {}  # local name -> dotted name
        self.self_alias: dict[str, str] = {}  # self.<attr> -> dotted name
        self._res: dict[ast.AST, str | None] | None = None
        self._build_aliases()
        self._res = {}
        self.runtime = self._runtime_functions()
        self.holders = self._holders()
        self.ext_keys, self.factories, self.defs = self._extensions()
        self.docstrings = {id(n.body[0].value) for n, *_ in self.nodes(ast.Module, ast.ClassDef, ast.FunctionDef)
                           if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        self.half_task = bool(task_source and re.search(r"float16|half|bfloat16|bf16", task_source))
        self.cuda = self._cuda_sources()
        self._tnames: dict[ast.AST, set[str]] = {}
        self.found: dict[str, list[tuple[int, str]]] = {}
        self._generic()

    def _walk(self, root):
        stack = [(root, None, None, None)]
        while stack:
            rec = stack.pop()
            node, fn, code, cls = rec
            self.recs.append(rec)
            self.by_type.setdefault(type(node), []).append(rec)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = code = node
            elif isinstance(node, ast.Lambda):
                code = node
            elif isinstance(node, ast.ClassDef):
                cls, fn, code = node, None, None
            children = list(ast.iter_child_nodes(node))
            if isinstance(node, ast.If) and ast.unparse(node.test) in MAIN_GUARDS:  # never runs on import
                children = [node.test, *node.orelse]
            for child in children:
                self.parent[child] = node
            stack.extend((c, fn, code, cls) for c in reversed(children))

    def nodes(self, *types):
        return (rec for t in types for rec in self.by_type.get(t, ()))

    def imports(self) -> Iterator[tuple[ast.AST, str, ast.alias | None]]:
        """(node, dotted name, alias) for every import; alias is None for the module of a `from` import."""
        for n, *_ in self.nodes(ast.Import, ast.ImportFrom):
            mod = "." * getattr(n, "level", 0) + (getattr(n, "module", None) or "")
            if isinstance(n, ast.ImportFrom):
                yield n, mod, None
            for a in n.names:
                yield n, (a.name if isinstance(n, ast.Import) else f"{mod}.{a.name}"), a

    def _build_aliases(self):
        for n, name, a in self.imports():
            if a is None:
                continue
            if isinstance(n, ast.Import):
                self.aliases[a.asname or name.split(".")[0]] = name if a.asname else name.split(".")[0]
            elif a.name == "*":
                self.aliases.update({k: f"{name[:-2]}.{k}" for k in COMPUTE | GLUE})
            else:
                self.aliases[a.asname or a.name] = name
        for _ in range(2):  # `mm = torch.mm`, `self.act = F.gelu`, `f = getattr(torch, "tanh")`
            for n, *_ in self.nodes(ast.Assign):
                for t in n.targets if (d := self.resolve(n.value)) else ():
                    if isinstance(t, ast.Name):
                        self.aliases[t.id] = d
                    elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        self.self_alias[t.attr] = d

    def resolve(self, node) -> str | None:
        if self._res is None or node not in self._res:
            d = self._resolve(node)
            if self._res is None:
                return d
            self._res[node] = d
        return self._res[node]

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
        """Code that can run on inputs: every def/lambda except __init__, get_inputs, an unused reference
        `Model`, and helpers only ever *called* from such setup code or from module level."""
        refs: dict[str, list[tuple]] = {}
        for n, fn, _, cls in self.nodes(ast.Name, ast.Attribute):
            if not (cls and cls.name == "Model"):
                p = self.parent.get(n)
                refs.setdefault(getattr(n, "id", None) or n.attr, []).append((fn, isinstance(p, ast.Call) and p.func is n))
        self.model_used = "Model" in refs
        funcs = [(f, cls) for f, _, _, cls in self.nodes(ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)]
        setup = {f for f, cls in funcs if getattr(f, "name", "") in ("__init__", "get_inputs", "get_init_inputs")
                 or (cls and cls.name == "Model" and not self.model_used)}
        grew = True
        while grew:
            grew = False
            for f, _ in funcs:
                name, uses = getattr(f, "name", "__"), refs.get(getattr(f, "name", ""))
                if f not in setup and not name.startswith("__") and name != "forward" and uses \
                        and all(call and (owner is None or owner in setup) for owner, call in uses):
                    setup.add(f)
                    grew = True
        return {f for f, _ in funcs if f not in setup}

    def in_runtime(self, code, cls) -> bool:
        if code is None:  # class bodies belong to the model; module level is setup
            return cls is not None and (cls.name != "Model" or self.model_used)
        return code in self.runtime

    def _holders(self) -> set[str]:
        """Names / self attributes bound to torch compute modules or functions (`self.fc = nn.Linear(...)`)."""
        out: set[str] = set()
        for n, *_ in self.nodes(ast.Assign, ast.AnnAssign, ast.For):
            value = n.iter if isinstance(n, ast.For) else n.value
            hit = value is not None and ((self.key(value) in out) if isinstance(n, ast.For) else any(
                compute_kind(self.resolve(s)) == "reject" for s in ast.walk(value)
                if isinstance(s, (ast.Name, ast.Attribute))))
            out.update(k for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if hit and (k := self.key(t)))
        return out

    def _extensions(self) -> tuple[set[str], set[str], set[str]]:
        """Names bound to built extensions (`_ext = load_inline(...)`, `self.ext = _ext`), functions that
        build one, and every def name: their `.softmax(...)` is the candidate's own code, not torch."""
        factories = {fn.name for n, fn, *_ in self.nodes(ast.Call) if fn and self.resolve(n.func) in BUILDERS}
        keys: set[str] = set()
        for n, *_ in [*self.nodes(ast.Assign)] * 2:
            v = n.value
            if self.key(v) in keys or isinstance(v, ast.Call) and (
                    self.resolve(v.func) in BUILDERS or getattr(v.func, "id", None) in factories):
                keys.update(k for t in n.targets if (k := self.key(t)))
        return keys, factories, {f.name for f, *_ in self.nodes(ast.FunctionDef, ast.AsyncFunctionDef)}

    def own_code(self, recv, method: str) -> bool:
        return self.key(recv) in self.ext_keys or getattr(getattr(recv, "func", None), "id", 0) in self.factories \
            or (getattr(recv, "id", None) == "self" and method in self.defs)

    @staticmethod
    def key(node) -> str | None:
        while isinstance(node, ast.Subscript) or (
                isinstance(node, ast.Attribute) and node.attr in ("forward", "__call__", "_call_impl")):
            node = node.value
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return "self." + node.attr
        return None

    def _cuda_sources(self) -> list[tuple[int, str, str, str]]:
        """Strings handed to load_inline/RawKernel (directly or by name), module-level string constants and
        any string that looks like CUDA: (first line, raw minus comments, minus strings, lowercase)."""
        passed, picked = set(), {}
        for n, *_ in self.nodes(ast.Call):
            if self.resolve(n.func) in BUILDERS:
                for arg in [*n.args, *(k.value for k in n.keywords)]:
                    passed.update(s.id for s in ast.walk(arg) if isinstance(s, ast.Name))
                    picked.update((id(s), s) for s in _strings(arg))
        for n, fn, _, _ in self.nodes(ast.Assign, ast.AnnAssign):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if n.value is not None and (fn is None or any(getattr(t, "id", None) in passed for t in targets)):
                picked.update((id(s), s) for s in _strings(n.value))
        for n, *_ in self.nodes(ast.Constant):
            if isinstance(n.value, str) and re.search(r"__global__|#include|extern \"C\"", n.value):
                picked[id(n)] = n
        out = []
        for s in (s for k, s in picked.items() if k not in self.docstrings):
            raw = C_COMMENT.sub(_blank, _text(s)) if "/" in _text(s) else _text(s)
            out.append((s.lineno, raw, C_STRING.sub(_blank, raw) if '"' in raw else raw, raw.lower()))
        return out

    def add(self, rule_id: str, line: int, what: str):
        self.found.setdefault(rule_id, []).append((line, what))

    def _generic(self):
        """Findings from the tables: imports, resolved names, builtins, attributes, constants, CUDA."""
        add = self.add
        for n, name, _ in self.imports():
            if (rid := _import_rule(name)):
                add(rid, n.lineno, f"import of `{name}`")
        for n, fn, code, cls in self.nodes(ast.Name, ast.Attribute):
            p = self.parent.get(n)
            if not (isinstance(p, ast.Attribute) and p.value is n) and (d := self.resolve(n)):
                for rid, pred in REF_RULES:
                    if pred(d):
                        add(rid, n.lineno, f"`{d}`")
            name = getattr(n, "id", None) or n.attr
            rid = (NAME_RULES if isinstance(n, ast.Name) else ATTR_RULES).get(name)
            if rid and (name == "Model" or name not in self.aliases) and not (cls and cls.name == name == "Model"):
                add(rid, n.lineno, f"`{name}`")
            if HARNESS_NAME.match(name):
                add("harness-tampering", n.lineno, f"`{name}`")
        for n, *_ in self.nodes(ast.Constant, ast.FunctionDef, ast.ClassDef, ast.alias):
            name = n.value if isinstance(n, ast.Constant) else n.name
            if isinstance(name, str) and id(n) not in self.docstrings:
                if name == "Model" and not isinstance(n, ast.ClassDef):
                    add("reference-delegation", n.lineno, "`Model`")
                if HARNESS_NAME.match(name):
                    add("harness-tampering", n.lineno, f"`{name}`")
                if isinstance(n, ast.Constant) and re.search(r"\bpip3? install\b", name):
                    add("system-access", n.lineno, "a `pip install` string")
        self._scan_cuda()
        if self.half_task:
            self.found.pop("precision", None)

    def _scan_cuda(self):
        for rid, rx, needles in CUDA_RULES:
            for line, raw, bare, low in self.cuda:
                if any(k in low for k in needles):
                    text = raw if "#include" in rx.pattern[:9] or rid == "precision" else bare
                    for m in rx.finditer(text):
                        self.add(rid, line + text.count("\n", 0, m.start()), f"`{m.group(0).strip()}` in CUDA/C++ source")

    def tensorish(self, node, fn) -> bool:
        """Is `node` (inside function fn) most likely a tensor? Forward parameters and what torch returns."""
        if isinstance(node, ast.Name):
            return node.id in self._tensor_names(fn)
        if isinstance(node, ast.Subscript):
            return self.tensorish(node.value, fn)
        if isinstance(node, ast.BinOp):
            return self.tensorish(node.left, fn) or self.tensorish(node.right, fn)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if (d := self.resolve(node.func)):
                return d.startswith("torch.") and (d.rpartition(".")[2] in CREATORS or compute_kind(d) is not None)
            return (node.func.attr in TENSOR_METHODS and self.tensorish(node.func.value, fn)) \
                or _norm(node.func.attr) in COMPUTE
        return False

    def _tensor_names(self, fn) -> set[str]:
        if fn is None:
            return set()
        if fn not in self._tnames:
            names = self._tnames[fn] = {a.arg for a in fn.args.args[1:]} if fn.name == "forward" else set()
            assigns = [n for n, f, *_ in self.nodes(ast.Assign) if f is fn]
            for n in assigns + assigns:
                if self.tensorish(n.value, fn):
                    names.update(t.id for t in n.targets if isinstance(t, ast.Name))
        return self._tnames[fn]


# --- rules ----------------------------------------------------------------------------
@rule("torch-compute", "reject",
      "PyTorch/CuPy library ops do the task's work instead of your kernel, so the speedup measures the library",
      "implement that computation in your own __global__ kernel (torch.empty*, .contiguous(), .view/.reshape and "
      "shape queries are fine; nn modules may be built in __init__ to hold weights, but pass their .weight/.bias "
      "to your kernel instead of calling them)")
def torch_compute(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.recs:
        if not isinstance(n, (ast.BinOp, ast.Name, ast.Attribute, ast.Call)) or not ctx.in_runtime(code, cls):
            continue
        if isinstance(n, ast.BinOp):
            if isinstance(n.op, ast.MatMult):
                yield n.lineno, f"`@` operator in {_snip(n)}"
        elif not isinstance(n, ast.Call):
            p = ctx.parent.get(n)
            if not (isinstance(p, ast.Attribute) and p.value is n) and compute_kind(d := ctx.resolve(n)) == "reject":
                yield n.lineno, f"`{d}`"
        elif compute_kind(d := ctx.resolve(n)) == "reject":  # getattr(torch, "tanh")
            yield n.lineno, f"`{d}`"
        elif (k := ctx.key(n.func)) in ctx.holders:
            yield n.lineno, f"call of `{k}` (a torch module/function set up outside forward)"
        elif isinstance(n.func, ast.Attribute) and ctx.resolve(n.func.value) is None and _norm(n.func.attr) in COMPUTE \
                and not ctx.own_code(n.func.value, n.func.attr) \
                and not (n.func.attr == "sort" and isinstance(ctx.parent.get(n), ast.Expr)):  # list.sort()
            yield n.lineno, f"tensor method {_snip(n.func)}"


rule("cublas-cudnn", "reject", "cuBLAS/cuDNN/ATen ops called from C++ do the work instead of your kernel",
     "write the GEMM/convolution/reduction yourself in a __global__ kernel; in C++ only allocate (torch::empty, "
     "empty_like, zeros), check inputs and launch your kernels")(lambda ctx: ())


@rule("fallback", "reject",
      "a try/except around the kernel path hides failures and can silently fall back to another implementation",
      "remove try/except (and contextlib.suppress) from forward and the functions it calls; let errors surface")
def fallback(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.nodes(*{ast.Try, getattr(ast, "TryStar", ast.Try)}, ast.withitem):
        if not ctx.in_runtime(code, cls):
            continue
        if not isinstance(n, ast.withitem):
            yield n.lineno, "`try` statement in forward or a function it calls"
        elif ctx.resolve(getattr(n.context_expr, "func", n.context_expr)) == "contextlib.suppress":
            yield n.context_expr.lineno, "`contextlib.suppress`"


rule("reference-delegation", "reject",
     "the candidate must not reach the reference Model, the task module or other live objects",
     "compute the result with your own kernel; do not subclass or look up `Model`, stack frames, gc, globals() "
     "or sys.modules")(lambda ctx: ())


@rule("streams-threads", "reject",
      "work on side streams, threads or processes escapes the timer, and cache-policy changes skew timing",
      "launch everything on torch.cuda.current_stream() from the calling thread (CuPy: "
      "`with cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):`)")
def streams_threads(ctx: Ctx) -> Finding:
    for n, *_ in ctx.nodes(ast.Call):
        d = ctx.resolve(n.func) or ""
        last = d.rpartition(".")[2]
        if d.startswith(("torch.", "cupy.")) and last in ("Stream", "ExternalStream", "stream", "set_stream") and (
                last == "Stream" or not any("current_stream" in (getattr(s, "attr", 0), getattr(s, "id", 0)) for s in ast.walk(n))):
            yield n.lineno, f"{_snip(n)} (a stream other than torch's current one)"


@rule("harness-tampering", "reject",
      "changing torch, timer, builtins or harness state alters how the reference and the timer behave",
      "leave torch/time/sys/builtins settings and attributes alone; only define ModelNew and your kernels")
def harness_tampering(ctx: Ctx) -> Finding:
    for n, *_ in ctx.nodes(ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete):
        for t in getattr(n, "targets", None) or [n.target]:
            while isinstance(t, ast.Subscript):
                t = t.value
            if isinstance(t, ast.Attribute) and (d := ctx.resolve(t.value)) and d.split(".")[0] != "os":
                yield n.lineno, f"assignment to {_snip(t)}"
    for n, *_ in ctx.nodes(ast.Call):
        if getattr(n.func, "id", None) in ("setattr", "delattr") and n.args and ctx.resolve(n.args[0]):
            yield n.lineno, _snip(n)


@rule("dynamic-code", "reject", "code built or decoded at run time cannot be screened",
      "write plain Python and plain CUDA source strings; no exec/eval/compile/__import__/importlib/ctypes")
def dynamic_code(ctx: Ctx) -> Finding:
    for n, *_ in ctx.nodes(ast.Call):
        if getattr(n.func, "id", None) in ("getattr", "setattr", "hasattr") and len(n.args) >= 2 \
                and not isinstance(n.args[1], ast.Constant) and ctx.resolve(n.args[0]):
            yield n.lineno, f"{_snip(n)} with a computed attribute name"


@rule("system-access", "reject",
      "files, environment, processes and network are outside the task and can leak or tamper with results",
      "remove file/OS/network access and process exits; pass CUDA source as strings to load_inline or cupy.RawKernel")
def system_access(ctx: Ctx) -> Finding:
    for n, *_ in ctx.nodes(ast.Raise):
        if getattr(getattr(n.exc, "func", n.exc), "id", None) in ("SystemExit", "KeyboardInterrupt", "BaseException"):
            yield n.lineno, f"{_snip(n)} (ends the process)"
    for n, *_ in ctx.nodes(ast.Call):
        if ctx.resolve(n.func) == "cupy.RawModule" and any(k.arg == "path" for k in n.keywords):
            yield n.lineno, "`cupy.RawModule(path=...)` loading a prebuilt binary"


@rule("no-kernel", "reject", "the candidate contains no CUDA kernel (no __global__ function, no load_inline/RawKernel)",
      "write a CUDA kernel and build it with torch.utils.cpp_extension.load_inline or cupy.RawKernel")
def no_kernel(ctx: Ctx) -> Finding:
    if not any("__global__" in raw for _, raw, _, _ in ctx.cuda) and \
            not any(ctx.resolve(n.func) in BUILDERS for n, *_ in ctx.nodes(ast.Call)):
        yield 1, "no `__global__` function and no load_inline/RawKernel call anywhere in the file"


@rule("precision", "warn", "lower precision may fail tolerance (the task computes in fp32)",
      "keep fp32 inputs, accumulation and outputs unless the task itself uses half types")
def precision(ctx: Ctx) -> Finding:
    for n, *_ in ctx.nodes(ast.Call) if not ctx.half_task else ():
        if isinstance(n.func, ast.Attribute) and n.func.attr in ("half", "bfloat16") and not n.args:
            yield n.lineno, f"{_snip(n.func)} conversion"


@rule("hardcoded-shape", "warn", "shapes are hard-coded; fine for this task but fragile",
      "read sizes from the tensors (x.size(i)) and pass them to the kernel (ignore this for tile/block sizes)")
def hardcoded_shape(ctx: Ctx) -> Finding:
    sizes = _task_sizes(ctx.task_source)
    for line, _, bare, _ in ctx.cuda if sizes else ():
        for m in C_INT.finditer(bare):
            if int(m.group(1)) in sizes:
                yield line + bare.count("\n", 0, m.start()), f"literal {m.group(1)} (a task dimension)"


@functools.lru_cache(maxsize=64)
def _task_sizes(src: str | None) -> frozenset[int]:
    try:
        tree = ast.parse(src or "")
    except (SyntaxError, ValueError):
        return frozenset()
    consts = [n.value for n in tree.body if isinstance(n, ast.Assign)] + [
        n for f in tree.body if getattr(f, "name", "") in ("get_inputs", "get_init_inputs") for n in ast.walk(f)]
    return frozenset(n.value for n in consts if isinstance(n, ast.Constant) and type(n.value) is int and n.value >= 64)


@rule("tensor-glue", "warn", "elementwise PyTorch ops in forward launch extra kernels and extra memory passes",
      "fuse the arithmetic into your CUDA kernel")
def tensor_glue(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.nodes(ast.BinOp, ast.AugAssign, ast.Call):
        if not ctx.in_runtime(code, cls):
            continue
        if isinstance(n, ast.Call):
            d = ctx.resolve(n.func) if isinstance(n.func, ast.Attribute) else "-"
            if compute_kind(d) == "warn" or (d is None and _norm(n.func.attr) in GLUE and ctx.tensorish(n.func.value, fn)):
                yield n.lineno, f"elementwise op {_snip(n.func)}"
        elif not isinstance(ctx.parent.get(n), ast.BinOp) and not isinstance(
                n.op, (ast.MatMult, ast.BitAnd, ast.BitOr, ast.LShift, ast.RShift)) and any(
                ctx.tensorish(s, fn) for s in ((n.target, n.value) if isinstance(n, ast.AugAssign) else (n.left, n.right))):
            yield n.lineno, f"tensor arithmetic {_snip(n)}"


@rule("print", "warn", "printing in forward is slow and pollutes timing", "remove print() from forward")
def print_in_forward(ctx: Ctx) -> Finding:
    for n, fn, code, cls in ctx.nodes(ast.Call):
        if getattr(n.func, "id", None) == "print" and ctx.in_runtime(code, cls):
            yield n.lineno, "`print()`"


@rule("suspicious-import", "warn", "correct candidates do not need this module",
      "import only torch, cupy, math and the like")
def suspicious_import(ctx: Ctx) -> Finding:
    for n, name, a in ctx.imports():
        if (a is None or isinstance(n, ast.Import)) and _import_rule(name) is None and name.split(".")[0] not in QUIET_IMPORTS:
            yield n.lineno, f"import of `{name}`"


# --- entry point ----------------------------------------------------------------------
def _format(r: Rule, hits: list[tuple[int, str]]) -> str:
    where = ", ".join(f"{what} at line {line}" for line, what in hits[:4])
    more = f" (and {len(hits) - 4} more)" if len(hits) > 4 else ""
    return f"{r.id}: {where}{more}; {r.why}; {r.fix}"


def _format_problem(ctx: Ctx) -> str | None:
    cls = next((n for n, *_ in ctx.nodes(ast.ClassDef) if n.name == "ModelNew"), None)
    if cls is None and not any(getattr(n, "id", None) == "ModelNew" and isinstance(n.ctx, ast.Store)
                               for n, *_ in ctx.nodes(ast.Name)) and "ModelNew" not in ctx.aliases:
        return "no `class ModelNew` found; define `class ModelNew(nn.Module)` with a forward() method"
    if cls and all(ast.unparse(b).endswith("Module") for b in cls.bases) and not any(
            getattr(f, "name", "") == "forward" for f in cls.body):
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
    except (ValueError, RecursionError, MemoryError) as e:
        return done(False, ErrorClass.SYNTAX, f"cannot parse the file ({type(e).__name__}: {e}); submit plain Python")
    try:
        ctx = Ctx(tree, task_source)
        problem = _format_problem(ctx)
        rejects, warnings = {}, []
        for r in RULES:
            if (hits := sorted(set(ctx.found.get(r.id, [])) | set(r.check(ctx)))):
                if r.severity == "reject":
                    rejects[r.id] = _format(r, hits)
                else:
                    warnings.append(_format(r, hits))
    except RecursionError:
        return done(False, ErrorClass.FORMAT, "the code is nested too deeply to screen; simplify its expressions")
    if problem and set(rejects) <= {"no-kernel"}:  # a missing ModelNew says more than a missing kernel
        return done(False, ErrorClass.FORMAT, problem, warnings)
    if rejects:
        lines = list(rejects.values()) + ([f"format: {problem}"] if problem else [])
        return done(False, ErrorClass.STATIC_RULE, "\n".join(lines), warnings)
    return done(True, warnings=warnings)
