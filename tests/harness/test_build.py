"""Fast inline builds (kernelsmith/harness/build, issue 15): the layout a call's sources
allow, the rewrite of its arguments, the fallback to the call as written, and (with nvcc)
real compiles of the light layout and of main.cpp with kernelsmith's precompiled header."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kernelsmith.harness.build import inline, layout, pch

ROOT = Path(__file__).resolve().parents[2]
LIGHT = ROOT / "tests" / "fixtures" / "inline"
SOL = ROOT / "tests" / "fixtures" / "solutions"
nvcc = pytest.mark.skipif(not (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")),
                          reason="nvcc not installed")

KERNEL = r"""
#include <cuda_runtime.h>
// a comment naming torch::Tensor and at::cuda does not count
__global__ void k(const float* x, float* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * 2.f;
}
void k_launch(const float* x, float* y, long long n, cudaStream_t s) { k<<<(n + 255) / 256, 256, 0, s>>>(x, y, n); }
"""
WRAPPER = r"""
#include <cuda_runtime.h>
void k_launch(const float* x, float* y, long long n, cudaStream_t s);
torch::Tensor twice(torch::Tensor x, int64_t stream) {
    auto y = torch::empty_like(x);
    k_launch(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), reinterpret_cast<cudaStream_t>(stream));
    return y;
}
"""
HEAVY_CU = "#include <torch/extension.h>\n" + KERNEL + "torch::Tensor f(torch::Tensor x) { return x; }\n"


def record(cuda=KERNEL, cpp=WRAPPER, **kw) -> dict:
    return dict(name="ext", cpp_sources=cpp, cuda_sources=cuda, functions=["twice"], verbose=False, **kw)


# -- which layout ---------------------------------------------------------------------------
def test_layout_follows_what_the_cuda_source_names():
    assert layout.choose(record()) == layout.LIGHT
    assert layout.choose(record(cuda=HEAVY_CU)) == layout.PCH
    assert layout.choose(record(cuda=None)) == layout.PCH  # C++ only: the header is all there is to gain
    for needs_torch in ("at::Half h;", "c10::BFloat16 b;", "TORCH_CHECK(n > 0);", "AT_DISPATCH_FLOATING_TYPES(",
                        "#include <ATen/cuda/CUDAContext.h>", "#include <c10/cuda/CUDAStream.h>", "scalar_t v;"):
        assert layout.choose(record(cuda=KERNEL + needs_torch)) == layout.PCH, needs_torch
    # every light fixture is light; every LLM-style fixture is not
    for p in LIGHT.glob("level*.py"):
        src = p.read_text()
        cu = src.split('cuda_source = r"""', 1)[1].split('"""', 1)[0]
        assert layout.torch_free(cu), p.name
    for p in SOL.glob("*/correct_inline.py"):
        assert not layout.torch_free(p.read_text().split('r"""', 1)[1].split('"""', 1)[0]), p


def test_extension_include_is_slimmed_only_where_types_h_suffices():
    slim = layout.slim_extension_include(HEAVY_CU)
    assert slim is not None and "torch/extension.h>" not in slim.split("//")[0] and "__global__" in slim
    for needs_more in ("py::object o;", "PYBIND11_MODULE(m, n) {}", "torch::nn::Linear l(1, 1);",
                       "torch::NoGradGuard g;"):
        assert layout.slim_extension_include(HEAVY_CU + needs_more) is None, needs_more
    assert layout.slim_extension_include(KERNEL) is None  # nothing to slim


def test_only_errors_the_left_out_headers_may_cause_are_retried():
    for retried in ('cuda.cu(4): error: identifier "uint8_t" is undefined',
                    'cuda.cu(5): error: more than one instance of overloaded function "min" matches the argument list',
                    'error: namespace "std" has no member "vector"',
                    '/usr/include/c++/12/bits/foo.h(3): error: something a header of its own tripped on'):
        assert layout.worth_retrying(retried), retried
    torch_says = ("Error building extension 'ext': [1/3] nvcc -c /b/cuda.cu -Werror=all\nFAILED: cuda.cuda.o\n"
                  '/b/cuda.cu(4): error: expected a ";"\n1 error detected in the compilation of "/b/cuda.cu".')
    assert not layout.worth_retrying(torch_says)
    assert layout.worth_retrying(torch_says.replace('expected a ";"', 'identifier "half" is undefined'))
    for own in ('cuda.cu(4): error: expected a ";"', "cuda.cu(1): catastrophic error: cannot open source file \"mine.h\"",
                "ptxas error   : Entry function uses too much shared data", "",
                "main.cpp:3:5: error: 'vector' is not a member of 'std'"):  # main.cpp: the same text heavy
        assert not layout.worth_retrying(own), own
    # a slimmed main.cpp: its missing names are the left-out headers' doing; its syntax errors are not
    assert layout.worth_retrying("main.cpp:3:5: error: 'vector' is not a member of 'std'", main_slimmed=True)
    assert not layout.worth_retrying("main.cpp:3:5: error: expected ';' before '}' token", main_slimmed=True)


def test_main_cpp_is_slimmed_only_where_aten_suffices():
    assert layout.main_kind(WRAPPER) == pch.SLIM and layout.main_kind([WRAPPER, "int x;"]) == pch.SLIM
    assert layout.main_kind(None) == pch.SLIM
    for needs_more in ("py::object o;", "torch::nn::Linear l(1, 1);", "torch::NoGradGuard g;",
                       "torch::autograd::Function<F> f;", "pybind11::module_ m;"):
        assert layout.main_kind([WRAPPER, needs_more]) == pch.FULL, needs_more
    assert layout.main_kind("// torch::nn in a comment\n" + WRAPPER) == pch.SLIM


# -- the rewrite -----------------------------------------------------------------------------
def test_rewrite_light_pch_and_heavy():
    rec = record(extra_cuda_cflags=["-O3"])
    light = inline.rewrite(rec, layout.LIGHT, "/cache/pch/abc")
    assert light["no_implicit_headers"] is True
    assert light["cuda_sources"][:2] == inline.CUDA_PRELUDE and "torch/types.h" not in "".join(light["cuda_sources"])
    first = light["cpp_sources"][0]
    assert '#include "/cache/pch/abc/ks_torch.h"' in first and first.startswith('#if __has_include(')
    # the wrapper uses nothing beyond ATen: the slim includes, not torch/extension.h
    assert first.rstrip().endswith("\n".join(pch.SLIM_INCLUDES)) and "torch/extension.h" not in first
    assert light["cpp_sources"][1:] == [WRAPPER] and light["extra_cuda_cflags"] == ["-O3"]
    assert light["functions"] == ["twice"]
    heavy_rec = record(cuda=HEAVY_CU)
    p = inline.rewrite(heavy_rec, layout.PCH, None)
    assert p["cuda_sources"][:3] == inline.TORCH_CUDA_PRELUDE  # what load_inline would prepend
    assert "#include <torch/extension.h>" not in p["cuda_sources"][3]
    assert p["cpp_sources"][0] == "\n".join(pch.SLIM_INCLUDES)  # no header built: the slim includes alone
    nn = record(cpp="#include <torch/extension.h>\n" + WRAPPER + "torch::nn::Linear lin(1, 1);\n")
    full = inline.rewrite(nn, layout.LIGHT, "/cache/pch/abc")
    assert full["cpp_sources"][0].rstrip().endswith("#include <torch/extension.h>")  # torch::nn: the full header
    assert full["cpp_sources"][1] == nn["cpp_sources"]
    ext = record(cpp="#include <torch/extension.h>\n" + WRAPPER)
    slim = inline.rewrite(ext, layout.LIGHT, None)
    assert "#include <torch/extension.h>" not in slim["cpp_sources"][1] and "torch::empty_like" in slim["cpp_sources"][1]
    assert inline.rewrite(heavy_rec, layout.HEAVY, "/x") == heavy_rec
    own = record(no_implicit_headers=True)  # the candidate manages its own headers: left alone
    assert inline.rewrite(own, layout.LIGHT, "/x") == own
    assert rec == record(extra_cuda_cflags=["-O3"])  # the candidate's record is not mutated


class FakeBuild:
    """A builder that fails the layouts it is told to, with the given message."""

    def __init__(self, fail: dict[str, str]):
        self.fail, self.calls = fail, []

    def __call__(self, kw: dict, where: str):
        chosen = os.path.basename(where)
        self.calls.append((chosen, kw))
        if chosen in self.fail:
            raise RuntimeError(f"Error building extension 'ext':\n{self.fail[chosen]}")
        return f"module from {chosen}"


def test_fast_build_records_its_layout_and_the_gpu_stage_repeats_it(tmp_path):
    b = FakeBuild({})
    log = inline.BuildLog()
    assert inline.build_inline(b, record(), str(tmp_path), log=log) == "module from light"
    marker = json.loads((tmp_path / inline.MARKER).read_text())
    assert marker["layout"] == "light" and not marker["fell_back"] and log.calls[0]["layout"] == "light"
    again = FakeBuild({})
    inline.build_inline(again, record(), str(tmp_path), pch_root=str(tmp_path / "elsewhere"))
    assert [c[0] for c in again.calls] == ["light"] and again.calls[0][1] == b.calls[0][1]  # the very same call


def test_missing_declaration_falls_back_to_the_call_as_written(tmp_path):
    b = FakeBuild({"light": 'cuda.cu(9): error: namespace "std" has no member "vector"'})
    log = inline.BuildLog()
    assert inline.build_inline(b, record(), str(tmp_path), log=log) == "module from heavy"
    assert [c[0] for c in b.calls] == ["light", "heavy"]
    assert b.calls[1][1] == record()  # heavy: exactly the candidate's arguments
    assert not (tmp_path / "light").exists()  # the failed attempt leaves nothing behind
    assert json.loads((tmp_path / inline.MARKER).read_text())["layout"] == "heavy" and log.calls[0]["fell_back"]
    gpu = FakeBuild({})
    assert inline.build_inline(gpu, record(), str(tmp_path)) == "module from heavy"
    assert [c[0] for c in gpu.calls] == ["heavy"]


def test_the_candidates_own_errors_are_not_built_twice(tmp_path):
    b = FakeBuild({"light": 'cuda.cu(4): error: expected a ";"', "heavy": "never reached"})
    with pytest.raises(RuntimeError, match='expected a ";"'):
        inline.build_inline(b, record(), str(tmp_path))
    assert [c[0] for c in b.calls] == ["light"] and not (tmp_path / inline.MARKER).exists()
    both = FakeBuild({"light": 'cuda.cu(2): error: identifier "foo" is undefined',
                      "heavy": 'cuda.cu(5): error: identifier "foo" is undefined'})
    with pytest.raises(RuntimeError, match="cuda.cu.5.: error"):  # the heavy build's own log
        inline.build_inline(both, record(), str(tmp_path / "2"))
    assert [c[0] for c in both.calls] == ["light", "heavy"]


def test_a_timeout_is_not_retried(tmp_path):
    def slow(kw, where):
        raise subprocess.TimeoutExpired("nvcc", 1)

    with pytest.raises(subprocess.TimeoutExpired):
        inline.build_inline(slow, record(), str(tmp_path))


def test_without_no_implicit_headers_everything_builds_heavy(tmp_path):
    b = FakeBuild({})
    inline.build_inline(b, record(), str(tmp_path), fast=False)
    assert [c[0] for c in b.calls] == ["heavy"] and b.calls[0][1] == record()
    assert inline.supports_no_implicit_headers(lambda name, cpp_sources, no_implicit_headers=False: None)
    assert not inline.supports_no_implicit_headers(lambda name, cpp_sources: None)


def test_retry_builds_as_version_zero(tmp_path):
    """torch numbers a name's rebuilds in a process: the heavy retry must be the name the GPU
    stage's fresh process loads, not name_v1."""
    import torch.utils.cpp_extension as cpp

    cpp.JIT_EXTENSION_VERSIONER.entries["ext"] = ("hash", 0)
    inline.build_inline(FakeBuild({"light": 'cuda.cu(1): error: identifier "x" is undefined'}), record(), str(tmp_path))
    assert "ext" not in cpp.JIT_EXTENSION_VERSIONER.entries


