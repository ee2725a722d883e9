"""Loading task and candidate modules inside a sandboxed child.

Candidates build their kernels at import time (KernelBench's `load_inline` at module
level, or CuPy's `RawKernel`). The loader wraps both entry points so that:
- `load_inline` always builds into the build directory the orchestrator chose (keyed by
  a hash of source, arch and torch version), never a shared or candidate-chosen one;
- every CUDA source a candidate hands to either backend is recorded, so the compile
  stage can report which backend was used and the runtime can tell whether the
  candidate's own kernels ran.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Capture:
    """What a candidate handed to the CUDA backends while it was being imported."""

    inline: list[dict] = field(default_factory=list)  # load_inline(...) keyword arguments
    cupy: list[dict] = field(default_factory=list)  # {"code", "name", "options"}
    pycuda: list[dict] = field(default_factory=list)  # SourceModule(...): {"code", "options"}
    # Python-level kernels found in the candidate's namespace after its import: name lists
    triton: list[str] = field(default_factory=list)  # @triton.jit (also under autotune/heuristics)
    numba: list[str] = field(default_factory=list)  # @numba.cuda.jit

    @property
    def backend(self) -> str:
        used = [name for name, recs in (("load_inline", self.inline), ("cupy", self.cupy), ("pycuda", self.pycuda),
                                        ("triton", self.triton), ("numba", self.numba)) if recs]
        return "+".join(used) if used else "none"

    def scan(self, module: types.ModuleType) -> None:
        """Record the Triton and Numba kernels a module defines (at its top level or in its
        classes): their names are what the profiler lists, so the candidate's own work can
        be told from a framework's."""
        seen: set[int] = set()
        values = list(vars(module).values())
        for v in list(values):
            if isinstance(v, type) and v.__module__ == module.__name__:
                values.extend(vars(v).values())
        for v in values:
            if id(v) in seen:
                continue
            seen.add(id(v))
            kind, name = kernel_kind(v)
            if kind == "triton" and name not in self.triton:
                self.triton.append(name)
            elif kind == "numba" and name not in self.numba:
                self.numba.append(name)


def kernel_kind(obj: Any) -> tuple[str, str]:
    """("triton" | "numba", kernel name) for a JIT-compiled GPU kernel object, else ("", "")."""
    mod = type(obj).__module__ or ""
    if mod.startswith("triton"):
        fn = obj
        for _ in range(4):  # Autotuner -> Heuristics -> JITFunction -> the Python function
            inner = getattr(fn, "fn", None)
            if inner is None:
                break
            fn = inner
        name = getattr(fn, "__name__", None)
        return ("triton", name) if isinstance(name, str) and fn is not obj else ("", "")
    if mod.startswith(("numba.cuda", "numba_cuda")):
        py = getattr(obj, "py_func", None)
        name = getattr(py, "__name__", None)
        return ("numba", name) if isinstance(name, str) else ("", "")
    return "", ""


