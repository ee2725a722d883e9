"""Which layout an inline-CUDA candidate's sources allow.

`load_inline` prepends `torch/types.h` to the CUDA source and `torch/extension.h` to the
C++ source. Parsing torch's headers is most of a build's minute (nvcc parses them twice:
once for the device pass, once for the host pass); the kernels themselves take about a
second. A CUDA source that names nothing from torch (no torch/ATen/c10 header, no
`torch::`, `at::`, `c10::`, no `TORCH_`/`AT_`/`C10_` macro) is device code plus
raw-pointer launchers: it compiles without those headers, and the C++ side (which holds
the torch wrappers) can use a precompiled header.
"""

from __future__ import annotations

import re

from kernelsmith.harness.build import pch

LIGHT = "light"  # CUDA sources without torch headers; C++ side with the precompiled header
PCH = "pch"  # CUDA sources as torch would build them; C++ side with the precompiled header
HEAVY = "heavy"  # exactly what load_inline does (the fallback)
SPLIT = "split"  # a pch-layout CUDA source cut in two: kernels light, torch wrappers in main.cpp (split.py)

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')
# Anything that needs a torch header: an include of one, a namespace, or a macro family.
_TORCH = re.compile(
    r"#\s*include\s*[<\"](?:torch|ATen|c10|caffe2|pybind11)/"
    r"|\b(?:torch|at|c10|caffe2|pybind11|py)\s*::"
    r"|\b(?:TORCH|AT|C10|CUDA_KERNEL|PYBIND11)_[A-Z0-9_]+\b"
    r"|\bTensor\b|\bscalar_t\b")


def strip_comments(src: str) -> str:
    """The source without comments and string literals (a name in either is no use)."""
    return _STRING.sub('""', _COMMENT.sub(" ", src))


def torch_free(sources) -> bool:
    """True when no CUDA source names anything that torch's headers declare."""
    if isinstance(sources, str):
        sources = [sources]
    return all(not _TORCH.search(strip_comments(str(s))) for s in sources or [])


def choose(record: dict) -> str:
    """The first layout to try for one load_inline call (its keyword arguments)."""
    cuda = record.get("cuda_sources")
    if not cuda:
        return PCH  # C++ only: the precompiled header is all there is to gain
    return LIGHT if torch_free(cuda) else PCH


# When a fast layout fails, is the call worth building again as written? The layouts
# differ only by includes left out: of cuda.cu (light: all of torch's; pch: an
# extension.h include left to types.h) and, where main.cpp was slimmed (main_kind SLIM),
# of main.cpp (torch/all.h and torch/python.h). An error in a file that was not slimmed,
# or one that no header can cause (a syntax error, a header the candidate names that is not
# there, a ptxas resource error), fails the same way heavy and is reported at once.
# Anything else in a slimmed file (an unknown name, an ambiguous or missing overload, ...)
# is retried: a correct candidate must build, whatever it leaned on.
_OWN_ERROR = re.compile(
    r'expected an? (?:"[^"]*"|expression|declaration|statement|identifier)|unrecognized token|missing closing quote'
    r"|expected (?:'[^']*'|primary-expression|unqualified-id|initializer|declaration) before"  # GCC (main.cpp)
    r"|cannot open source file|No such file or directory|ptxas|uses too much|unbalanced|#error")
_ERROR_LINE = re.compile(r"\berror\b", re.I)
_SUMMARY_LINE = re.compile(r"Error building extension|errors? detected in the compilation|^\s*FAILED:")


def error_lines(log: str) -> list[str]:
    """The compilers' error lines of a build log (not the builder's summaries of them)."""
    return [ln for ln in (log or "").splitlines() if _ERROR_LINE.search(ln) and not _SUMMARY_LINE.search(ln)]


def worth_retrying(log: str, main_slimmed: bool = False) -> bool:
    errors = error_lines(log)
    candidates = errors if main_slimmed else [ln for ln in errors if "main.cpp" not in ln]
    if not candidates:
        return False  # nothing failed, or only main.cpp did with its text as heavy
    return any(not _OWN_ERROR.search(ln) for ln in candidates)


# torch/extension.h is torch/all.h (the whole C++ frontend: nn, optim, data, jit) plus
# torch/python.h (pybind11, Python.h). A CUDA source that uses none of those needs only
# torch/types.h (ATen: Tensor, the factories, TORCH_CHECK), which load_inline prepends to
# every CUDA source anyway; dropping the heavier include saves nvcc parsing both passes.
_EXT_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]torch/(?:extension|all|torch)\.h[>"][^\n]*$', re.M)
_NEEDS_EXTENSION = re.compile(
    r"\bPYBIND11_|\bpybind11\b|\bpy\s*::|\bTHP|\bPy[A-Z]\w*\("
    r"|\btorch\s*::\s*(?:nn|optim|autograd|jit|data|serialize|python|cuda|utils|expanding_array|ExpandingArray|"
    r"NoGradGuard|AutoGradMode|manual_seed|save|load)\b")


def needs_extension(src: str) -> bool:
    """Whether a source may use what only torch/extension.h declares (beyond torch/types.h
    and the pybind11 glue)."""
    return bool(_NEEDS_EXTENSION.search(strip_comments(src)))


def main_kind(cpp_sources) -> str:
    """Which torch headers main.cpp gets in a fast layout: pch.SLIM where no C++ source
    needs more than ATen (the usual wrapper: tensors in, data_ptr to a launcher, a tensor
    out), else pch.FULL (torch/extension.h, as load_inline)."""
    if isinstance(cpp_sources, str):
        cpp_sources = [cpp_sources]
    return pch.FULL if any(needs_extension(str(c)) for c in cpp_sources or []) else pch.SLIM


def slim_extension_include(src: str) -> str | None:
    """The source with its torch/extension.h include left to torch/types.h, or None when
    the source may need more than torch/types.h declares (or has no such include)."""
    if not _EXT_INCLUDE.search(src) or needs_extension(src):
        return None
    return _EXT_INCLUDE.sub("// torch/extension.h: torch/types.h (prepended) declares what this source uses", src)
