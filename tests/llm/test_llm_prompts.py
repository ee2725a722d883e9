"""Prompt parts: the rules, the task, the GPU, and feedback an LLM can act on."""

from __future__ import annotations

from kernelsmith.llm.extract import extract_code
from kernelsmith.prompts import (result_summary, SYSTEM_PROMPT, build_messages, clip, feedback_section, gpu_section,
                                     history_section, reply_format_section, task_section)
from kernelsmith.results import (Bound, CheckResult, CompileResult, ErrorClass, EvalResult, StaticResult,
                                 TimingResult, TimingStats, Verdict)
from kernelsmith.search.types import Candidate
from kernelsmith.task import Task

TASK_SRC = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.nn.functional.leaky_relu(x) * self.scale


def get_inputs():
    return [torch.randn(4096, 4096)]


def get_init_inputs():
    return [2.0]
'''
TASK = Task.from_source(TASK_SRC, "level1/001_leaky_relu_scale.py")
CODE = "import torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
PROBE = {"system": {"gpu": "NVIDIA H200", "compute_capability": "9.0"},
         "ceilings": {"bandwidth": 4.1e12, "peak_flops": 7.5e14, "l2_bytes": 60 * 2**20, "sms": 132,
                      "memory_bytes": 141e9}}


def stats(ms: float) -> TimingStats:
    return TimingStats([ms] * 3, ms, ms * 0.98, ms * 1.02, ms, 0.0)


def result(verdict: Verdict, **kw) -> EvalResult:
    return EvalResult(verdict=verdict, task_hash="t", candidate_hash="c", **kw)


def correct(speedup: float) -> EvalResult:
    t = TimingResult(ok=True, candidate=stats(1.0 / speedup), eager=stats(1.0), speedup_eager=speedup,
                     speedup_eager_ci=(speedup * 0.95, speedup * 1.05), compiled_ms=0.8,
                     speedup_compile=0.8 * speedup,
                     bound=Bound(flops=3e7, bytes=1.34e8, peak_flops=7.5e14, bandwidth=4.1e12, floor_ms=0.0327,
                                 fraction=0.0327 * speedup))
    return result(Verdict.CORRECT, timing=t, static=StaticResult(ok=True, warnings=[
        "tensor-glue: elementwise op `y.mul_` at line 30; fuse the arithmetic into your CUDA kernel"]))


def test_system_prompt_mirrors_the_rules():
    for needle in ("class ModelNew", "load_inline", "cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)",
                   "cp.from_dlpack", "try/except", "streams", "threads", "file", "environment", "1e-4",
                   "fresh tensors", "cuBLAS", "fast layout", "raw", "no torch, ATen or c10 header"):
        assert needle in SYSTEM_PROMPT, needle
    assert len(SYSTEM_PROMPT) < 3500


def test_compile_failure_feedback_names_the_fast_layout():
    from kernelsmith.prompts import FAST_LAYOUT_HINT
    from kernelsmith.results import CompileResult, ErrorClass, EvalResult, Verdict

    def failed(backend):
        comp = CompileResult(ok=False, error=ErrorClass.COMPILE, backend=backend, message="does not compile",
                             log="cuda.cu(3): error: identifier \"x\" is undefined")
        return result_summary(EvalResult(Verdict.COMPILE_ERROR, "t", "c", compile=comp, error=ErrorClass.COMPILE))

    text = failed("load_inline")
    assert FAST_LAYOUT_HINT in text and "is undefined" in text
    assert FAST_LAYOUT_HINT not in failed("cupy")  # a CuPy kernel has no torch headers to leave out


def test_build_messages_and_sections():
    msgs = build_messages(task_section(TASK), gpu_section(PROBE), "", reply_format_section())
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "001_leaky_relu_scale" in user and "def get_inputs" in user and "```python" in user
    assert "NVIDIA H200" in user and "132 SMs" in user and "4.10 TB/s" in user and "750 TFLOP/s" in user
    assert "sm_90" in user and "63 MB L2" in user and "141 GB" in user
    assert "ONE ```python block" in user


def test_gpu_section_tolerates_partial_probe():
    assert gpu_section({}) == "" and gpu_section(None) == ""
    assert gpu_section({"system": {"gpu": "H200"}}) == "## GPU\nH200."


def test_feedback_correct_with_speed_and_bound():
    text = feedback_section(Candidate(code=CODE, result=correct(2.0)))
    assert CODE.strip() in text
    for needle in ("Verdict: correct", "speedup vs eager 2.00x", "95% CI 1.90-2.10", "vs torch.compile 1.60x",
                   "7% of the physical floor", "memory-bound", "tensor-glue"):
        assert needle in text, (needle, text)
    assert "host time per call" not in text  # launch time not reported: not mentioned


def test_feedback_names_the_second_session():
    r = correct(2.0)
    r.timing.other_session_speedup = 2.1
    text = feedback_section(Candidate(code=CODE, result=r))
    assert "a second, independent evaluation measured 2.10x (the lower is kept)" in text, text


def test_feedback_names_a_slow_launch():
    slow = correct(2.0)
    slow.timing.candidate_launch_ms, slow.timing.eager_launch_ms = 0.35, 0.02
    text = feedback_section(Candidate(code=CODE, result=slow))
    assert "Launching it takes 0.35 ms of host time per call (PyTorch eager: 0.02 ms)" in text, text
    from kernelsmith.evaluate.convert import back_to_back

    assert back_to_back(slow.timing) == 2.0  # the 0.5 ms kernel outlasts its 0.35 ms launch
    assert "back to back" not in text
    slow.timing.candidate_launch_ms = 0.8  # now host-bound: the launch sets the pace
    slow.timing.speedup_back_to_back = back_to_back(slow.timing)
    assert slow.timing.speedup_back_to_back == 1.0 / 0.8
    text = feedback_section(Candidate(code=CODE, result=slow))
    assert "with calls back to back that is 1.25x, not 2.00x" in text, text
    quick = correct(2.0)
    quick.timing.candidate_launch_ms, quick.timing.eager_launch_ms = 0.01, 0.02  # well under the runtime
    assert "host time per call" not in feedback_section(Candidate(code=CODE, result=quick))


def test_feedback_incorrect():
    check = CheckResult(ok=False, error=ErrorClass.MISMATCH, trials=5, trials_passed=0, max_abs_error=0.0123,
                        rel_error=3.4e-3, atol=1e-4, rtol=1e-4,
                        detail="output 0: 1234 of 16777216 elements differ; worst at [17, 3]: got 1.5, expected 1.49")
    text = feedback_section(Candidate(code=CODE, result=result(Verdict.INCORRECT, check=check,
                                                                  error=ErrorClass.MISMATCH)))
    for needle in ("Verdict: incorrect (mismatch)", "5 of 5 trials", "worst at [17, 3]", "max abs error 0.0123",
                   "relative error 0.0034", "atol=0.0001"):
        assert needle in text, (needle, text)


def test_feedback_compile_error_trims_the_log():
    log = "\n".join([f"noise line {i}" for i in range(2000)] + [
        "kernel.cu(12): error: identifier \"blockDimx\" is undefined", "    int i = blockDimx * 2;"])
    comp = CompileResult(ok=False, error=ErrorClass.COMPILE, message="nvcc failed", backend="load_inline", log=log)
    text = feedback_section(Candidate(code=CODE, result=result(Verdict.COMPILE_ERROR, compile=comp,
                                                                  error=ErrorClass.COMPILE)), include_code=False)
    assert "blockDimx" in text and "nvcc failed" in text and "noise line 5\n" not in text and len(text) < 2000
    assert CODE.strip() not in text


def test_feedback_static_runtime_and_format_errors():
    static = StaticResult(ok=False, error=ErrorClass.STATIC_RULE,
                          message="torch-compute: `torch.nn.functional.gelu` at line 9; ...; implement it yourself")
    text = feedback_section(Candidate(code=CODE, result=result(Verdict.REJECTED, static=static,
                                                                  error=ErrorClass.STATIC_RULE)))
    assert "torch-compute" in text and "line 9" in text
    rt = result(Verdict.RUNTIME_ERROR, error=ErrorClass.CUDA_FAULT, message="an illegal memory access was encountered",
                output="Traceback ...\n" + "x" * 5000 + "\nRuntimeError: CUDA error")
    text = feedback_section(Candidate(code=CODE, result=rt))
    assert "illegal memory access" in text and "RuntimeError: CUDA error" in text and len(text) < 4000
    _, err = extract_code("no code here")
    text = feedback_section(Candidate(code="", format_error=err))
    assert "Format error: no `class ModelNew`" in text


def test_history_sorted_by_speedup_with_code():
    cands = [Candidate(code=CODE + "# slow\n", result=correct(1.2)),
             Candidate(code=CODE + "# broken\n", result=result(Verdict.INCORRECT, error=ErrorClass.MISMATCH)),
             Candidate(code=CODE + "# fast\n", result=correct(3.5)),
             Candidate(code=CODE + "# fast\n", result=correct(3.5))]  # duplicate code: shown once
    text = history_section(cands)
    assert text.index("# fast") < text.index("# slow") < text.index("# broken")
    assert text.count("# fast") == 1 and "3.50x vs eager" in text and "incorrect (mismatch)" in text
    assert history_section([]) == ""
    assert "# slow" not in history_section(cands, max_items=1)


def test_reply_format_diff_and_clip():
    diff = reply_format_section(diff=True)
    assert "<<<<<<< SEARCH" in diff and "=======" in diff and ">>>>>>> REPLACE" in diff
    long = "a" * 10000
    assert len(clip(long, 100)) < 160 and "chars cut" in clip(long, 100, "tail")
    huge = Candidate(code="x = 1\n" * 100000, result=correct(1.0))
    assert len(feedback_section(huge)) < 15000
