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

    from kernelsmith.report import render
    from kernelsmith.results import TimingResult, TimingStats

    def shown(launch_ms: float) -> str:
        stats = TimingStats([0.1], 0.1, 0.099, 0.101, 0.1, 0.0)
        t = TimingResult(ok=True, candidate=stats, eager=stats, speedup_eager=1.0, candidate_launch_ms=launch_ms,
                         eager_launch_ms=0.04)
        console = Console(record=True, width=200)
        render(EvalResult(Verdict.CORRECT, "t", "c", timing=t), console)
        return console.export_text()

    assert "host-bound" in shown(0.27) and "0.2700 ms of host time" in shown(0.27)
    assert "host-bound" not in shown(0.05)
