"""One load_inline call, built the fast way the sources allow, the heavy way otherwise.

`build_inline` rewrites a call's arguments for the chosen layout (layout.py) and calls the
real builder (torch's load_inline, or the compile-only nvcc builder on a CPU torch):

- light: `no_implicit_headers=True`; the CUDA sources get `cuda.h` and `cuda_runtime.h`
  (what load_inline prepends, less torch/types.h); main.cpp gets a precompiled header
  (pch.py) and, where its C++ sources need nothing beyond ATen (layout.main_kind), the
  slim includes (torch/types.h and the pybind11 glue the bindings use), else
  `torch/extension.h` as load_inline would have given it.
- pch: the CUDA sources get exactly load_inline's three lines, and an include of
  torch/extension.h there is left to torch/types.h where the source needs nothing more
  (layout.slim_extension_include); main.cpp as for light.
- split (KERNELSMITH_SPLIT_SOURCES=1, before pch where split.py finds it plainly safe): the
  CUDA source's torch part (the wrappers) joins main.cpp, its kernels build as for light;
  any failure of that build (compile or load) is built again as pch.
- heavy: the call as the candidate wrote it.

With KERNELSMITH_OPS_BINDING=1, a slim main.cpp whose functions the dispatcher takes as
written is first built with them registered as torch operators (binding.py: torch/library.h
instead of pybind11's templates); any failure of that build in main.cpp is built again with
pybind11 in the same layout.

The layout that built is written to `<target>/.ks_layout` so the GPU stage, importing the
candidate again, makes the very same call (same sources, same flags: torch finds the build
up to date). A fast layout that fails with an error a missing header explains is retried
heavy in its own directory; any other error is the candidate's and is reported as is.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import time

from kernelsmith.harness.build import binding, layout, pch, split

MARKER = ".ks_layout"
CUDA_PRELUDE = ["#include <cuda.h>", "#include <cuda_runtime.h>"]
TORCH_CUDA_PRELUDE = ["#include <torch/types.h>", *CUDA_PRELUDE]  # load_inline's own


class BuildLog:
    """What happened to each call (the compile stage reports it)."""

    def __init__(self):
        self.calls: list[dict] = []


def supports_no_implicit_headers(real) -> bool:
    try:
        return "no_implicit_headers" in inspect.signature(real).parameters
    except (TypeError, ValueError):
        return False


def _as_list(src) -> list[str]:
    if src is None:
        return []
    return [src] if isinstance(src, str) else [str(s) for s in src]


def rewrite(record: dict, chosen: str, pch_dir: str | None, bind: str = binding.PYBIND) -> dict:
    """The keyword arguments of the call for `chosen` (record: the candidate's arguments);
    bind=OPS (a SLIM main.cpp whose functions binding.bindable takes) registers them as
    torch operators instead of pybind11 functions."""
    kw = dict(record)
    if chosen == layout.HEAVY or kw.get("no_implicit_headers"):
        return kw  # heavy, or the candidate manages its own headers already
    cpp = _as_list(kw.get("cpp_sources"))
    if chosen == layout.SPLIT:  # the torch part of the CUDA source joins main.cpp
        moved, kernels = split.split(_as_list(kw.get("cuda_sources")))
        cpp, kw["cuda_sources"] = [*cpp, moved], [kernels]
    kind = layout.main_kind(cpp)
    if kind == pch.SLIM:
        cpp = [layout.slim_extension_include(c) or c for c in cpp]
    ops = bind == binding.OPS and kind == pch.SLIM
    cuda = _as_list(kw.get("cuda_sources"))
    if cuda and chosen == layout.PCH:
        cuda = [layout.slim_extension_include(c) or c for c in cuda]
    if cuda:
        cuda = [*(TORCH_CUDA_PRELUDE if chosen == layout.PCH else CUDA_PRELUDE), *cuda]
        kw["cuda_sources"] = cuda
    kw["cpp_sources"] = [pch.include_lines(pch_dir, pch.OPS if ops else kind), *cpp]
    if ops:
        names = binding.function_names(record.get("functions")) or []
        kw["cpp_sources"].append(binding.registration(binding.namespace(record, cpp, cuda), names))
        kw["functions"], kw["is_python_module"] = None, False
    kw["no_implicit_headers"] = True
    kw.pop("use_pch", None)  # torch's own writes into torch's install directory
    return kw


def _as_operators(kind: str, record: dict) -> bool:
    """Whether a main.cpp of this kind binds this call's functions as torch operators."""
    return kind == pch.SLIM and binding.enabled() and binding.bindable(record)


def _attempts(record: dict, fast: bool, pch_root: str | None) -> list[dict]:
    """The builds to try in order: the fast layout (as operators first where the signatures
    allow, with their header where it is built), then the call as written."""
    first = layout.choose(record) if fast else layout.HEAVY
    if first == layout.HEAVY:
        return [{"layout": layout.HEAVY, "pch": None, "binding": binding.PYBIND}]
    cpp = _as_list(record.get("cpp_sources"))
    kind = layout.main_kind(cpp)
    out = []
    flags = record.get("extra_cflags")
    cut = split.split(_as_list(record.get("cuda_sources"))) if first == layout.PCH and split.enabled() else None
    if cut is not None:  # one try, bound as the pch layout's first try would be; then that layout
        skind = layout.main_kind([*cpp, cut[0]])
        ops = _as_operators(skind, record)
        out.append({"layout": layout.SPLIT, "pch": pch.ready(pch_root, flags, pch.OPS if ops else skind),
                    "binding": binding.OPS if ops else binding.PYBIND})
    # Operators even where their header is not built yet: torch/types.h + torch/library.h
    # parse faster than the slim pybind11 includes (7.9 s against 11.5 s on 2 cores).
    if _as_operators(kind, record):
        out.append({"layout": first, "pch": pch.ready(pch_root, flags, pch.OPS), "binding": binding.OPS})
    out.append({"layout": first, "pch": pch.ready(pch_root, flags, kind), "binding": binding.PYBIND})
    return out + [{"layout": layout.HEAVY, "pch": None, "binding": binding.PYBIND}]


def _ops_error_is_ours(text: str) -> bool:
    """An operator build that failed in main.cpp (where the binding lives) or at load is
    built again with pybind11; an error in cuda.cu alone would fail that way too."""
    errors = layout.error_lines(text)
    return not errors or any("cuda.cu" not in ln for ln in errors)


def _read_marker(target: str) -> dict | None:
    try:
        with open(os.path.join(target, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_marker(target: str, info: dict) -> None:
    with open(os.path.join(target, MARKER), "w") as f:
        json.dump(info, f)


def _forget(name: str) -> None:
    """torch numbers a name's rebuilds within a process (name_v1, ...): a retry under
    another layout must build as version 0, the name the GPU stage's fresh process loads."""
    try:
        import torch.utils.cpp_extension as cpp

        cpp.JIT_EXTENSION_VERSIONER.entries.pop(name, None)
    except Exception:  # noqa: BLE001 - an older or newer torch: nothing to forget
        pass


def build_inline(call, record: dict, target: str, pch_root: str | None = None, log: BuildLog | None = None,
                 fast: bool = True):
    """Build one load_inline call into `target` (a directory per layout beneath it).

    call(kwargs, directory) does the build (torch's load_inline or a stand-in); fast=False
    (a torch without `no_implicit_headers`) builds heavy only."""
    t0 = time.perf_counter()
    known = _read_marker(target)
    if known is not None:
        order = [{"layout": known["layout"], "pch": known.get("pch"), "binding": known.get("binding", binding.PYBIND)}]
    else:
        order = _attempts(record, fast and not record.get("no_implicit_headers"), pch_root)
    i = 0
    while True:
        att = order[i]
        chosen, bind = att["layout"], att["binding"]
        where = os.path.join(target, chosen if bind == binding.PYBIND else f"{chosen}-{bind}")
        os.makedirs(where, exist_ok=True)
        kw = rewrite(record, chosen, att["pch"], bind)
        try:
            mod = call(kw, where)
            if bind == binding.OPS:
                mod = binding.module(mod, binding.registered_namespace(kw["cpp_sources"]),
                                     binding.function_names(record.get("functions")) or [], str(record.get("name")))
        except subprocess.TimeoutExpired:
            raise  # a second build would take as long
        except Exception as exc:  # noqa: BLE001 - how the builder reports a failed build
            text = str(getattr(exc, "log", "")) + str(exc)
            slimmed = layout.main_kind(_as_list(record.get("cpp_sources"))) == pch.SLIM
            if chosen == layout.SPLIT and i + 1 < len(order):
                nxt = i + 1  # whatever failed (build or load), the source as it came, pch layout
            elif bind == binding.OPS and _ops_error_is_ours(text):
                nxt = i + 1  # the same layout with pybind11
            elif i + 1 < len(order) and layout.worth_retrying(text, slimmed):
                nxt = len(order) - 1  # the call as written
            else:
                raise
            _forget(str(record.get("name")))
            shutil.rmtree(where, ignore_errors=True)
            i = nxt
            continue
        info = {"layout": chosen, "pch": att["pch"], "binding": bind,
                "fell_back": i > 0, "seconds": round(time.perf_counter() - t0, 3)}
        if known is None:
            _write_marker(target, info)
        if log is not None:
            log.calls.append({"name": record.get("name"), **info})
        return mod
