"""Proof that the candidate's own kernels did the work.

Candidate calls run under torch's profiler (CUPTI sees every kernel in the process,
CuPy's included). The GPU time is split between kernels whose names are `__global__`
functions from the candidate's own sources and everything else (cuBLAS, cuDNN, PyTorch
ops). A decoy kernel that is compiled but never launched, or a launch that does a token
amount of work next to a library call, shows up as a small own share.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
from dataclasses import dataclass

from kernelsmith.harness.loader import Capture

_GLOBAL = re.compile(r"__global__\s+(?:[\w:<>,\s\*&]+?\s+)?(\w+)\s*\(")
_LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\s*\([^)]*\)")


@dataclass
class Provenance:
    available: bool  # False: the profiler saw no kernel at all (unsupported here)
    own_ms: float = 0.0
    other_ms: float = 0.0
    own: list[str] | None = None
    others: list[tuple[str, float]] | None = None  # the largest foreign kernels

    @property
    def own_share(self) -> float:
        total = self.own_ms + self.other_ms
        return self.own_ms / total if total else 0.0


def kernel_names(capture: Capture) -> set[str]:
    """Names of the `__global__` functions in every source the candidate compiled."""
    sources: list[str] = []
    for rec in capture.inline:
        for key in ("cuda_sources", "cpp_sources"):
            val = rec.get(key) or []
            sources.extend([val] if isinstance(val, str) else list(val))
    sources.extend(k["code"] for k in capture.cupy + capture.pycuda if isinstance(k.get("code"), str))
    names: set[str] = set(capture.triton) | set(capture.numba)  # Python-level kernels: their own names
    for src in sources:
        names |= names_in_text(src)
    return names


def names_in_text(text: str) -> set[str]:
    """`__global__` function names anywhere in a text (a whole candidate file)."""
    return set(_GLOBAL.findall(_LAUNCH_BOUNDS.sub(" ", text)))


@functools.lru_cache(maxsize=1)
def _cxa_demangle():
    try:
        lib = ctypes.CDLL("libstdc++.so.6")
        fn = lib.__cxa_demangle
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_int)]
    return fn


def as_profiler_shows(name: str) -> str | None:
    """The profiler demangles every kernel name, also an extern "C" one that happens to
    read as a mangled type: a CuPy kernel named `rrn` is listed as "__int128 restrict"
    (r = restrict, n = __int128). Returns that form, or None where the name stays as it is."""
    fn = _cxa_demangle()
    if fn is None or not name:
        return None
    status = ctypes.c_int()
    ptr = fn(name.encode(), None, None, ctypes.byref(status))
    if not ptr:
        return None
    try:
        out = ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        ctypes.CDLL(None).free(ctypes.c_void_p(ptr))
    return out if out != name else None


def _is_own(kernel: str, names: set[str]) -> bool:
    # Demangled C++ names look like "ns::name<float>(float const*, ...)" or "void name(...)".
    base = re.split(r"[(<]", kernel, maxsplit=1)[0].split("::")[-1].split()[-1] if kernel else ""
    # Numba names a kernel cudapy::<module>::<name>$<n>(Array<...>): the function name
    # with a specialisation counter; numba-cuda 0.2x as <module>::<name>[abi:v1][abi:<hash>](...):
    # Itanium ABI tags, which the demangler writes between the name and its arguments
    base = re.sub(r"(\[abi:[^\]]*\])+$", "", base)
    base = re.sub(r"\$\d+$", "", base)
    if base in names or any(re.search(rf"(^|[\s:]){re.escape(n)}\s*[(<]", kernel) for n in names):
        return True
    return any(as_profiler_shows(n) == kernel for n in names)


def cupti_teardown() -> None:
    """Kineto leaves CUPTI attached when a torch.profiler session ends unless
    TEARDOWN_CUPTI=1 (pytorch/pytorch#144455), and every kernel launched afterwards keeps
    paying CUPTI's instrumentation: on an H200 the CG reference (about 160 small kernels)
    went from 0.80 ms before the first profiled candidate call to 1.4-1.9 ms after it,
    which read as `reference_slowed`, and it would skew any speedup between a side with
    many kernels and one with few. Kineto reads the variable at each session's end; the
    harness owns it (a value a candidate set is overwritten before each profiled call)."""
    os.environ["TEARDOWN_CUPTI"] = "1"


def profiler():
    """A profiler recording GPU kernels (enter it around the calls to attribute); CUPTI is
    released when it ends (cupti_teardown)."""
    from torch.profiler import ProfilerActivity, profile

    cupti_teardown()
    return profile(activities=[ProfilerActivity.CUDA])


def measure(call, names: set[str]) -> Provenance:
    """Profile one call (which must synchronize) and attribute its GPU time."""
    with profiler() as prof:
        call()
    return attribute(prof.events(), names)


def attribute(events, names: set[str]) -> Provenance:
    """Split the GPU time of profiled kernel events into the candidate's own and others'."""
    own_ms = other_ms = 0.0
    own: set[str] = set()
    others: dict[str, float] = {}
    seen = False
    for ev in events:
        if getattr(ev, "device_type", None) is None or "CUDA" not in str(ev.device_type):
            continue
        name = ev.name or ""
        if name.startswith(("Memcpy", "Memset", "cudaM")):  # copies are not compute
            continue
        seen = True
        ms = float(getattr(ev, "device_time_total", 0.0) or 0.0) / 1e3  # a GPU event's own duration (us)
        if _is_own(name, names):
            own_ms += ms
            own.add(name)
        else:
            other_ms += ms
            others[name] = others.get(name, 0.0) + ms
    top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
    return Provenance(available=seen, own_ms=own_ms, other_ms=other_ms, own=sorted(own), others=top)


def merge(parts: list[Provenance]) -> Provenance:
    """Several profiled calls as one: times add up, names are joined."""
    others: dict[str, float] = {}
    for p in parts:
        for n, ms in p.others or []:
            others[n] = others.get(n, 0.0) + ms
    return Provenance(available=any(p.available for p in parts), own_ms=sum(p.own_ms for p in parts),
                      other_ms=sum(p.other_ms for p in parts),
                      own=sorted({n for p in parts for n in p.own or []}),
                      others=sorted(others.items(), key=lambda kv: -kv[1])[:3])
