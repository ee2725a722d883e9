"""The interpreter state the reference, the input generator and the checker run on.

A candidate runs in the same interpreter as the reference (paired timing on one CUDA
context is what makes speedups reproducible to ~1%), so anything it can reach it can
change: an op the reference calls, nn.Module's call machinery, a dispatcher kernel, a
mode stack, a numerics flag, the checker's own functions and settings. Listing what to
watch misses whatever the list forgot, so the surface is *everything*: every module
loaded before the candidate, every class those modules hold, every Python function's
code, plus probes for state that lives outside namespaces (dispatcher registrations of
the ops the reference uses, mode stacks, flags, the environment, the reference model).

`Surface.capture()` records it before the candidate is imported; `diff()` lists what
changed. The fork server captures once before forking (a child pays only for a diff),
and a child `rebase()`s after its own warm-up, before the candidate loads, so changes
made by torch and the harness themselves are not blamed on the candidate.
"""

from __future__ import annotations

import builtins
import operator
import os
import re
import sys
import types
import warnings
from typing import Any, Callable

_DATA = (bool, int, float, complex, str, bytes, type(None), tuple, list, dict, set, frozenset)
_SKIP_MODULES = ("__main__", "__mp_main__", "ks_candidate")
# Outside the surface: torch.compile's stack, distributed, quantization, export and the
# symbolic maths under them. Eager reference code and the checker never run them, and
# they hold most of the interpreter's namespaces (a third of the cost of a verification
# each); docs/guarantees.md lists this as an assumption.
_SKIP_PREFIXES = tuple(p + "." for p in (
    "torch._dynamo", "torch._inductor", "torch.distributed", "torch.fx", "torch.ao", "torch.onnx", "torch._export",
    "torch.export", "torch._higher_order_ops", "torch._numpy", "torch._functorch", "torch.distributions",
    "torch.testing", "torch.utils.tensorboard", "torch._lazy", "torch.quantization", "torch.package",
    "torch.utils.benchmark", "torch._strobelight", "sympy", "mpmath", "networkx", "jinja2",
    # Triton: the candidate's own kernel language (torch imports parts of it before any
    # candidate). Eager torch ops never call it, and its driver fills lazy globals on a
    # kernel's first launch (triton.backends.nvidia.driver.PyCUtensorMap, seen on the H200)
    "triton",
    # colorama: terminal colours (numba's import wraps sys.stdout/err through it, filling
    # colorama.initialise's None slots); results leave through the job's pipe, not stdout
    "colorama"))
_SKIP_PREFIXES += tuple(p[:-1] for p in _SKIP_PREFIXES)  # the packages themselves
_IMMUTABLE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: attributes cannot be set, nothing to watch
# Modules whose plain data is checker state too (tolerances, thresholds, configs).
_STRICT = ("kernelsmith.", "ks_task")
# A class attribute added later matters when it shadows one it inherits, or hooks lookup.
_HOOKS = frozenset(("__getattr__", "__getattribute__", "__call__", "__torch_function__", "__torch_dispatch__",
                    "__init_subclass__", "__class_getitem__", "__set__", "__get__"))
_is = operator.is_
_BUILTINS = frozenset(builtins.__dict__)
_code = operator.attrgetter("__code__")
_defaults = operator.attrgetter("__defaults__")


def _torch_dir() -> str:
    import torch

    return os.path.dirname(torch.__file__) + os.sep


def _benign(old: Any, new: Any) -> bool:
    """torch rebinds some functions lazily to its own wrapper of the same function
    (torch.manual_seed gains a dynamo-disable wrapper on the profiler's first use).
    Accepted only when the wrapper's code is torch's and it wraps the very same object."""
    code = getattr(new, "__code__", None)
    return (getattr(new, "__wrapped__", None) is old and code is not None
            and code.co_filename.startswith(_torch_dir()))


def _strict(name: str) -> bool:
    return name.startswith(_STRICT) or name == "ks_task"


def _data_repr(value: Any) -> str:
    try:
        return repr(value)[:2000]
    except Exception as exc:  # noqa: BLE001
        return f"<unrepresentable {type(exc).__name__}>"


