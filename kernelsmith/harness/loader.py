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

    @property
    def backend(self) -> str:
        if self.inline and self.cupy:
            return "load_inline+cupy"
        return "load_inline" if self.inline else ("cupy" if self.cupy else "none")


def load_module(path: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def patch_load_inline(build_dir: str, capture: Capture, builder=None) -> None:
    """Route every load_inline / load call into `build_dir`.

    `builder`, when given, replaces the real build (used for compile-only checks on a
    machine whose torch has no CUDA); it receives the call's keyword arguments.
    """
    import torch.utils.cpp_extension as cpp

    real_inline = cpp.load_inline

    def load_inline(name, cpp_sources, cuda_sources=None, *args, **kwargs):
        kwargs.pop("build_directory", None)
        kwargs["verbose"] = False
        record = dict(name=name, cpp_sources=cpp_sources, cuda_sources=cuda_sources, **kwargs)
        capture.inline.append(record)
        target = os.path.join(build_dir, _safe(name))
        os.makedirs(target, exist_ok=True)
        if builder is not None:
            return builder(record, target)
        return real_inline(name, cpp_sources, cuda_sources, *args, build_directory=target, **kwargs)

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