def test_header_key_follows_flags_and_sits_in_the_cache(tmp_path):
    base, o3 = pch.spec(), pch.spec(["-O3"])
    assert base["key"] != o3["key"] and o3["flags"][-1] == "-O3"
    assert not any(f.startswith("-DTORCH_EXTENSION_NAME=") for f in base["flags"])  # one header for every name
    assert "-DTORCH_API_INCLUDE_EXTENSION_H" in base["flags"]
    assert pch.directory(str(tmp_path)) == str(tmp_path / base["key"])
    assert pch.directory(str(tmp_path), kind=pch.SLIM) == str(tmp_path / (base["key"] + "-slim"))
    assert pch.ready(str(tmp_path)) is None and pch.ready(None) is None  # not built: plain main.cpp
    assert pch.ready(str(tmp_path), kind=pch.SLIM) is None


def test_gpu_idle_counts_only_waits_for_builds():
    import time

    from kernelsmith.evaluate.fastbuild import IdleMeter, gpu_idle_of

    m = IdleMeter()
    span = m.open(pending=True)
    time.sleep(0.05)  # waiting for the first build
    span.stop()
    time.sleep(0.05)  # the GPU stage works
    span.start()
    span.stop()  # the next build was already done
    span.close()
    s = m.summary()
    assert s["gpu_waits"] == 2 and 0.04 < s["gpu_idle_s"] < s["gpu_total_s"]
    assert 0.2 < s["gpu_idle_fraction"] < 0.8

    class Pool:
        evaluators = [type("E", (), {"gpu_idle": m})(), type("E", (), {"gpu_idle": m})()]

    both = gpu_idle_of(Pool())
    assert both["gpu_idle_s"] == pytest.approx(2 * s["gpu_idle_s"], abs=1e-3)
    assert gpu_idle_of(object()) is None


