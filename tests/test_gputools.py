"""Nsight Compute and compute-sanitizer support without a GPU: the output parsers, the
fallback when a tool is missing (through the real sandbox), and how optimize uses them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernelsmith.agent import ToolingEvaluator
from kernelsmith.harness import gputools
from kernelsmith.results import ErrorClass, Verdict
from tests.search.search_fakes import FakeEvaluator, correct, kernel, task

# The layout of `ncu --csv --page raw`: program output and ==PROF== lines, a header, a units row.
NCU_CSV = '''==PROF== Connected to process 123 (/usr/bin/python3)
==PROF== Profiling "sgemm_nn" - 0: 0%....50%....100% - 9 passes
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","dram__throughput.avg.pct_of_peak_sustained_elapsed","sm__throughput.avg.pct_of_peak_sustained_elapsed","launch__registers_per_thread","smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio","smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio","gpu__time_duration.sum"
"","","","","","","","","","","","%","%","register/thread","ratio","ratio","nsecond"
"0","123","python3","vm","sgemm_nn","1","7","(256, 1, 1)","(32, 32, 1)","0","9.0","12.5","81.25","127","0.5","2.75","2,500,000"
"1","123","python3","vm","sgemm_nn","1","7","(256, 1, 1)","(32, 32, 1)","0","9.0","13.5","80.75","127","0.7","2.25","2,600,000"
'''


def test_parse_and_summarize_ncu_csv():
    rows = gputools.parse_ncu_csv(NCU_CSV)
    assert len(rows) == 2 and rows[0]["Kernel Name"] == "sgemm_nn"
    assert rows[1]["gpu__time_duration.sum"] == 2_600_000.0  # thousands separators removed
    text = gputools.summarize_ncu(rows)
    assert "sgemm_nn (2 launches)" in text
    assert "DRAM throughput % of peak 13" in text and "SM throughput % of peak 81" in text
    assert text.index("barrier 2.50") < text.index("long scoreboard (memory) 0.60")  # biggest stall first
    assert gputools.parse_ncu_csv("==ERROR== ERR_NVGPUCTRPERM - no permission") == []


def test_parse_sanitizer_output():
    clean = "========= COMPUTE-SANITIZER\n========= ERROR SUMMARY: 0 errors\n"
    assert gputools.parse_sanitizer(clean) == (0, "")
    bad = ("========= COMPUTE-SANITIZER\n========= Invalid __global__ write of size 4 bytes\n"
           "=========     at oob_write+0x70\n========= ERROR SUMMARY: 3 errors\n")
    n, first = gputools.parse_sanitizer(bad)
    assert n == 3 and first.startswith("Invalid __global__ write")
    assert gputools.parse_sanitizer("Segmentation fault")[0] is None


def test_parse_racecheck_and_failed_programs():
    # Texts as compute-sanitizer printed them on the H200 (racecheck has its own summary line).
    race_clean = "========= COMPUTE-SANITIZER\n========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n"
    assert gputools.parse_sanitizer(race_clean) == (0, "")
    race_bad = ("========= COMPUTE-SANITIZER\n========= Error: Race reported between Write access at reduce+0x90\n"
                "=========     and Read access at reduce+0xb0 [128 hazards]\n"
                "========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n")
    n, first = gputools.parse_sanitizer(race_bad)
    assert n == 1 and first.startswith("Error: Race reported")
    capped = ("========= COMPUTE-SANITIZER\n========= Warning: Maximum number of hazards reached. Environment variable "
              "NV_COMPUTE_SANITIZER_MAX_RACECHECK_HAZARDS can be used to increase this count.\n"
              + race_bad.split("\n", 1)[1])
    n, first = gputools.parse_sanitizer(capped)  # the finding is quoted, not the cap warning
    assert n == 1 and first.startswith("Error: Race reported"), first
    failed = ("========= COMPUTE-SANITIZER\nTraceback (most recent call last):\nRuntimeError: CUDA driver error\n"
              "========= Error: process didn't terminate successfully\n========= Target application returned an error\n"
              "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n")
    assert gputools.parse_sanitizer(failed) == (None, "")  # no verdict: the program itself failed
    assert "RuntimeError: CUDA driver error" in gputools._program_output(failed)


@pytest.mark.skipif(shutil.which("ncu") is not None, reason="ncu is installed: the fallback is not reachable")
def test_tools_missing_fall_back_with_a_note(tmp_path):
    """Through the real process sandbox: the GPU-side jobs say why there is no profile."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.task import Task

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed: the candidate cannot compile here")
    root = Path(__file__).resolve().parents[1]
    t = Task.load(root / "tasks" / "level1" / "005_relu.py")
    code = (root / "tests" / "fixtures" / "solutions" / "level1_005_relu" / "correct_cupy.py").read_text()
    with Evaluator(EvalConfig(cache_dir=tmp_path, arch="9.0"), sandbox=LocalSandbox()) as ev:
        assert ev.profile(t, code).startswith("(no profile: Nsight Compute (ncu) is not installed")
        if shutil.which("compute-sanitizer") is None:
            assert ev.sanitize(t, code).startswith("(not checked: compute-sanitizer is not installed")