def load_module(path: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def patch_load_inline(build_dir: str, capture: Capture, builder=None, pch_root: str | None = None,
                      build_log=None, fast: bool | None = None) -> None:
    """Route every load_inline / load call into `build_dir`, built the fast way the
    sources allow (kernelsmith.harness.build: light layout, precompiled header), the
    way the candidate wrote it otherwise.

    `builder`, when given, replaces the real build (used for compile-only checks on a
    machine whose torch has no CUDA); it receives the call's keyword arguments and the
    directory to build in. `pch_root`: where the precompiled headers are (read only).
    fast=False builds every call as written (what plain load_inline does).
    """
    import inspect

    import torch.utils.cpp_extension as cpp

    from kernelsmith.harness.build.inline import build_inline, supports_no_implicit_headers

    real_inline = cpp.load_inline
    try:
        params = inspect.signature(real_inline)
    except (TypeError, ValueError):
        params = None
    if fast is None:
        fast = builder is not None or supports_no_implicit_headers(real_inline)

    def load_inline(name, cpp_sources, cuda_sources=None, *args, **kwargs):
        kwargs.pop("build_directory", None)
        kwargs["verbose"] = False
        if args and params is not None:  # positional arguments past cuda_sources, by this torch's order
            bound = params.bind_partial(name, cpp_sources, cuda_sources, *args)
            kwargs.update({k: v for k, v in bound.arguments.items() if k not in ("name", "cpp_sources", "cuda_sources")})
            args = ()
        record = dict(name=name, cpp_sources=cpp_sources, cuda_sources=cuda_sources, **kwargs)
        capture.inline.append(record)
        target = os.path.join(build_dir, _safe(name))
        os.makedirs(target, exist_ok=True)
        if args:  # a signature we could not read: exactly the candidate's call
            return real_inline(name, cpp_sources, cuda_sources, *args, build_directory=target, **kwargs)

        def call(kw: dict, where: str):
            if builder is not None:
                return builder(kw, where)
            return real_inline(**kw, build_directory=where)

        return build_inline(call, record, target, pch_root=pch_root, log=build_log, fast=fast)

    cpp.load_inline = load_inline


def patch_cupy(capture: Capture, cupy_module: Any) -> None:
    """Record the source of every RawKernel / RawModule a candidate creates."""
    real_kernel, real_module = cupy_module.RawKernel, cupy_module.RawModule

    # Plain functions rather than subclasses: CuPy's classes are Cython types.
    def RawKernel(code, name, options=(), *args, **kwargs):
        capture.cupy.append({"code": code, "name": name, "options": list(options)})
        return real_kernel(code, name, options, *args, **kwargs)

    def RawModule(code=None, *args, options=(), **kwargs):
        capture.cupy.append({"code": code, "name": None, "options": list(options)})
        return real_module(code, *args, options=options, **kwargs)

    cupy_module.RawKernel = RawKernel
    cupy_module.RawModule = RawModule


def patch_pycuda(capture: Capture) -> None:
    """Record the source of every PyCUDA SourceModule (where PyCUDA is installed)."""
    try:
        import pycuda.compiler as compiler
    except Exception:  # noqa: BLE001 - not installed (no wheel exists; docs/languages.md)
        return
    real = compiler.SourceModule

    def SourceModule(source, *args, **kwargs):
        capture.pycuda.append({"code": source, "options": list(kwargs.get("options") or [])})
        return real(source, *args, **kwargs)

    compiler.SourceModule = SourceModule


def numpy_compat() -> None:
    """numba-cuda (0.30, the newest) registers an overload for np.row_stack, which NumPy
    2.5 removed: its first kernel compile then fails with AttributeError (seen on the H200
    machine: numpy 2.5.2). The alias NumPy itself documented (row_stack is vstack) is put
    back before the candidate loads, so the surface's baseline includes it."""
    try:
        import numpy
    except ImportError:
        return
    if not hasattr(numpy, "row_stack") and hasattr(numpy, "vstack"):
        numpy.row_stack = numpy.vstack


def stub_cupy(capture: Capture) -> types.ModuleType:
    """A stand-in `cupy` for compile-only checks where CuPy cannot be imported.

    It records kernel sources; anything that would run on a GPU raises.
    """
    mod = types.ModuleType("cupy")

    class _Raw:
        def __init__(self, code=None, name=None, options=(), *args, **kwargs):
            capture.cupy.append({"code": code, "name": name, "options": list(options)})

        def __call__(self, *a, **k):
            raise RuntimeError("compile-only mode: kernels cannot be launched")

        def get_function(self, name):
            return self

    def _no_gpu(*a, **k):
        raise RuntimeError("compile-only mode: no GPU")

    mod.RawKernel = _Raw  # type: ignore[attr-defined]
    mod.RawModule = _Raw  # type: ignore[attr-defined]
    mod.__getattr__ = lambda name: _no_gpu  # type: ignore[attr-defined]
    sys.modules["cupy"] = mod
    return mod


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))[:64] or "ext"
