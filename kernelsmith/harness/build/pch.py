"""kernelsmith's own precompiled torch headers, for load_inline's main.cpp.

Two kinds: FULL is torch/extension.h (what load_inline includes); SLIM is what a main.cpp
whose C++ sources use nothing beyond ATen needs: torch/types.h (Tensor, the factories,
TORCH_CHECK) plus the pybind11 glue the bindings use (torch/csrc/utils/pybind.h: the type
casters; torch/csrc/Exceptions.h: torch::wrap_pybind_function). torch/extension.h adds
torch/all.h (nn, optim, data, jit) and torch/python.h (nn's Python glue): with GCC 12 on two
cores a main.cpp took 26.5 s plain, 8.6 s with the full header precompiled and 5.4 s with
the slim one (the rest is GCC's end-of-unit template work, which no header saves).

torch's `use_pch` writes `extension.h.gch` into torch's install directory (shared, often
read-only, rebuilt whenever the flags differ). Ours lives in the cache
(`<cache>/pch/<key>/`), one directory per key: torch version and install path, the C++
compiler and its version, and the exact flags torch gives main.cpp (read off the ninja
file torch itself writes, so they follow the installed torch) plus the candidate's
`extra_cflags`. The orchestrator builds it (outside any sandbox: no candidate code is
involved) into a temporary directory renamed into place, so a job sees a whole header or
none; jobs only read it.

main.cpp then starts with

    #if __has_include("<dir>/ks_torch.h")
    #include "<dir>/ks_torch.h"
    #endif
    #include <torch/extension.h>        (SLIM: the three includes of SLIM_INCLUDES)

GCC takes `ks_torch.h.gch` for the first include when it is valid for this compile and
otherwise parses the header as usual; where the directory is missing the source is plain
load_inline's. The result is the same object either way; only the time differs.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

HEADER = "ks_torch.h"
FULL, SLIM, OPS = "full", "slim", "ops"
SLIM_INCLUDES = ["#include <torch/types.h>", "#include <torch/csrc/utils/pybind.h>", "#include <torch/csrc/Exceptions.h>"]
# OPS: a SLIM main.cpp whose functions are bound as torch operators, not with pybind11
# (binding.py): torch/library.h in place of the pybind11 glue.
INCLUDES = {FULL: ["#include <torch/extension.h>"], SLIM: SLIM_INCLUDES,
            OPS: ["#include <torch/types.h>", "#include <torch/library.h>"]}
_PROBE_NAME = "ks_pch_probe"
# An arch flag of our own keeps torch from asking the GPU which arch to build for (the
# orchestrator never touches the GPU); the caller adds the real one.
_ARCH_PLACEHOLDER = "-arch=sm_90"


def _torch_flags(cuda_home: str | None) -> tuple[str, list[str]]:
    """(compiler, main.cpp flags) exactly as this torch's load_inline writes them."""
    cxx, flags, _ = torch_build_flags(cuda_home)
    return cxx, [f for f in flags if not f.startswith("-DTORCH_EXTENSION_NAME=")]


def torch_build_flags(cuda_home: str | None) -> tuple[str, list[str], list[str]]:
    """(compiler, main.cpp flags, cuda.cu flags less the arch) of this torch's load_inline,
    for a probe extension (its -DTORCH_EXTENSION_NAME= is the probe's name)."""
    import torch.utils.cpp_extension as cpp

    with tempfile.TemporaryDirectory() as d:
        saved = cpp.CUDA_HOME
        if cuda_home and not os.path.exists(os.path.join(cpp.CUDA_HOME or "", "include", "cuda_runtime.h")):
            cpp.CUDA_HOME = cuda_home  # a CPU torch (none, or a wrong guess): only the include path matters here
        try:
            want = dict(path=os.path.join(d, "build.ninja"), name=_PROBE_NAME,
                        sources=[os.path.join(d, "main.cpp"), os.path.join(d, "cuda.cu")],
                        extra_cflags=[], extra_cuda_cflags=[_ARCH_PLACEHOLDER], extra_sycl_cflags=[], extra_ldflags=[],
                        extra_include_paths=[], with_cuda=True, with_sycl=False, is_standalone=False)
            params = inspect.signature(cpp._write_ninja_file_to_build_library).parameters
            cpp._write_ninja_file_to_build_library(**{k: v for k, v in want.items() if k in params})
        finally:
            cpp.CUDA_HOME = saved
        text = open(os.path.join(d, "build.ninja")).read()
    cxx = re.search(r"^cxx = (.*)$", text, re.M)
    cflags = re.search(r"^cflags = (.*)$", text, re.M)
    cuda = re.search(r"^cuda_cflags = (.*)$", text, re.M)
    if not cxx or not cflags:
        raise RuntimeError("torch's ninja file has no cxx/cflags line")
    cuda_flags = [f for f in shlex.split(cuda.group(1)) if f != _ARCH_PLACEHOLDER] if cuda else []
    return cxx.group(1).strip(), shlex.split(cflags.group(1)), cuda_flags


def cuda_home() -> str | None:
    """The CUDA toolkit's root: CUDA_HOME / CUDA_PATH, else where nvcc really lies."""
    import torch.utils.cpp_extension as cpp

    nvcc = shutil.which("nvcc")
    found = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), cpp.CUDA_HOME,
             os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None, "/usr/local/cuda"]
    for home in found:
        if home and os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            return home
    return next((h for h in found if h), None)


_SPEC_CACHE: dict[tuple, dict] = {}


