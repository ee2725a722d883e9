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
import shutil
import subprocess
import sys
import tempfile
import time

from kernelsmith.harness.loader import Capture, load_module, patch_cupy, patch_load_inline, patch_pycuda, stub_cupy

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
    """A load_inline stand-in that compiles the CUDA sources with plain nvcc (CPU torch)."""
    import sysconfig

    import torch.utils.cpp_extension as cpp

    def build(record: dict, target: str):
        sources = record.get("cuda_sources") or []
        if isinstance(sources, str):
            sources = [sources]
        incs = [f"-I{p}" for p in cpp.include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
        flags = [str(f) for f in record.get("extra_cuda_cflags") or [] if not str(f).startswith("-arch")]
        for i, code in enumerate(sources):
            src = os.path.join(target, f"cuda_{i}.cu")
            with open(src, "w") as f:
                f.write(code if "torch/extension.h" in code else "#include <torch/extension.h>\n" + code)
            _run_nvcc(["-c", _arch_flag(arch), "-std=c++17", *incs, *flags, "-o", src + ".o", src], timeout, src)
        return _Unloaded(record["name"])

    return build


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
    patch_load_inline(build_dir, capture, builder=None if real_build else nvcc_builder(arch, timeout))
    try:
        import cupy

        patch_cupy(capture, cupy)
    except Exception:
        stub_cupy(capture)
    patch_pycuda(capture)
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
        "real_build": real_build, "seconds": time.perf_counter() - t0,
        "python": sys.version.split()[0],
    }


def _fail(error: str, log: str, capture: Capture, t0: float) -> dict:
    return {"ok": False, "error": error, "backend": capture.backend, "log": log,
            "warnings": [], "seconds": time.perf_counter() - t0}