class _Tools(FakeEvaluator):
    def __init__(self, sanitizer: str):
        super().__init__(default=lambda tag: correct(float(tag[4:]) / 10))
        self.sanitizer_text = sanitizer
        self.profiled: list[str] = []

    def profile(self, t, code):
        self.profiled.append(code)
        return "sgemm_nn: DRAM throughput % of peak 12"

    def sanitize(self, t, code):
        return self.sanitizer_text


def test_new_bests_get_profiled_and_sanitized():
    inner = _Tools("memcheck: 0 error(s); racecheck: 0 error(s)")
    ev = ToolingEvaluator(inner, profile=True, sanitize=True)
    res = ev.evaluate_many([(task(), kernel("fast15")), (task(), kernel("fast12")), (task(), kernel("fast20"))])
    assert [bool(r.profile) for r in res] == [True, False, True]  # only new bests
    assert res[0].sanitizer.startswith("memcheck: 0")


def test_a_sanitizer_finding_disqualifies_the_kernel():
    inner = _Tools("memcheck: 2 error(s) - first: Invalid __global__ write; racecheck: 0 error(s)")
    res = ToolingEvaluator(inner, sanitize=True).evaluate_many([(task(), kernel("fast30"))])
    assert res[0].verdict is Verdict.INCORRECT and res[0].error is ErrorClass.SANITIZER
    assert "Invalid __global__ write" in res[0].message


def test_profile_and_sanitizer_reach_the_prompt():
    from kernelsmith.prompts import result_summary

    r = correct(2.0)
    r.profile = "sgemm_nn (2 launches): DRAM throughput % of peak 13"
    r.sanitizer = "memcheck: 0 error(s); racecheck: 0 error(s)"
    text = result_summary(r)
    assert "Nsight Compute profile:\nsgemm_nn (2 launches)" in text and "compute-sanitizer: memcheck: 0" in text


