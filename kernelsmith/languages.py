"""The kernel languages a candidate may be written in, and how to tell them apart.

One name per language across the product (prompts, `--language`, the static screen, the
leaderboard's language x task table). The harness records which backend a candidate
actually built with (`CompileResult.backend`); `of_backend` maps that to a language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    name: str  # the value of --language and of the leaderboard's language column
    label: str  # for people
    backend: str  # CompileResult.backend of a candidate built this way
    # imports that mark a candidate as written in this language (matched at a line start)
    imports: tuple[str, ...]


LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (
    Language("cuda", "CUDA C++ (torch load_inline)", "load_inline", ("torch.utils.cpp_extension",)),
    Language("cupy", "CuPy (NVRTC)", "cupy", ("cupy",)),
    Language("triton", "Triton", "triton", ("triton",)),
    Language("numba", "Numba (numba-cuda)", "numba", ("numba",)),
    Language("pycuda", "PyCUDA", "pycuda", ("pycuda",)),
)}
DEFAULT = "cuda"
ANY = "any"  # --language any: one search whose candidates may be in any language
# what a search asked for in a language accepts: "cuda" is CUDA C++ source, built with
# load_inline or CuPy's RawKernel (the prompt offers both); every other language is itself
ACCEPTS: dict[str, frozenset[str]] = {name: frozenset({name}) for name in LANGUAGES}
ACCEPTS["cuda"] = frozenset({"cuda", "cupy"})
_BY_BACKEND = {lang.backend: lang.name for lang in LANGUAGES.values()}


def names() -> list[str]:
    return list(LANGUAGES)


def get(name: str) -> Language:
    """The language called `name`; a ValueError naming the choices otherwise."""
    try:
        return LANGUAGES[name]
    except KeyError:
        raise ValueError(f"unknown language {name!r}; choose one of: {', '.join(LANGUAGES)}") from None


def choices() -> list[str]:
    """The values of --language: every language, then "any"."""
    return [*LANGUAGES, ANY]


def check(name: str) -> str:
    """`name` as a --language value (case and spaces ignored); a ValueError naming the choices otherwise."""
    n = (name or "").strip().lower()
    if n not in choices():
        raise ValueError(f"unknown language {name!r}; choose one of: {', '.join(choices())}")
    return n


def accepts(requested: str, detected: str) -> bool:
    """Is a candidate detected as `detected` written in the `requested` language? Always for
    "any"; never for a candidate that imports no kernel language ("")."""
    if requested == ANY:
        return bool(detected)
    return detected in ACCEPTS.get(requested, frozenset({requested}))


def of_backend(backend: str) -> str:
    """The language of a recorded backend ("load_inline" -> "cuda"); "" when none was built."""
    return _BY_BACKEND.get(backend or "", "")


def detect(code: str) -> str:
    """The language a candidate's source is written in, judged by its imports; languages
    that wrap CUDA C++ (PyCUDA, CuPy) win over plain torch, since every candidate imports
    torch. "" when no kernel language is imported."""
    found = set()
    for lang in LANGUAGES.values():
        for mod in lang.imports:
            pat = rf"^\s*(?:import\s+{re.escape(mod)}\b|from\s+{re.escape(mod)}(?:\.\w+)*\s+import\b)"
            if re.search(pat, code, re.M):
                found.add(lang.name)
    for name in ("pycuda", "numba", "triton", "cupy", "cuda"):
        if name in found:
            return name
    return ""
