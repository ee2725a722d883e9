"""An LLM-style CUDA source split in two: its kernels into a light cuda.cu, its torch
wrappers into main.cpp (where the precompiled header is), launches rewritten as calls.

Why: the way LLMs and KernelBench write load_inline, `cuda_sources` holds the kernels and
the torch::Tensor wrappers that launch them, with `#include <torch/extension.h>`. nvcc then
parses torch's headers three times (cudafe++, cicc, the host compiler: 27 of the 29 s of
such a cuda.cu here; the kernels are about a second), and no precompiled header helps nvcc.
Split, the CUDA side compiles like the light layout and the wrappers take main.cpp's header.

What moves: every top-level item that names torch (layout.torch_free's test) goes to
main.cpp, with each `kernel<<<grid, block[, smem[, stream]]>>>(args)` in it replaced by
`ks_launch_kernel(grid, block, smem, stream, args)`, a launcher generated in cuda.cu with
the kernel's own parameter types (the arguments convert exactly as they would at the
launch). What is copied to both: non-torch includes, macros, plain constants, typedefs and
plain structs. main.cpp also gets prototypes of the plain host functions left in cuda.cu
(the candidate's own raw-pointer launchers).

Only where that is plainly safe (`split` returns None otherwise): no preprocessor
conditional, no namespace or extern block, no raw string, every torch item host code and
no template, every launch of a non-template kernel with parameters plainly typed. Anything
the split misses shows as a compile or load error of the split build, which is then built
as before (the pch layout): the split never decides whether a candidate builds.
"""

from __future__ import annotations

import os
import re

from kernelsmith.harness.build.layout import _TORCH

_TORCH_INCLUDE = re.compile(r"#\s*include\s*[<\"](?:torch|ATen|c10|caffe2|pybind11)/")
_DEVICE = re.compile(r"\b(?:__global__|__device__|__shared__|__constant__|__managed__|threadIdx|blockIdx|blockDim"
                     r"|gridDim|__syncthreads|warpSize)\b")
_CONDITIONAL = re.compile(r"^\s*#\s*(?:if|ifdef|ifndef|elif|else|endif)\b", re.M)
_BLOCK_START = re.compile(r"^\s*(?:namespace\b|extern\s*\"C)")
_KERNEL = re.compile(r"^\s*(?:static\s+)?__global__\s+(?:static\s+)?void\s+(?:__launch_bounds__\s*\([^()]*\)\s*)?"
                     r"([A-Za-z_]\w*)\s*\(([^()]*)\)\s*\{", re.S)
_CONSTANT = re.compile(r"^\s*(?:static\s+)?(?:constexpr|const)\s+[\w\s:]+=[^;{}]*;\s*$", re.S)
_ALIAS = re.compile(r"^\s*(?:typedef\b[^;{}]*;|using\s+\w+\s*=[^;{}]*;)\s*$", re.S)
_STRUCT = re.compile(r"^\s*(?:struct|class|enum|union)\b")
_PLAIN_FUNCTION = re.compile(r"^[\w\s\*&:<>,]*\b([A-Za-z_]\w*)\s*\([^{};]*\)\s*(?:const\s*)?\{", re.S)
_LAUNCH = re.compile(r"\b([A-Za-z_]\w*)\s*<<<")
_PREFIX = "ks_launch_"


def enabled() -> bool:
    """Off unless KERNELSMITH_SPLIT_SOURCES=1 (the sandboxes pass it to jobs): not yet run on a GPU."""
    return os.environ.get("KERNELSMITH_SPLIT_SOURCES", "").lower() in ("1", "true", "yes", "on")


def _items(src: str) -> list[str] | None:
    """The source's top-level items (preprocessor lines, declarations, definitions), comments
    removed, or None when it cannot be cut safely (unbalanced, a raw string)."""
    items, cur, depth, i, n = [], [], 0, 0, len(src)
    closed_block = False  # the item's braces closed at top level: a function ends there, a struct at ';'

    def flush():
        text = "".join(cur).strip()
        if text:
            items.append(text)
        cur.clear()

    while i < n:
        c = src[i]
        if c == "R" and src.startswith('R"', i):
            return None
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                return None
            cur.append(" ")
            i = j + 2
            continue
        if depth == 0 and closed_block and not c.isspace() and c != ";":
            head = "".join(cur).lstrip()
            if not (_STRUCT.match(head) or "=" in head.split("{", 1)[0]):
                flush()  # a function's body ended: this is the next item
                closed_block = False
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                if src[j] == "\n":
                    return None
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                return None
            cur.append(src[i:j + 1])
            i = j + 1
            continue
        if c == "#" and depth == 0 and not "".join(cur).strip():
            j = i
            while True:  # a directive, with its line continuations
                k = src.find("\n", j)
                if k < 0:
                    k = n
                if k > 0 and src[k - 1] == "\\":
                    j = k + 1
                    continue
                break
            cur.append(src[i:k])
            flush()
            i = k
            continue
        cur.append(c)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                closed_block = True
        elif c == ";" and depth == 0:
            flush()
            closed_block = False
        i += 1
    if depth != 0:
        return None
    flush()
    return items


def _params(plist: str) -> list[str] | None:
    """The parameter types of a kernel (its names dropped), or None where one is not plain."""
    plist = plist.strip()
    if plist in ("", "void"):
        return []
    out = []
    for p in plist.split(","):
        p = " ".join(p.split())
        if any(ch in p for ch in "=[]()<>"):
            return None
        m = re.fullmatch(r"(.*?[\s\*&])([A-Za-z_]\w*)", p)
        if not m or not m.group(1).strip():
            return None
        out.append(m.group(1).strip())
    return out