def test_one_tools_findings_survive_the_other_failing(tmp_path):
    """Seen on the H200: an out-of-bounds read that memcheck reports faults under racecheck."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator

    ev = Evaluator(EvalConfig(cache_dir=tmp_path))
    ev._tool_job = lambda job, t, c, a: {
        "available": False, "note": "the program failed under racecheck: CUDA_ERROR_ILLEGAL_ADDRESS",
        "memcheck": {"errors": 2, "first": "Invalid __global__ read of size 4 bytes"},
        "racecheck": {"errors": None, "first": ""}}
    text = ev.sanitize(None, "")
    assert text.startswith("memcheck: 2 error(s) - first: Invalid __global__ read")
    assert "racecheck: no verdict" in text and "CUDA_ERROR_ILLEGAL_ADDRESS" in text
    ev._tool_job = lambda job, t, c, a: {"available": False, "note": "compute-sanitizer is not installed here"}
    assert ev.sanitize(None, "").startswith("(not checked: compute-sanitizer is not installed")


def test_an_executor_without_the_tools_gets_a_note_not_a_crash():
    """An evaluator with no tool jobs: sanitizing there says it did not run."""
    inner = FakeEvaluator(default=lambda tag: correct(float(tag[4:]) / 10))
    assert not hasattr(inner, "sanitize")
    res = ToolingEvaluator(inner, profile=True, sanitize=True).evaluate_many([(task(), kernel("fast15"))])
    assert res[0].verdict is Verdict.CORRECT
    assert res[0].sanitizer == "not run: this executor has no sanitize job"
    assert res[0].profile == "not run: this executor has no profile job"


# --- a second, independent evaluation of each new best ----------------------------------
class _Retimed(FakeEvaluator):
    """First evaluation from the tag (fastNN = NN/10 x); the second from `again`."""

    def __init__(self, again):
        super().__init__(default=lambda tag: correct(float(tag[4:]) / 10))
        self.again, self.retimed = again, []

    def retime(self, t, code):
        self.retimed.append(code)
        return self.again(code)


def _timed(r):
    r.wall = {"compile": 60.0, "startup": 0.5, "startup.cuda_init": 0.3, "check": 1.0, "time": 2.0}
    return r


def _with_ci(r, lo, hi):
    r.timing.speedup_eager_ci = (lo, hi)
    return r


def test_confirmation_keeps_the_lower_of_two_sessions():
    from tests.search.search_fakes import tag_of

    inner = _Retimed(lambda code: _with_ci(correct(1.8), 1.75, 1.85) if tag_of(code) == "fast20" else correct(1.0))
    inner.default = lambda tag: _with_ci(correct(float(tag[4:]) / 10), 1.9, 2.1)
    inner.again = (lambda f: lambda code: _timed(f(code)))(inner.again)
    ev = ToolingEvaluator(inner, confirm=True)
    r = ev.evaluate_many([(task(), kernel("fast20"))])[0]
    assert r.wall["confirm"] == 3.5  # the second session's GPU stages (not its compile or parts)
    assert r.correct and r.speedup == 1.8  # the second session measured less: that one is kept
    assert r.timing.speedup_eager_ci == (1.75, 2.1)  # covering both sessions
    assert r.timing.other_session_speedup == 2.0 and r.timing.other_session_ci == (1.9, 2.1)
    assert ev.best == 1.8
    # the next candidate must beat the confirmed 1.8, not the first measurement's 2.0
    inner.again = lambda code: _with_ci(correct(1.95), 1.9, 2.0)
    r2 = ev.evaluate_many([(task(), kernel("fast19"))])[0]
    assert r2.speedup == 1.9 and ev.best == 1.9 and len(inner.retimed) == 2


def test_a_kernel_failing_its_second_evaluation_is_disqualified():
    from tests.search.search_fakes import incorrect

    inner = _Retimed(lambda code: incorrect("trial 3: 12 of 1048576 values outside atol"))
    ev = ToolingEvaluator(inner, confirm=True)
    r = ev.evaluate_many([(task(), kernel("fast30"))])[0]
    assert r.verdict is Verdict.INCORRECT and ev.best == 0.0
    assert r.message.startswith("passed once, then failed a second, independent evaluation: trial 3")


def test_an_evaluator_failure_on_the_second_run_leaves_the_verdict():
    from kernelsmith.results import EvalResult

    lost = EvalResult(Verdict.RUNTIME_ERROR, "t", "c", error=ErrorClass.SANDBOX, message="the GPU worker died")
    for inner in (_Retimed(lambda code: lost), FakeEvaluator(default=lambda tag: correct(1.5))):
        r = ToolingEvaluator(inner, confirm=True).evaluate_many([(task(), kernel("fast15"))])[0]
        assert r.correct and r.speedup == 1.5
        assert r.warnings and r.warnings[-1].startswith("speedup not confirmed")


def test_retime_is_a_fresh_evaluation_past_the_result_cache(tmp_path, monkeypatch):
    """Evaluator.retime runs the GPU stage again although the result is cached, and does
    not overwrite the cached result (with the GPU stage and the compile faked)."""
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate import evaluator as evmod
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.results import CompileResult
    from kernelsmith.sandbox.base import JobOutcome

    runs = []

    class Server:
        def submit(self, job, args, timeout=None, writable=None):
            class Done:
                def result(self_inner):
                    runs.append(job)
                    return JobOutcome(status="ok", result={})
            return Done()

    def from_job(out, task_hash, chash, st, comp, baseline, system):
        r = correct(1.0 + len(runs) / 10)  # 1.1 the first time, 1.2 the second
        r.task_hash, r.candidate_hash = task_hash, chash
        return r

    monkeypatch.setattr(evmod, "from_job", from_job)
    ev = Evaluator(EvalConfig(cache_dir=tmp_path, compile_baseline=False))
    ev.probe_info = {"system": {"gpu": "FakeGPU", "driver": "1", "torch": "9.9"}, "ceilings": {}}
    monkeypatch.setattr(ev, "_server", lambda role: Server())
    monkeypatch.setattr(ev, "_compile", lambda cand, build: CompileResult(ok=True, backend="cupy"))
    from kernelsmith.task import Task

    root = Path(__file__).resolve().parents[1]
    t = Task.load(root / "tasks/level1/001_leaky_relu_scale.py")  # a real candidate: it passes the screen
    code = (root / "tests/fixtures/solutions/level1_001_leaky_relu_scale/correct_cupy.py").read_text()
    first = ev.evaluate(t, code)
    assert first.speedup == 1.1 and not first.cached
    again = ev.retime(t, code)
    assert again.speedup == 1.2 and runs == ["evaluate", "evaluate"]
    cached = ev.evaluate(t, code)
    assert cached.cached and cached.speedup == 1.1 and len(runs) == 2  # the cache still holds the first
    ev.close()