def spec(extra_cflags=()) -> dict:
    """What identifies a precompiled header valid for main.cpp here: compiler, flags, torch."""
    # torch joins flags with spaces (the shell splits them), so an empty one (KernelBench's
    # examples pass extra_cflags=[""]) is no flag at all: the same header as none
    extra = [t for f in extra_cflags or [] for t in shlex.split(str(f))]
    k = tuple(extra)
    if k in _SPEC_CACHE:
        return _SPEC_CACHE[k]
    import torch

    cxx, flags = _torch_flags(cuda_home())
    exe = shutil.which(shlex.split(cxx)[0]) or cxx
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        version = "unknown"
    s = {"cxx": cxx, "cxx_path": os.path.realpath(exe), "cxx_version": version, "flags": flags + extra,
         "torch": torch.__version__, "torch_dir": os.path.dirname(torch.__file__)}
    s["key"] = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:24]
    _SPEC_CACHE[k] = s
    return s


def _dir_name(key: str, kind: str) -> str:
    return key if kind == FULL else f"{key}-{kind}"


def directory(root: str, extra_cflags=(), kind: str = FULL) -> str:
    """Where the header of this kind for these flags lives (it may not have been built)."""
    return os.path.join(root, _dir_name(spec(extra_cflags)["key"], kind))


def ready(root: str | None, extra_cflags=(), kind: str = FULL) -> str | None:
    """The directory of a built header of this kind for these flags under `root`, else None."""
    if not root:
        return None
    try:
        d = directory(root, extra_cflags, kind)
    except Exception:  # noqa: BLE001 - no torch flags, no header: the plain build stays
        return None
    return d if os.path.exists(os.path.join(d, HEADER + ".gch")) else None


def include_lines(pch_dir: str | None, kind: str = FULL) -> str:
    """The first lines of main.cpp (see the module docstring)."""
    lines = []
    if pch_dir:
        h = os.path.join(pch_dir, HEADER)
        lines += [f'#if __has_include("{h}")', f'#include "{h}"', "#endif"]
    lines += INCLUDES[kind]
    return "\n".join(lines)


def build(root: str, extra_cflags=(), timeout: float = 900, kind: str = FULL) -> dict:
    """Build the header of this kind for these flags under `root` unless it is there:
    {"dir", "seconds", "built"}. One builder at a time per directory (a lock file); the
    result appears by rename."""
    s = spec(extra_cflags)
    key = _dir_name(s["key"], kind)
    final = os.path.join(root, key)
    if os.path.exists(os.path.join(final, HEADER + ".gch")):
        return {"dir": final, "seconds": 0.0, "built": False}
    os.makedirs(root, exist_ok=True)
    t0 = time.perf_counter()
    with open(os.path.join(root, f".{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(final, HEADER + ".gch")):
            return {"dir": final, "seconds": time.perf_counter() - t0, "built": False}
        _sweep_key(root, key)  # a builder killed before its rename: nobody else holds the lock
        tmp = tempfile.mkdtemp(prefix=f".{key}.", dir=root)
        try:
            with open(os.path.join(tmp, HEADER), "w") as f:
                f.write(f"// kernelsmith's precompiled torch header, {kind} (see kernelsmith/harness/build/pch.py)\n"
                        "#pragma once\n" + "\n".join(INCLUDES[kind]) + "\n")
            cmd = [*shlex.split(s["cxx"]), "-x", "c++-header", *s["flags"], os.path.join(tmp, HEADER),
                   "-o", os.path.join(tmp, HEADER + ".gch")]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"building the precompiled header failed: {(proc.stdout + proc.stderr)[-2000:]}")
            with open(os.path.join(tmp, "spec.json"), "w") as f:
                json.dump({**s, "kind": kind}, f, indent=1)
            # GCC looks for the .gch beside the header it includes: rename the pair together
            _relocate(tmp, final)
            for p in (final, *[os.path.join(final, n) for n in os.listdir(final)]):
                os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)  # jobs may run as nobody
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"dir": final, "seconds": time.perf_counter() - t0, "built": True}


def _sweep_key(root: str, key: str) -> None:
    """Remove the half-built directories of one header (call with its lock held)."""
    for name in os.listdir(root):
        if name.startswith(f".{key}.") and os.path.isdir(os.path.join(root, name)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def sweep(root: str) -> None:
    """Remove half-built headers under `root` wherever no builder holds that header's lock."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        if not (name.startswith(".") and name.endswith(".lock")):
            continue
        try:
            with open(os.path.join(root, name), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _sweep_key(root, name[1:-len(".lock")])
        except OSError:
            continue  # being built right now


def _relocate(tmp: str, final: str) -> None:
    """The header refers to nothing by path, so it may be built in one directory and moved."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not os.path.exists(os.path.join(final, HEADER + ".gch")):
            raise


def main(argv=None) -> int:
    """`python -m kernelsmith.harness.build.pch --root R --variants JSON`: build each
    [kind, flags] variant, one JSON line per variant on stdout (the evaluator's HeaderCache
    starts this in a session of its own; it goes on when the evaluator has exited)."""
    import argparse

    ap = argparse.ArgumentParser(description="build kernelsmith's precompiled torch headers")
    ap.add_argument("--root", required=True)
    ap.add_argument("--variants", required=True, help='JSON list of [kind, [flags]], e.g. [["slim", []]]')
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args(argv)
    for kind, flags in json.loads(a.variants):
        try:
            r = {"kind": kind, "flags": flags, **build(a.root, flags, timeout=a.timeout, kind=kind)}
        except Exception as exc:  # noqa: BLE001 - reported; the next variant is still worth building
            r = {"kind": kind, "flags": flags, "error": str(exc)[-500:]}
        try:
            print(json.dumps(r), flush=True)
        except OSError:  # the evaluator has gone: the rest is still built, for the next run
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
