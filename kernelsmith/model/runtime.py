"""Runtime of installed kernels: a verified kernel as a torch.library custom op.

Imports only torch and the standard library: an exported package ships this very file
(kernelsmith.model.export copies it), so installed kernels run without kernelsmith.

`Kernel` wraps one verified candidate (`ModelNew` of its kernel file) for the one
signature it was verified at (input and parameter shapes and dtypes, on a CUDA device):
- called with exactly that signature, it makes the inputs contiguous (the task's inputs
  were), builds `ModelNew(*params)` once per set of parameter tensors (rebuilt when a
  parameter is replaced or changed in place) and runs it under no_grad;
- called with anything else it raises: a kernel is never run where it was not verified
  (the module that installed it checks its own inputs first and falls back to PyTorch).
`register(ns, name, kernel, n_args)` defines `torch.ops.<ns>.<name>(Tensor, ...) -> Tensor`
with that kernel and a fake (meta) implementation from the reference, so torch.compile and
FakeTensor tracing see the op's output shape.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import warnings
from pathlib import Path

import torch


def load_file(path: str | Path, name: str):
    """Import a Python file as a module (kernel languages such as Triton need a real file)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# Kernels run on the GPU they were verified on; tests of the plumbing set this to "cpu".
DEVICE_TYPE = "cuda"


def _sig(t) -> tuple:
    return (tuple(t.shape), str(t.dtype).replace("torch.", "")) if isinstance(t, torch.Tensor) else (None, None)


class Kernel:
    """A verified kernel for one signature; see the module docstring."""

    def __init__(self, name: str, kernel_path: str | Path, reference_path: str | Path,
                 inputs: list, params: list):
        self.name = name
        self.kernel_path, self.reference_path = Path(kernel_path), Path(reference_path)
        self.inputs = [tuple((tuple(s), d)) for s, d in inputs]  # [(shape, dtype name)]
        self.params = [tuple((tuple(s), d)) for s, d in params]
        self._mod = self._ref = None
        self._cache: dict = {}
        self._lock = threading.Lock()

    @property
    def n_args(self) -> int:
        return len(self.inputs) + len(self.params)

    def module(self):
        with self._lock:
            if self._mod is None:
                self._mod = load_file(self.kernel_path, f"ks_kernel_{self.name}")
            return self._mod

    def reference(self):
        with self._lock:
            if self._ref is None:
                self._ref = load_file(self.reference_path, f"ks_reference_{self.name}")
            return self._ref

    def matches(self, args) -> str:
        """'' when `args` are the verified signature on a CUDA device, else what differs."""
        if len(args) != self.n_args:
            return f"{len(args)} arguments, verified with {self.n_args}"
        for i, (a, want) in enumerate(zip(args, self.inputs + self.params)):
            if _sig(a) != want:
                return f"argument {i} is {_sig(a)}, verified at {want}"
            if a.device.type != DEVICE_TYPE:
                return f"argument {i} is on {a.device}; the kernel was verified on a CUDA device"
        return ""

    def __call__(self, *args):
        why = self.matches(args)
        if why:
            raise RuntimeError(f"kernelsmith kernel {self.name}: {why}; it runs only where it was verified")
        n = len(self.inputs)
        xs = [a.contiguous() for a in args[:n]]
        params = args[n:]
        key = tuple((p.data_ptr(), p._version, p.device.index) for p in params)
        inst = self._cache.get(key)
        if inst is None:
            inst = self.module().ModelNew(*params).to(xs[0].device).eval()
            self._cache = {key: inst}  # one live set of parameters per op
        with torch.no_grad():
            return inst(*xs)

    def fake(self, *args):
        """The output's metadata: the reference (pure PyTorch) run on fake tensors."""
        n = len(self.inputs)
        ref = self.reference().Model(*args[n:])
        return ref(*args[:n])


def _registry():
    """One registry per process, shared by every copy of this file (kernelsmith's own and each
    exported package's): an op defined by one copy is swapped, not defined again, by another."""
    import types

    reg = sys.modules.get("_kernelsmith_op_registry")
    if reg is None:
        reg = types.ModuleType("_kernelsmith_op_registry")
        reg.kernels, reg.libs, reg.lock = {}, {}, threading.Lock()
        reg = sys.modules.setdefault("_kernelsmith_op_registry", reg)
    return reg


_REG = _registry()
_KERNELS: dict[str, Kernel] = _REG.kernels
_LIBS: dict[str, object] = _REG.libs
_REG_LOCK = _REG.lock


def register(ns: str, name: str, kernel: Kernel):
    """torch.ops.<ns>.<name>.default running `kernel`. Registering the same name again (a
    notebook cell run twice) swaps the kernel behind the existing op."""
    qual = f"{ns}::{name}"
    with _REG_LOCK:
        _KERNELS[qual] = kernel
        if qual not in _LIBS:
            lib = torch.library.Library(ns, "FRAGMENT")  # noqa: TOR901 - kept alive in _LIBS
            args = ", ".join(f"Tensor a{i}" for i in range(kernel.n_args))
            lib.define(f"{name}({args}) -> Tensor")

            def impl(*a, _q=qual):
                return _KERNELS[_q](*a)

            def fake(*a, _q=qual):
                return _KERNELS[_q].fake(*a)

            lib.impl(name, impl, "CompositeExplicitAutograd")
            torch.library.register_fake(qual, fake, lib=lib)
            _LIBS[qual] = lib
    return getattr(getattr(torch.ops, ns), name).default


class Guarded(torch.nn.Module):
    """The optimized forward where the inputs are the verified ones (shapes, dtypes, one
    CUDA device), else the original module's own forward, with one warning."""

    def __init__(self, original: torch.nn.Module, forward, inputs: list, description: str = ""):
        super().__init__()
        self.original = original
        self._forward = forward
        self._inputs = [tuple((tuple(s), d)) for s, d in inputs]
        self._warned = False
        self.description = description

    def verified_for(self, args) -> bool:
        return not self.why_not(args)

    def why_not(self, args) -> str:
        """'' for the verified inputs, else how these differ."""
        if len(args) != len(self._inputs):
            return f"{len(args)} inputs, verified with {len(self._inputs)}"
        for i, (a, w) in enumerate(zip(args, self._inputs)):
            if _sig(a) != w:
                return f"input {i} is {_sig(a)}, verified at {w}"
            if a.device.type != DEVICE_TYPE:
                return f"input {i} is on {a.device}, not a CUDA device"
        return ""

    def forward(self, *args):
        why = self.why_not(args)
        if not why:
            return self._forward(*args)
        if not self._warned:
            self._warned = True
            warnings.warn(f"kernelsmith: {why}; running the original module (a kernel runs only where it was "
                          "verified)", stacklevel=2)
        return self.original(*args)

    def extra_repr(self) -> str:
        return self.description