class Surface:
    def __init__(self) -> None:
        # name -> [module, its type, its dict's values in order, a copy of the dict, strict data]
        self.modules: dict[str, list] = {}
        self.classes: dict[int, list] = {}  # id -> [class, values in order, a copy of its dict]
        self.funcs: list[types.FunctionType] = []
        self.codes: list = []
        self.defaults: list = []
        self.probes: dict[str, tuple[Callable[[], Any], Any]] = {}

    # -- recording ------------------------------------------------------------------
    def capture(self) -> "Surface":
        """Record every module in sys.modules not yet recorded (and what it holds)."""
        seen_funcs = {id(f) for f in self.funcs}
        with warnings.catch_warnings():  # deprecated aliases warn when looked at
            warnings.simplefilter("ignore")
            for name, mod in list(sys.modules.items()):
                if name in self.modules or name in _SKIP_MODULES or not isinstance(mod, types.ModuleType) \
                        or name.startswith(_SKIP_PREFIXES):
                    continue
                d = getattr(mod, "__dict__", None)
                if not isinstance(d, dict):
                    continue
                self.modules[name] = _module_record(name, mod)
                for v in list(d.values()):
                    if isinstance(v, type):
                        self._add_class(v, seen_funcs)
                    elif type(v) is types.FunctionType and id(v) not in seen_funcs:
                        self._add_func(v, seen_funcs)
        return self

    def _add_class(self, cls: type, seen_funcs: set) -> None:
        if id(cls) in self.classes or cls.__flags__ & _IMMUTABLE:
            return
        try:
            snap = dict(cls.__dict__)
        except Exception:  # noqa: BLE001 - exotic metaclasses
            return
        self.classes[id(cls)] = [cls, list(snap.values()), snap]
        for v in snap.values():
            f = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
            if type(f) is types.FunctionType and id(f) not in seen_funcs:
                self._add_func(f, seen_funcs)

    def _add_func(self, f: types.FunctionType, seen: set) -> None:
        seen.add(id(f))
        self.funcs.append(f)
        self.codes.append(f.__code__)
        self.defaults.append(f.__defaults__)

    def probe(self, name: str, read: Callable[[], Any]) -> None:
        """Watch a value that lives outside namespaces (compared with ==)."""
        self.probes[name] = (read, _read(read))

    def rebase(self) -> None:
        """Accept the current state as the baseline (the candidate has not run yet): the
        entries that changed are re-recorded, new modules added. Costs about one diff."""
        for name, rec in self.modules.items():
            if not _module_same(rec) or rec[4]:
                self.modules[name] = _module_record(name, rec[0])
        for key, rec in self.classes.items():
            if not _class_same(rec):
                snap = dict(rec[0].__dict__)
                rec[1:] = [list(snap.values()), snap]
        if not self._funcs_same():
            self.codes = list(map(_code, self.funcs))
            self.defaults = list(map(_defaults, self.funcs))
        self.probes = {k: (read, _read(read)) for k, (read, _) in self.probes.items()}
        self.capture()

    # -- checking -------------------------------------------------------------------
    def _funcs_same(self) -> bool:
        return all(map(_is, self.codes, map(_code, self.funcs))) and \
            all(map(_is, self.defaults, map(_defaults, self.funcs)))

    def diff(self, limit: int = 8) -> list[str]:
        """What changed since the baseline: a list of short descriptions, empty if nothing."""
        out: list[str] = []
        for name, rec in self.modules.items():
            mod, mtype, _, snap, data = rec
            if type(mod) is not mtype:
                out.append(f"module {name} became a {type(mod).__name__}")
            if not _module_same(rec):
                out += _module_changes(name, snap, mod.__dict__)
            if len(mod.__dict__) > len(snap):
                out += _shadows(name, mod.__dict__, len(snap))
            if data:
                d = mod.__dict__
                out += [f"{name}.{k} changed" for k, r in data if _data_repr(d.get(k)) != r]
            if len(out) >= limit:
                return out[:limit]
        for rec in self.classes.values():
            if not _class_same(rec):
                out += _class_changes(rec[0], rec[2], rec[0].__dict__)
                if len(out) >= limit:
                    return out[:limit]
        if not self._funcs_same():
            out += [f"the code of {_qual(f)} was replaced" for f, c, dflt in zip(self.funcs, self.codes, self.defaults)
                    if f.__code__ is not c or f.__defaults__ is not dflt][:limit]
        for name, (read, value) in self.probes.items():
            if _read(read) != value:
                out.append(f"{name} changed")
        return out[:limit]


