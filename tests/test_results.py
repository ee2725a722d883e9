from kernelsmith.results import (
    Bound, CheckResult, CompileResult, ErrorClass, EvalResult, StaticResult, SystemInfo, TimingResult,
    TimingStats, Verdict,
)


def test_round_trip_keeps_every_layer():
    r = EvalResult(
        Verdict.CORRECT, "t" * 64, "c" * 64,
        static=StaticResult(ok=True, warnings=["w"]),
        compile=CompileResult(ok=True, seconds=1.5, backend="cupy"),
        check=CheckResult(ok=True, trials=5, trials_passed=5, max_abs_error=1e-6, rel_error=2e-7, atol=1e-4, rtol=1e-4),
        timing=TimingResult(ok=True, candidate=TimingStats([1.0, 1.1], 1.05, 1.0, 1.1, 1.05, 0.05),
                            speedup_eager=2.0, speedup_eager_ci=(1.9, 2.1),
                            bound=Bound(1e9, 1e8, 7.9e14, 4.3e12, 0.02, 0.5)),
        system=SystemInfo(gpu="NVIDIA H200"), wall={"check": 0.3},
    )
    back = EvalResult.from_dict(r.to_dict())
    assert back == r
    assert back.timing.speedup_eager_ci == (1.9, 2.1)
    assert back.timing.candidate.cv > 0


def test_failure_is_a_value():
    r = EvalResult(Verdict.COMPILE_ERROR, "t", "c", error=ErrorClass.COMPILE, message="nvcc: error")
    d = r.to_dict()
    assert d["verdict"] == "compile_error" and d["error"] == "compile"
    assert EvalResult.from_dict(d).error is ErrorClass.COMPILE
    assert not r.correct and r.speedup is None


def test_config_from_environment(monkeypatch):
    from kernelsmith.config import EvalConfig

    monkeypatch.setenv("KERNELSMITH_COMPILE_BASELINE", "0")
    monkeypatch.setenv("KERNELSMITH_MAX_TIMING_SECONDS", "1.5")
    monkeypatch.setenv("KERNELSMITH_ATOL", "1e-3")
    monkeypatch.setenv("KERNELSMITH_HIDE_LAUNCH", "off")
    monkeypatch.setenv("KERNELSMITH_WARM_MS", "0")
    cfg = EvalConfig.from_env(trials=3)
    assert cfg.compile_baseline is False
    # both are on by default (measured on an H200, harness/timing.py); the environment turns them off
    assert cfg.timing == {"max_seconds": 1.5, "hide_launch": False, "warm_ms": 0.0}
    assert cfg.atol == 1e-3 and cfg.trials == 3 and cfg.rtol is None
    monkeypatch.setenv("KERNELSMITH_HIDE_LAUNCH", "1")
    assert EvalConfig.from_env().timing["hide_launch"] is True


def test_timing_hides_the_launch_and_warms_the_gpu_by_default(monkeypatch):
    from kernelsmith.config import EvalConfig

    for name in ("KERNELSMITH_HIDE_LAUNCH", "KERNELSMITH_WARM_MS", "KERNELSMITH_MAX_TIMING_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    from kernelsmith.harness.timing import TimingConfig
    assert EvalConfig.from_env().timing == {}  # nothing set: TimingConfig's defaults apply
    assert TimingConfig().hide_launch is True and TimingConfig().warm_ms == 2.0


def test_config_names_a_bad_environment_number(monkeypatch):
    import pytest

    from kernelsmith.config import EvalConfig

    monkeypatch.setenv("KERNELSMITH_WARM_MS", "two")
    with pytest.raises(ValueError, match="KERNELSMITH_WARM_MS='two' is not a number"):
        EvalConfig.from_env()
    monkeypatch.setenv("KERNELSMITH_WARM_MS", "2")
    monkeypatch.setenv("KERNELSMITH_HIDE_LAUNCH", "maybe")
    with pytest.raises(ValueError, match="KERNELSMITH_HIDE_LAUNCH='maybe' is not one of"):
        EvalConfig.from_env()


def test_report_says_when_the_launch_outlasts_the_kernel():
    """The events time GPU work only (the launch is hidden), so a kernel whose host launch
    is slower than the kernel must say that calls in a row would run at the host's pace."""
    from rich.console import Console

    from kernelsmith.cli.report import render
    from kernelsmith.results import TimingResult, TimingStats

    from kernelsmith.evaluate.convert import back_to_back

    def shown(launch_ms: float) -> str:
        stats = TimingStats([0.1], 0.1, 0.099, 0.101, 0.1, 0.0)
        t = TimingResult(ok=True, candidate=stats, eager=stats, speedup_eager=1.0, candidate_launch_ms=launch_ms,
                         eager_launch_ms=0.04)
        t.speedup_back_to_back = back_to_back(t)
        console = Console(record=True, width=200)
        render(EvalResult(Verdict.CORRECT, "t", "c", timing=t), console)
        return console.export_text()

    assert "host-bound" in shown(0.27) and "0.2700 ms of host time" in shown(0.27)
    assert "0.370x when calls run back to back" in shown(0.27)  # 0.1 ms of eager GPU time / 0.27 ms
    assert "host-bound" not in shown(0.05) and "back to back" not in shown(0.05)


def test_a_harness_timing_record_becomes_a_result_with_its_back_to_back_speedup():
    """from_job turns the GPU job's dict into the result: the speedup is GPU time over GPU
    time (the launch is out of the events), and the back-to-back one takes the launch in."""
    from kernelsmith.evaluate.convert import from_job
    from kernelsmith.sandbox.base import JobOutcome

    def side(ms: float) -> dict:
        return {"samples_ms": [ms] * 3, "median_ms": ms, "ci_low_ms": ms, "ci_high_ms": ms, "mean_ms": ms,
                "stdev_ms": 0.0}

    job = {"verdict": "correct", "check": {"trials": 5, "trials_passed": 5},
           "timing": {"candidate": side(0.13), "eager": side(0.14), "speedup_eager": 0.14 / 0.13,
                      "speedup_eager_ci": [1.0, 1.1], "launch_ms": {"candidate": 0.25, "eager": 0.05}}}
    r = from_job(JobOutcome("ok", job), "t", "c", StaticResult(ok=True), CompileResult(ok=True), None, SystemInfo())
    assert r.correct and r.timing.candidate_launch_ms == 0.25
    assert abs(r.timing.speedup_eager - 0.14 / 0.13) < 1e-12
    assert abs(r.timing.speedup_back_to_back - 0.14 / 0.25) < 1e-12
    assert EvalResult.from_dict(r.to_dict()).timing.speedup_back_to_back == r.timing.speedup_back_to_back


def test_a_timing_flag_keeps_the_environments_other_timing_settings(monkeypatch):
    """`kernelsmith eval --max-seconds 3` with KERNELSMITH_HIDE_LAUNCH=0: both apply (the
    flag's dict used to replace the environment's wholesale)."""
    from kernelsmith.config import EvalConfig

    monkeypatch.setenv("KERNELSMITH_HIDE_LAUNCH", "0")
    monkeypatch.setenv("KERNELSMITH_MAX_TIMING_SECONDS", "1")
    assert EvalConfig.from_env(timing={"max_seconds": 3.0}).timing == {"max_seconds": 3.0, "hide_launch": False}
    assert EvalConfig.from_env(timing=None).timing == {"max_seconds": 1.0, "hide_launch": False}