def _close_paren(text: str, i: int) -> int:
    """The index just past the parenthesis that closes the one at text[i], else -1."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def _rewrite_launches(text: str, kernels: dict, used: set) -> str | None:
    out, pos = [], 0
    for m in _LAUNCH.finditer(text):
        if m.start() < pos:
            continue
        name = m.group(1)
        if name not in kernels:
            return None  # a template kernel, one from elsewhere, a macro: not ours to move
        end_cfg = text.find(">>>", m.end())
        if end_cfg < 0:
            return None
        cfg = [c.strip() for c in _split_top(text[m.end():end_cfg])]
        if not 2 <= len(cfg) <= 4 or not all(cfg):
            return None
        cfg += ["0"] * (4 - len(cfg))
        k = end_cfg + 3
        while k < len(text) and text[k].isspace():
            k += 1
        if k >= len(text) or text[k] != "(":
            return None
        close = _close_paren(text, k)
        if close < 0:
            return None
        args = text[k + 1:close - 1].strip()
        used.add(name)
        out.append(text[pos:m.start()])
        out.append(f"{_PREFIX}{name}({', '.join(cfg)}{', ' + args if args else ''})")
        pos = close
    out.append(text[pos:])
    result = "".join(out)
    return None if "<<<" in result else result


def _split_top(s: str) -> list[str]:
    """s split at the commas outside parentheses, brackets and braces."""
    parts, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _launcher(name: str, types: list[str]) -> tuple[str, str]:
    """(definition for cuda.cu, declaration for main.cpp) of one kernel's launcher."""
    params = ", ".join(["dim3 ks_grid", "dim3 ks_block", "size_t ks_smem", "cudaStream_t ks_stream",
                        *[f"{t} ks_a{i}" for i, t in enumerate(types)]])
    head = f"void {_PREFIX}{name}({params})"
    call = ", ".join(f"ks_a{i}" for i in range(len(types)))
    return (f"{head} {{ {name}<<<ks_grid, ks_block, ks_smem, ks_stream>>>({call}); }}", head + ";")


def split(cuda_sources: list[str]) -> tuple[str, str] | None:
    """(C++ to append to main.cpp, the torch-free CUDA source) of an LLM-style CUDA source,
    or None where the split is not plainly safe (see the module docstring)."""
    src = "\n".join(cuda_sources)
    if _CONDITIONAL.search(src):
        return None
    items = _items(src)
    if items is None:
        return None
    kernels, seen = {}, set()
    for it in items:
        m = _KERNEL.match(it)
        if m:
            types = _params(m.group(2))
            if m.group(1) in seen:  # an overload: one launcher's conversions could pick another
                kernels.pop(m.group(1), None)
            elif types is not None:
                kernels[m.group(1)] = types
            seen.add(m.group(1))
    cpp, cuda, used = ["#include <cuda_runtime.h>"], [], set()  # dim3, cudaStream_t of the launchers
    for it in items:
        if _BLOCK_START.match(it):
            return None
        if it.startswith("#"):
            if re.match(r"#\s*pragma\s+once\b", it):
                continue
            if _TORCH_INCLUDE.match(it) or (re.match(r"#\s*define\b", it) and _TORCH.search(it)):
                cpp.append(it)  # a torch header, or a macro of torch's names (CHECK_CUDA and kin)
            elif re.match(r"#\s*(?:include|define|undef)\b", it):
                cpp.append(it)
                cuda.append(it)
            else:
                return None  # #error, #line, a #pragma whose reach is unknown
            continue
        if _TORCH.search(it):
            if _DEVICE.search(it) or re.match(r"\s*template\b", it):
                return None  # device code or a template that needs torch: it cannot leave nvcc
            moved = _rewrite_launches(it, kernels, used)
            if moved is None:
                return None
            cpp.append(moved)
            continue
        cuda.append(it)
        if _DEVICE.search(it) or re.match(r"\s*template\b", it):
            continue
        if _CONSTANT.match(it) or _ALIAS.match(it) or (_STRUCT.match(it) and "__" not in it):
            cpp.append(it)  # stateless: the same in both units
        elif (m := _PLAIN_FUNCTION.match(it)) and not re.match(r"\s*(?:static|inline)\b", it) and "__" not in it:
            cpp.append(it[:it.index("{")].rstrip() + ";")  # its prototype: the wrappers may call it
    if not used:
        return None  # nothing launched from torch code: nothing gained
    for name in sorted(used):
        definition, declaration = _launcher(name, kernels[name])
        cuda.append(definition)
        cpp.insert(_after_includes(cpp), declaration)
    if _TORCH.search("\n".join(cuda)):
        return None
    head = "// kernelsmith: the torch part of the CUDA source (harness/build/split.py)\n"
    return head + "\n".join(cpp) + "\n", "\n".join(cuda) + "\n"


def _after_includes(cpp: list[str]) -> int:
    """Where a launcher's declaration goes: after the last directive before the first
    moved item (the types it names come from those includes, or from copied structs)."""
    last = 0
    for i, it in enumerate(cpp):
        if it.startswith("#") or _STRUCT.match(it) or _ALIAS.match(it) or _CONSTANT.match(it):
            last = i + 1
        elif _TORCH.search(it):
            break
    return last