def _module_record(name: str, mod: types.ModuleType) -> list:
    snap = dict(mod.__dict__)
    data = [(k, _data_repr(v)) for k, v in snap.items()
            if isinstance(v, _DATA) and not k.startswith("__")] if _strict(name) else []
    return [mod, type(mod), list(snap.values()), snap, data]


def _module_same(rec: list) -> bool:
    """Nothing replaced or deleted: a dict keeps insertion order, so the recorded values
    are a prefix of today's (modules gain attributes as submodules are imported)."""
    d = rec[0].__dict__
    return len(d) >= len(rec[2]) and all(map(_is, rec[2], d.values()))


def _class_same(rec: list) -> bool:
    d = rec[0].__dict__
    return len(d) == len(rec[1]) and all(map(_is, rec[1], d.values()))


def _read(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - a deleted attribute is a change too
        return ("unreadable", type(exc).__name__)


def _module_changes(name: str, snap: dict, d: dict) -> list[str]:
    out = []
    for k, old in snap.items():
        new = d.get(k, _MISSING)
        if new is old or (isinstance(old, _DATA) and isinstance(new, _DATA) and not _strict(name)):
            continue
        if new is _MISSING:
            out.append(f"{name}.{k} was deleted")
        elif not _benign(old, new) and not _lazy(name, k, old, new, d):
            out.append(f"{name}.{k} was replaced")
    return out


def _shadows(name: str, d: dict, known: int) -> list[str]:
    """Names added to a module that shadow a builtin its code calls (`all`, `len`, ...):
    the module's functions would find them first. Submodules (a package's attributes
    appear as they are imported) are not shadows."""
    return [f"{name}.{k} was added, shadowing the builtin" for k in list(d)[known:]
            if k in _BUILTINS and not isinstance(d[k], types.ModuleType)]


# Library globals that are None until their first use creates an instance of the
# library's own class (module, global) -> that class's name in the same module. The
# class itself is watched like every other, so the instance is the library's.
_LAZY_INSTANCES = {("tempfile", "_name_sequence"): "_RandomNameSequence"}  # first mkstemp/mkdtemp


def _lazy(name: str, key: str, old: Any, new: Any, d: dict) -> bool:
    """A lazily created library object, not a replacement: a compiled regular expression
    (pkgutil._NAME_PATTERN: None until the first resolve_name) or one of _LAZY_INSTANCES."""
    if old is not None:
        return False
    if isinstance(new, re.Pattern):
        return True
    cls = _LAZY_INSTANCES.get((name, key))
    return cls is not None and type(new) is d.get(cls)


def _class_changes(cls: type, snap: dict, d) -> list[str]:
    out, where = [], f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
    strict = _strict(str(getattr(cls, "__module__", "")))  # the harness's own config classes
    for k, old in snap.items():
        new = d.get(k, _MISSING)
        if new is old or (isinstance(old, _DATA) and isinstance(new, _DATA) and not strict):
            continue
        out.append(f"{where}.{k} was {'deleted' if new is _MISSING else 'replaced'}")
    for k in d.keys() - snap.keys():
        v = d[k]
        if isinstance(v, _DATA):
            continue
        if k in _HOOKS or any(k in getattr(base, "__dict__", {}) for base in cls.__mro__[1:]):
            out.append(f"{where}.{k} was added, overriding the inherited one")
    return out


def _qual(f) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', '?')}"


_MISSING = object()


_PREFORK: Surface | None = None


def prefork() -> None:
    """Capture in the fork server, before any fork: each child inherits the record and
    pays only for a rebase (about one diff) instead of a capture."""
    global _PREFORK
    _PREFORK = Surface().capture()


def current() -> Surface:
    """The surface to watch in this process: the fork server's (rebased by the caller),
    or a fresh capture where there is none (a process started directly)."""
    global _PREFORK
    s, _PREFORK = _PREFORK, None  # one evaluation per child: no one else may reuse it
    return s if s is not None else Surface().capture()
