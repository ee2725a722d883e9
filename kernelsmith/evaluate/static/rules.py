"""Rules of the static screen. `RULES` holds one `Rule` per id, in the order their messages
are reported: severity ("reject" fails the candidate, "warn" is passed on to the model), the
why and the fix shown to the model, and a check yielding findings beyond the generic tables
(the tables' findings are already in `Ctx.found`). Every finding is `(line, what)`.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from kernelsmith.evaluate.static.context import Ctx
from kernelsmith.evaluate.static.vocab import (
    BUILDERS, C_INT, COMPUTE, GLUE, KERNEL_DECORATORS, QUIET_IMPORTS, compute_kind, import_rule_id, op_name,
)

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


def _snip(node: ast.AST) -> str:
    """The offending code, shortened to fit in a one-line finding."""
    s = ast.unparse(node)
    return f"`{s if len(s) <= 50 else s[:47] + '...'}`"


# Registration order is the order of the messages in a rejection and of the warnings.
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
        elif isinstance(n.func, ast.Attribute) and ctx.resolve(n.func.value) is None and op_name(n.func.attr) in COMPUTE \
                and not ctx.own_code(n.func.value, n.func.attr) \
                and not (n.func.attr == "sort" and isinstance(ctx.parent.get(n), ast.Expr)):  # list.sort()
            yield n.lineno, f"tensor method {_snip(n.func)}"


# cublas-cudnn and reference-delegation have no check of their own: the CUDA regexes and the
# name tables (vocab.py) find everything they report.
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
    # CuPy's raw stream API (a handle for driver.launchKernel): timing keeps the GPU busy
    # for 2 ms before each timed call, and work on a stream not ordered after that would
    # run hidden behind it
    for n, *_ in ctx.nodes(ast.Attribute, ast.Name):
        d = ctx.resolve(n) or ""
        api, _, name = d.rpartition(".")
        if (api in ("cupy.cuda.runtime", "cupy.cuda.driver") and re.fullmatch(r"stream(?:Create\w*|PerThread)", name)
                or d.endswith("Stream.ptds")):
            yield n.lineno, f"`{d}` (a stream other than torch's current one)"


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
        # type.__setattr__(torch.Tensor, ...), object.__setattr__(...): setattr by another name
        elif getattr(n.func, "attr", None) in ("__setattr__", "__delattr__") and n.args and ctx.resolve(n.args[0]):
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
            not any(ctx.resolve(n.func) in BUILDERS for n, *_ in ctx.nodes(ast.Call)) and not _jit_kernels(ctx):
        yield 1, ("no `__global__` function, no load_inline/RawKernel/SourceModule call and no @triton.jit or "
                  "@numba.cuda.jit kernel anywhere in the file")


def _jit_kernels(ctx: Ctx) -> list[str]:
    """Functions decorated as Triton or Numba GPU kernels (`@triton.jit`, `@cuda.jit(...)`)."""
    out = []
    for n, *_ in ctx.nodes(ast.FunctionDef):
        for d in n.decorator_list:
            if ctx.resolve(d.func if isinstance(d, ast.Call) else d) in KERNEL_DECORATORS:
                out.append(n.name)
    return out


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
            if compute_kind(d) == "warn" or (d is None and op_name(n.func.attr) in GLUE and ctx.tensorish(n.func.value, fn)):
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
        if (a is None or isinstance(n, ast.Import)) and import_rule_id(name) is None and name.split(".")[0] not in QUIET_IMPORTS:
            yield n.lineno, f"import of `{name}`"
