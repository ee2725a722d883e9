"""Turning fork-server outcomes (plain JSON) into typed results."""

from __future__ import annotations

from kernelsmith.results import (
    Bound, CheckResult, CompileResult, ErrorClass, EvalResult, StaticResult, SystemInfo,
    TimingResult, TimingStats, Verdict,
)
from kernelsmith.sandbox.base import JobOutcome


def _err(value: str | None) -> ErrorClass:
    try:
        return ErrorClass(value or "none")
    except ValueError:
        return ErrorClass.SANDBOX


def compile_result(out: JobOutcome) -> CompileResult:
    if out.status == "memory":
        return CompileResult(ok=False, seconds=out.seconds, error=ErrorClass.OOM,
                             message=f"the compile used {out.memory_mb:.0f} MiB of host memory and was killed")
    if out.status == "timeout":
        return CompileResult(ok=False, seconds=out.seconds, error=ErrorClass.COMPILE_TIMEOUT,
                             message="the compile ran past its time limit and was killed")
    if out.status != "ok" or not isinstance(out.result, dict):
        detail = (out.result if isinstance(out.result, str) else out.output) or ""
        last = detail.strip().splitlines()[-1] if detail.strip() else ""
        return CompileResult(ok=False, seconds=out.seconds, error=ErrorClass.CRASH,
                             message=f"the compile job {out.status} (exit {out.exit}): {last[:300]}",
                             log=detail[-2000:])
    r = out.result
    if r.get("ok"):
        return CompileResult(ok=True, seconds=r.get("seconds", out.seconds), backend=r.get("backend", ""),
                             message="; ".join(r.get("warnings", [])))
    err = _err(r.get("error"))
    msg = "nvcc ran past its time limit" if err is ErrorClass.COMPILE_TIMEOUT else "the CUDA source does not compile"
    return CompileResult(ok=False, seconds=r.get("seconds", out.seconds), error=err, backend=r.get("backend", ""),
                         message=msg, log=r.get("log", ""))


def _stats(d: dict | None) -> TimingStats | None:
    if not d:
        return None
    return TimingStats(**{k: d[k] for k in TimingStats.__dataclass_fields__})


def _system(d: dict | None, fallback: SystemInfo) -> SystemInfo:
    if not d:
        return fallback
    known = set(SystemInfo.__dataclass_fields__)
    merged = {**fallback.__dict__, **{k: v for k, v in d.items() if k in known and v}}
    return SystemInfo(**merged)


def from_job(out: JobOutcome, task_hash: str, cand_hash: str, st: StaticResult, comp: CompileResult,
             baseline: dict | None, system: SystemInfo) -> EvalResult:
    base = dict(task_hash=task_hash, candidate_hash=cand_hash, static=st, compile=comp, output=out.output)
    if out.status == "timeout":
        return EvalResult(Verdict.TIMEOUT, error=ErrorClass.TIMEOUT, system=system,
                          message=f"the candidate ran past the {out.seconds:.0f} s limit and was killed "
                                  "(an endless kernel or a hang)", **base)
    if out.status == "memory":
        return EvalResult(Verdict.RUNTIME_ERROR, error=ErrorClass.OOM, system=system,
                          message=f"out of host memory: the candidate used {out.memory_mb:.0f} MiB of host RAM "
                                  "and was killed (keep data on the GPU; allocate once, not per call)", **base)
    if out.status == "forged":
        return EvalResult(Verdict.REJECTED, error=ErrorClass.TAMPERING, system=system,
                          message="the job's result pipe carried a result the harness did not write (forged)", **base)
    if out.status in ("crash", "lost"):
        sig = f"signal {-out.exit}" if isinstance(out.exit, int) and out.exit < 0 else f"exit code {out.exit}"
        return EvalResult(Verdict.RUNTIME_ERROR, error=ErrorClass.CRASH, system=system,
                          message=f"the process died without a result ({sig}); see its output", **base)
    if out.status == "error" or not isinstance(out.result, dict):
        return EvalResult(Verdict.RUNTIME_ERROR, error=ErrorClass.SANDBOX, system=system,
                          message=f"the evaluator failed: {str(out.result)[-800:]}", **base)
    r = out.result
    verdict = Verdict(r.get("verdict", "runtime_error"))
    res = EvalResult(verdict, error=_err(r.get("error")), message=r.get("message", ""),
                     system=_system(r.get("system"), system), wall=dict(r.get("wall", {})),
                     warnings=list(r.get("warnings", [])), **base)
    if comp.backend in ("", "none") and r.get("backend"):
        comp.backend = r["backend"]
    c = r.get("check")
    if c:
        passed = c.get("trials_passed", 0) == c.get("trials", 0) and verdict is not Verdict.INCORRECT
        res.check = CheckResult(ok=passed, trials=c.get("trials", 0), trials_passed=c.get("trials_passed", 0),
                                max_abs_error=c.get("max_abs_error"), rel_error=c.get("rel_error"),
                                atol=c.get("atol", 0.0), rtol=c.get("rtol", 0.0), detail=c.get("detail", ""),
                                error=res.error if not passed else ErrorClass.NONE,
                                message=res.message if not passed else "")
        prov = r.get("provenance")
        if prov and (prov.get("own_ms", 0) + prov.get("other_ms", 0)) > 0:
            res.check.own_kernel_share = prov["own_ms"] / (prov["own_ms"] + prov["other_ms"])
    t = r.get("timing")
    if t:
        res.timing = _timing(t, verdict, res, baseline)
    return res


def back_to_back(t: TimingResult) -> float | None:
    """Eager's time per call over the candidate's when calls are issued back to back: the
    GPU's time or the host's launch time, whichever is longer, on each side."""
    if not (t.candidate and t.eager and t.candidate_launch_ms is not None and t.eager_launch_ms is not None):
        return None
    cand = max(t.candidate.median_ms, t.candidate_launch_ms)
    return max(t.eager.median_ms, t.eager_launch_ms) / cand if cand > 0 else None


def _timing(t: dict, verdict: Verdict, res: EvalResult, baseline: dict | None) -> TimingResult:
    tr = TimingResult(ok=verdict is Verdict.CORRECT, candidate=_stats(t.get("candidate")), eager=_stats(t.get("eager")),
                      speedup_eager=t.get("speedup_eager"), rechecked_outputs=t.get("rechecked_outputs", 0))
    ci = t.get("speedup_eager_ci")
    tr.speedup_eager_ci = tuple(ci) if ci else None
    launch = t.get("launch_ms") or {}
    tr.candidate_launch_ms, tr.eager_launch_ms = launch.get("candidate"), launch.get("eager")
    tr.speedup_back_to_back = back_to_back(tr)
    tr.reference_drift, tr.profiled_ratio = t.get("reference_drift"), t.get("profiled_ratio")
    if t.get("bound"):
        tr.bound = Bound(**t["bound"])
    if baseline and baseline.get("ratio") and tr.speedup_eager and tr.eager:
        tr.compiled_ms = baseline["compiled"]["median_ms"]
        # compiled/eager from the baseline's paired session x eager/candidate from this one
        tr.speedup_compile = tr.speedup_eager * baseline["ratio"]
    if verdict is not Verdict.CORRECT:
        tr.error, tr.message = res.error, res.message
    return tr
