"""How a fast build's functions reach Python: pybind11 (what load_inline writes) or torch's
dispatcher (TORCH_LIBRARY, loaded with torch.ops.load_library).

Why: with the slim header precompiled, most of main.cpp's remaining seconds are pybind11's
templates and torch's type casters (torch/csrc/utils/pybind.h), instantiated in every unit.
Registering the same functions as operators needs only torch/library.h: on GCC 12 with two
cores, main.cpp of a one-function wrapper took 4.4 s user with the slim header (pybind11)
and 2.1 s with torch/types.h + torch/library.h precompiled (docs/builds.md).

Only for functions whose C++ signature the dispatcher takes as written (tensors, double,
int64_t, bool in; tensors, a vector or tuple of tensors, or nothing out), declared once:
a `float` or `int` parameter (which pybind11 converts and schema inference refuses), an
overload, a non-const reference keep the pybind11 binding. The candidate calls
`_ext.fn(...)` either way: the module returned holds the operators under the same names.

Off unless KERNELSMITH_OPS_BINDING=1 (the sandboxes pass it to jobs): the orchestrator then
builds the header this binding uses, and a job takes the binding where that header is
ready. Off by default until it has been measured on a GPU machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import types

from kernelsmith.harness.build.layout import strip_comments

OPS, PYBIND = "ops", "pybind"

_TENSOR = r"(?:(?:torch|at)\s*::\s*)?Tensor"
_PARAM = re.compile(
    rf"^(?:const\s+{_TENSOR}\s*&|{_TENSOR}|(?:const\s+)?(?:double|(?:std\s*::\s*)?int64_t|bool))"
    r"\s*(?:[A-Za-z_]\w*)?\s*$")
_RETURN = re.compile(
    rf"^(?:{_TENSOR}|void|std\s*::\s*vector\s*<\s*{_TENSOR}\s*>"
    rf"|std\s*::\s*tuple\s*<\s*{_TENSOR}(?:\s*,\s*{_TENSOR})*\s*>)$")


def enabled() -> bool:
    return os.environ.get("KERNELSMITH_OPS_BINDING", "").lower() in ("1", "true", "yes", "on")


def function_names(functions) -> list[str] | None:
    if isinstance(functions, str):
        return [functions]
    if isinstance(functions, dict):
        return [str(k) for k in functions]
    if isinstance(functions, (list, tuple)):
        return [str(f) for f in functions]
    return None


def _signatures(src: str, name: str) -> list[tuple[str, str]]:
    """(return type, parameter list) of every declaration or definition of `name`."""
    pat = re.compile(rf"(?:^|[;{{}}\n])\s*(?:(?:inline|static|extern)\s+)*([A-Za-z_][\w:\s<>,]*?)\s*\b{re.escape(name)}"
                     r"\s*\(([^()]*)\)\s*(?:noexcept\s*)?[;{]")
    return [(" ".join(r.split()), p.strip()) for r, p in pat.findall(src)]


def _arity(params: str) -> int | None:
    """How many parameters, or None when one of them is not a type the dispatcher takes."""
    if params in ("", "void"):
        return 0
    parts = [" ".join(p.split("=")[0].split()) for p in params.split(",")]  # a C++ default goes unused
    return len(parts) if all(_PARAM.match(p) for p in parts) else None


def bindable(record: dict) -> bool:
    """Whether every function of this load_inline call can be an operator as written."""
    names = function_names(record.get("functions"))
    if not names or len(set(names)) != len(names) or record.get("is_python_module") is False:
        return False
    srcs = record.get("cpp_sources"), record.get("cuda_sources")
    text = "\n".join(strip_comments(s if isinstance(s, str) else "\n".join(map(str, s)))
                     for s in srcs if s)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            return False
        sigs = _signatures(text, name)
        if not sigs:
            return False
        arities = {_arity(params) for _, params in sigs}
        if None in arities or not all(_RETURN.match(ret) for ret, _ in sigs):
            return False
        if len(arities) != 1 or len(sigs) > 2:  # overloads, or more than a declaration and a definition
            return False
    return True


def namespace(record: dict, cpp: list[str], cuda: list[str]) -> str:
    """An operator namespace of this build alone (two candidates' extensions of one name in
    one process must not register the same one)."""
    digest = hashlib.sha256("\0".join([str(record.get("name")), *cpp, "\1", *cuda]).encode()).hexdigest()[:12]
    return "ks_" + re.sub(r"\W", "_", str(record.get("name")))[:40] + "_" + digest


def registration(ns: str, names: list[str]) -> str:
    defs = "\n".join(f'  m.def("{n}", &{n});' for n in names)
    return (f"\n// kernelsmith: the functions as torch operators (harness/build/binding.py)\n"
            f"TORCH_LIBRARY({ns}, m) {{\n{defs}\n}}\n")


def registered_namespace(cpp_sources: list[str]) -> str:
    """The namespace `registration` wrote into a rewritten call's C++ sources."""
    return re.search(r"TORCH_LIBRARY\((\w+),", cpp_sources[-1]).group(1)


def module(result, ns: str, names: list[str], name: str):
    """What load_inline hands the candidate: a module of the operators. `result` is the
    library's path (load_inline with is_python_module=False has loaded it), or a builder's
    stand-in, returned as is."""
    if not isinstance(result, str):
        return result
    import torch

    mod = types.ModuleType(name)
    mod.__file__ = result
    packet = getattr(torch.ops, ns)
    for n in names:
        setattr(mod, n, getattr(packet, n))
    return mod