# -- real compiles ------------------------------------------------------------------------------
@nvcc
def test_light_cuda_source_compiles_without_torch_headers_with_torchs_flags(tmp_path):
    """The light layout's cuda.cu, as load_inline would write it, through nvcc with torch's
    own flags: about a second, where torch's headers take most of a minute."""
    from kernelsmith.harness.compile import _arch_flag, _nvcc, inline_sources

    kw = inline.rewrite(record(), layout.LIGHT, None)
    _, cuda = inline_sources(kw)
    assert "torch" not in cuda.split("//")[0]
    src = tmp_path / "cuda.cu"
    src.write_text(cuda)
    _, _, flags = pch.torch_build_flags(pch.cuda_home())
    proc = subprocess.run([_nvcc(), *flags, _arch_flag("9.0"), "-c", str(src), "-o", str(tmp_path / "cuda.o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "cuda.o").stat().st_size > 0


@pytest.fixture(scope="module")
def header(tmp_path_factory):
    root = tmp_path_factory.mktemp("pch")
    out = pch.build(str(root), kind=pch.SLIM)  # what the usual wrapper takes
    return root, out


@nvcc
@pytest.mark.slow
def test_main_cpp_uses_the_precompiled_header(header, tmp_path):
    """GCC takes ks_torch.h.gch (printed with a '!' by -H) for the light layout's main.cpp."""
    root, built = header
    assert built["built"] and os.path.exists(os.path.join(built["dir"], pch.HEADER + ".gch"))
    assert pch.ready(str(root), kind=pch.SLIM) == built["dir"] and pch.build(str(root), kind=pch.SLIM)["built"] is False  # once
    from kernelsmith.harness.compile import inline_sources

    main, _ = inline_sources(inline.rewrite(record(), layout.LIGHT, built["dir"]))
    src = tmp_path / "main.cpp"
    src.write_text(main)
    s = pch.spec()
    proc = subprocess.run([*s["cxx"].split(), *s["flags"], "-DTORCH_EXTENSION_NAME=ext", "-Winvalid-pch", "-H",
                           "-c", str(src), "-o", str(tmp_path / "main.o")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"! {built['dir']}/{pch.HEADER}.gch" in proc.stderr
    assert "not used because" not in proc.stderr


@nvcc
@pytest.mark.slow
def test_light_candidate_through_the_compile_stage(header, tmp_path):
    """A light fixture through the process sandbox's compile stage: light layout with the
    header; a kernel typo fails once (no heavy retry) with the candidate's own error."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.task import Task

    root, built = header
    cache = tmp_path / "cache"
    (cache / "pch").mkdir(parents=True)
    shutil.copytree(built["dir"], cache / "pch" / os.path.basename(built["dir"]))  # a warm header cache
    task = Task.load(ROOT / "tasks" / "level1" / "005_relu.py")
    code = (LIGHT / "level1_005_relu.py").read_text()
    with Evaluator(EvalConfig(cache_dir=cache, arch="9.0", compile_workers=1), sandbox=LocalSandbox()) as ev:
        ev.headers.variants = ((pch.SLIM, ()),)  # the others are not needed here
        res = ev.compile(task, code)
        assert res.ok, res.log
        markers = list((cache / "build").glob(f"*/*/{inline.MARKER}"))
        assert len(markers) == 1
        info = json.loads(markers[0].read_text())
        assert info["layout"] == "light" and info["pch"] == str(cache / "pch" / os.path.basename(built["dir"]))
        main = (markers[0].parent / "light" / "main.cpp").read_text()
        assert main.startswith("#if __has_include(") and "relu_forward" in main
        bad = ev.compile(task, code.replace("y[i] = {expr};".format(expr="fmaxf(v, 0.f)"), "y[i] = fmaxf(v, 0.f)"))
        assert not bad.ok and "expected" in bad.log


@nvcc
@pytest.mark.slow
def test_light_layout_gives_the_same_device_code(tmp_path):
    """The light layout only leaves torch's headers out: every light fixture's kernels
    compile to the same PTX with and without load_inline's torch prelude (less the
    one-byte globals torch's headers define)."""
    from kernelsmith.harness.compile import _nvcc

    _, _, flags = pch.torch_build_flags(pch.cuda_home())
    flags = [f for f in flags if not f.startswith("-DTORCH_EXTENSION_NAME")]
    srcs = []
    for p in sorted(LIGHT.glob("level*.py"))[:3]:  # each torch prelude costs nvcc most of a minute
        srcs.append(p.read_text().split('cuda_source = r"""', 1)[1].split('"""', 1)[0])

    def ptx(prelude: list[str], tag: str) -> list[str]:
        src = tmp_path / f"{tag}.cu"
        src.write_text("\n".join(prelude) + "\n" + "\n".join(f"namespace n{i} {{\n{s}\n}}" for i, s in enumerate(srcs)))
        out = tmp_path / f"{tag}.ptx"
        proc = subprocess.run([_nvcc(), *flags, "-arch=sm_90", "-ptx", str(src), "-o", str(out)],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return [ln for ln in out.read_text().splitlines()
                if not ln.startswith("//") and not ln.startswith(".global .align 1 .b8 _ZN")]

    light = ptx(inline.CUDA_PRELUDE, "light")
    heavy = ptx(inline.TORCH_CUDA_PRELUDE, "heavy")
    assert any(".entry" in ln for ln in light)
    assert light == heavy


def test_compile_and_gpu_jobs_get_the_header_cache_under_the_mounted_cache(tmp_path):
    """The header cache is <cache>/pch: the directory Docker mounts read-write and the process
    sandbox reaches; both job kinds are told where it is (their namespace mounts it back)."""
    from concurrent.futures import Future

    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.base import JobOutcome
    from kernelsmith.task import Task

    class Mounting:
        name = "fake"

        def __init__(self):
            self.mounts = {}

        def add_mount(self, path, mode):
            self.mounts[path] = mode

    class Server:
        def __init__(self):
            self.jobs = []

        def submit(self, job, args, timeout=None, writable=None):
            self.jobs.append((job, args))
            f = Future()
            f.set_result(JobOutcome("ok", {"ok": True, "backend": "load_inline", "seconds": 0.1}))
            return f

    box, srv = Mounting(), Server()
    ev = Evaluator(EvalConfig(cache_dir=tmp_path, arch="9.0", compile_workers=1), sandbox=box)
    try:
        ev.headers.variants = ()  # nothing to build here
        ev._server = lambda role: srv
        task = Task.load(ROOT / "tasks" / "level1" / "005_relu.py")
        assert ev.compile(task, (LIGHT / "level1_005_relu.py").read_text()).ok
        job, args = srv.jobs[0]
        assert job == "compile" and args["pch_root"] == str(tmp_path / "pch")
        assert box.mounts[str(tmp_path)] == "rw" and args["pch_root"].startswith(str(tmp_path) + "/")
        assert (tmp_path / "pch").is_dir() and (tmp_path / "pch").stat().st_mode & 0o005 == 0o005
    finally:
        ev.close()


def test_the_first_inline_compile_does_not_wait_for_the_header(tmp_path, monkeypatch):
    """A fresh cache: the header is built in the background and the first build goes
    without it (a build without it is the same object, and sooner than waiting for it)."""
    import threading
    from concurrent.futures import Future

    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.base import JobOutcome
    from kernelsmith.task import Task

    release, building = threading.Event(), threading.Event()

    def slow_build(self, proc=None, err=""):
        building.set()
        release.wait(60)
        self._first.set()

    from kernelsmith.evaluate.fastbuild import HeaderCache

    monkeypatch.setattr(HeaderCache, "_spawn", lambda self: (None, ""))
    monkeypatch.setattr(HeaderCache, "_build_all", slow_build)

    class Server:
        jobs: list = []

        def submit(self, job, args, timeout=None, writable=None):
            self.jobs.append(job)
            f = Future()
            f.set_result(JobOutcome("ok", {"ok": True, "backend": "load_inline", "seconds": 0.1}))
            return f

    class Box:
        name = "fake"

        def add_mount(self, path, mode):
            pass

    ev = Evaluator(EvalConfig(cache_dir=tmp_path, arch="9.0", compile_workers=1), sandbox=Box())
    try:
        ev.headers.variants = ((pch.SLIM, ()),)
        ev._server = lambda role: Server()
        task = Task.load(ROOT / "tasks" / "level1" / "005_relu.py")
        done = []
        t = threading.Thread(target=lambda: done.append(ev.compile(task, (LIGHT / "level1_005_relu.py").read_text())))
        t.start()
        t.join(20)
        assert building.wait(5), "the header build was not started"
        assert done and done[0].ok and not release.is_set(), "the compile waited for the header"
    finally:
        release.set()
        ev.close()


def test_extra_flags_count_as_torchs_ninja_file_passes_them():
    """torch joins a candidate's flags with spaces: KernelBench's extra_cflags=[""] is no flag
    (the header for no flags applies) and "-O3 -DX" is two."""
    from kernelsmith.harness.compile import _flags

    assert _flags([""]) == [] and _flags(None) == [] and _flags(["-O3 -DX=1", "-g"]) == ["-O3", "-DX=1", "-g"]
    assert pch.spec([""])["key"] == pch.spec(())["key"] and pch.spec([" -O3 "])["key"] == pch.spec(["-O3"])["key"]


@nvcc
@pytest.mark.slow
def test_a_header_build_outlives_the_thread_that_started_it(tmp_path):
    """The builder is a process of its own session, started before start() returns: a run
    that exits at once (without close) still gets its header built, and the stale directory
    a killed builder left is swept."""
    import subprocess
    import sys
    import time

    root = tmp_path / "pch"
    root.mkdir()
    stale = root / f".{pch.spec()['key']}-slim.deadbeef"
    stale.mkdir()
    (stale / pch.HEADER).write_text("// left by a builder that was killed\n")
    code = ("import sys; from pathlib import Path; from kernelsmith.evaluate.fastbuild import HeaderCache; "
            f"HeaderCache(Path({str(root)!r}), variants=(('slim', ()),)).start(); sys.exit(0)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=str(ROOT))
    assert time.perf_counter() - t0 < 30  # it did not wait for the header
    deadline = time.time() + 600
    while pch.ready(str(root), kind=pch.SLIM) is None and time.time() < deadline:
        time.sleep(2)
    assert pch.ready(str(root), kind=pch.SLIM), sorted(os.listdir(root))
    assert not stale.exists()
    assert [n for n in os.listdir(root) if os.path.isdir(root / n) and n.startswith(".")] == []


@nvcc
@pytest.mark.slow
def test_close_lets_the_first_header_finish_and_stops_the_rest(tmp_path):
    """A one-shot run (`kernelsmith compile`) is shorter than a header build: closing waits
    for the first variant (the next run finds it), then stops the builder, and nothing half
    built is left."""
    import time

    from kernelsmith.evaluate.fastbuild import HeaderCache

    root = tmp_path / "pch"
    cache = HeaderCache(root, variants=((pch.SLIM, ()), (pch.FULL, ())))
    cache.start()
    builder = cache._proc
    cache.close()
    assert pch.ready(str(root), kind=pch.SLIM) and not pch.ready(str(root), kind=pch.FULL)
    assert builder.poll() is not None
    time.sleep(0.5)
    assert [n for n in os.listdir(root) if os.path.isdir(root / n) and n.startswith(".")] == []
