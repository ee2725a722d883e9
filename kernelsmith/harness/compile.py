"""The compile stage, run on the CPU (no GPU visible) in a sandboxed child.

nvcc needs no GPU, so compiles run in parallel on the CPU cores while the GPU times
other candidates. With a CUDA build of torch, `load_inline` really builds into the
keyed build directory, and the GPU stage later finds it up to date (a cache hit costs
no compile). With a CPU-only torch (CI), the same sources go through plain nvcc, which
still proves they compile for the target architecture.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from kernelsmith.harness.build.inline import BuildLog
from kernelsmith.harness.loader import (
    Capture, load_module, numpy_compat, patch_cupy, patch_load_inline, patch_pycuda, stub_cupy,
)

LOG_LIMIT = 4000
OK_MARKER = ".ks_ok"


class CompileFailed(Exception):
    def __init__(self, log: str):
        super().__init__("compile failed")
        self.log = log


def trim_log(text: str, limit: int = LOG_LIMIT) -> str:
    """Keep the lines an LLM needs: each error with a little context, not the noise."""
    lines = text.splitlines()
    keep: list[int] = []
    for i, line in enumerate(lines):
        if re.search(r"\berror\b|Error|undefined|FAILED", line):
            keep.extend(range(max(0, i - 1), min(len(lines), i + 3)))
    picked = [lines[i] for i in sorted(set(keep))] if keep else lines[-40:]
    out = "\n".join(picked)
    return out if len(out) <= limit else out[:limit] + "\n[... log cut ...]"


def _nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return os.path.join(home, "bin", "nvcc")
    return shutil.which("nvcc")


def _arch_flag(arch: str) -> str:
    return f"-arch=sm_{arch.replace('.', '')}"


def _run_nvcc(args: list[str], timeout: float, src: str = "") -> None:
    nvcc = _nvcc()
    if nvcc is None:
        raise CompileFailed("nvcc not found: install the CUDA toolkit or set CUDA_HOME")
    proc = subprocess.run([nvcc, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if src:  # the scratch path means nothing to the reader
            text = text.replace(src, os.path.basename(src))
        raise CompileFailed(trim_log(text))


def nvcc_check_cupy(code: str, options: list[str], arch: str, workdir: str, timeout: float = 120) -> None:
    """Compile a CuPy kernel source to a cubin: the same C++ NVRTC will see."""
    src = os.path.join(workdir, "cupy_kernel.cu")
    with open(src, "w") as f:
        f.write(code)
    keep = [o for o in options if re.match(r"^(-std=|-D|-I|--std=|-U)", str(o))]
    _run_nvcc([_arch_flag(arch), "-cubin", *keep, "-o", src + ".cubin", src], timeout, src)


def nvcc_builder(arch: str, timeout: float):
    """A load_inline stand-in for a CPU-only torch: the same main.cpp and cuda.cu that
    load_inline would write, compiled with the same flags (read off torch's own ninja
    file), both at once as ninja would, but not linked or loaded."""
    from kernelsmith.harness.build import pch as pchmod

    def build(kw: dict, target: str):
        name = str(kw["name"])
        cxx, cflags, cuda_cflags = pchmod.torch_build_flags(pchmod.cuda_home())
        own = f"-DTORCH_EXTENSION_NAME={name}"
        cflags = [own if f.startswith("-DTORCH_EXTENSION_NAME=") else f for f in cflags]
        cuda_cflags = [own if f.startswith("-DTORCH_EXTENSION_NAME=") else f for f in cuda_cflags]
        incs = [f"-I{os.path.abspath(str(p))}" for p in kw.get("extra_include_paths") or []]
        main, cuda = inline_sources(kw)
        jobs = []
        path = os.path.join(target, "main.cpp")
        with open(path, "w") as f:
            f.write(main)
        jobs.append(([*shlex.split(cxx), *incs, *cflags, *_flags(kw.get("extra_cflags")),
                      "-c", path, "-o", os.path.join(target, "main.o")], path))
        if cuda is not None:
            path = os.path.join(target, "cuda.cu")
            with open(path, "w") as f:
                f.write(cuda)
            nvcc = _nvcc()
            if nvcc is None:
                raise CompileFailed("nvcc not found: install the CUDA toolkit or set CUDA_HOME")
            extra = [x for x in _flags(kw.get("extra_cuda_cflags")) if not x.startswith(("-arch", "-gencode"))]
            jobs.append(([nvcc, *incs, *cuda_cflags, _arch_flag(arch), *extra, "-c", path, "-o", os.path.join(target, "cuda.cuda.o")],
                         path))
        _run_parallel(jobs, timeout)
        return _Unloaded(name)

    return build


def _flags(flags) -> list[str]:
    """A candidate's extra flags as torch's ninja file passes them: joined by spaces and
    split by the shell, so an empty string (KernelBench's examples pass extra_cflags=[""])
    is no flag and "-O3 -DX" is two."""
    return [t for x in flags or [] for t in shlex.split(str(x))]


def inline_sources(kw: dict) -> tuple[str, str | None]:
    """(main.cpp, cuda.cu or None) as torch's load_inline writes them for these arguments."""
    cpp = kw.get("cpp_sources") or []
    cpp = [cpp] if isinstance(cpp, str) else list(cpp)
    cuda = kw.get("cuda_sources") or []
    cuda = [cuda] if isinstance(cuda, str) else list(cuda)
    implicit = not kw.get("no_implicit_headers")
    if implicit:
        cpp.insert(0, "#include <torch/extension.h>")
    functions = kw.get("functions")
    if functions is not None:
        if isinstance(functions, str):
            functions = [functions]
        if isinstance(functions, list):
            functions = {f: f for f in functions}
        wrap = kw.get("with_pytorch_error_handling", True)
        cpp.append("PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {")
        for fn, doc in functions.items():
            cpp.append(f'm.def("{fn}", torch::wrap_pybind_function({fn}), "{doc}");' if wrap
                       else f'm.def("{fn}", {fn}, "{doc}");')
        cpp.append("}")
    if not cuda:
        return "\n".join(cpp), None
    if implicit:
        cuda[:0] = ["#include <torch/types.h>", "#include <cuda.h>", "#include <cuda_runtime.h>"]
    return "\n".join(cpp), "\n".join(cuda)


def _run_parallel(jobs: list[tuple[list[str], str]], timeout: float) -> None:
    """Run the compiles at once; the first failure (in job order) is raised with its log."""
    procs = [(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), src)
             for cmd, src in jobs]
    deadline = time.monotonic() + timeout
    failed: list[str] = []
    try:
        for proc, src in procs:
            out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            if proc.returncode != 0:
                failed.append(out.replace(src, os.path.basename(src)))
    except subprocess.TimeoutExpired:
        for proc, _ in procs:
            proc.kill()
        for proc, _ in procs:
            proc.wait()
        raise
    if failed:
        raise CompileFailed(trim_log("\n".join(failed)))


class _Unloaded:
    """What `load_inline` returns in compile-only mode: its functions cannot run."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        raise RuntimeError(f"compile-only mode: extension {self._name!r} is not loaded")


def run(args: dict) -> dict:
    t0 = time.perf_counter()
    build_dir, arch = args["build_dir"], args.get("arch", "9.0")
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # the job's arch, whatever the server started with
    timeout = float(args.get("nvcc_timeout", 600))
    import torch
    import torch.utils.cpp_extension as cpp

    capture = Capture()
    real_build = torch.version.cuda is not None and cpp.CUDA_HOME is not None
    builds = BuildLog()
    patch_load_inline(build_dir, capture, builder=None if real_build else nvcc_builder(arch, timeout),
                      pch_root=args.get("pch_root"), build_log=builds)
    try:
        import cupy

        patch_cupy(capture, cupy)
    except Exception:
        stub_cupy(capture)
    patch_pycuda(capture)
    numpy_compat()
    warnings: list[str] = []
    try:
        capture.scan(load_module(args["candidate_path"], "ks_candidate"))
    except CompileFailed as exc:
        return _fail("compile", exc.log, capture, t0)
    except subprocess.TimeoutExpired:
        return _fail("compile_timeout", "nvcc ran past its time limit", capture, t0)
    except Exception as exc:  # noqa: BLE001 - a candidate may raise anything
        text = f"{type(exc).__name__}: {exc}"
        if "Error building extension" in text or "ninja" in text.lower():
            return _fail("compile", trim_log(text), capture, t0)
        # Module-level code may need a GPU; the GPU stage will judge it for real.
        warnings.append(f"import on the CPU raised {trim_log(text, 500)}")
    with tempfile.TemporaryDirectory() as work:
        for k in capture.cupy:
            if not isinstance(k.get("code"), str):
                continue
            try:
                nvcc_check_cupy(k["code"], k["options"], arch, work, timeout)
            except CompileFailed as exc:
                return _fail("compile", exc.log, capture, t0)
            except subprocess.TimeoutExpired:
                return _fail("compile_timeout", "nvcc ran past its time limit", capture, t0)
    if capture.backend == "none" and not warnings:
        warnings.append("no load_inline, CuPy, PyCUDA, Triton or Numba kernel was created at import time")
    with open(os.path.join(build_dir, OK_MARKER), "w") as f:
        f.write(capture.backend)
    return {
        "ok": True, "backend": capture.backend, "log": "", "warnings": warnings,
        "real_build": real_build, "seconds": time.perf_counter() - t0, "builds": builds.calls,
        "python": sys.version.split()[0],
    }


def _fail(error: str, log: str, capture: Capture, t0: float) -> dict:
    return {"ok": False, "error": error, "backend": capture.backend, "log": log,
            "warnings": [], "seconds": time.perf_counter() - t0}
