"""Typed, layered evaluation results.

Every stage of the cascade (static -> compile -> check -> time) produces one record.
A failure is a value here, never an exception: search, rewards and the leaderboard all
read these records, so they must survive JSON round trips unchanged (``to_dict`` /
``from_dict``) and carry enough words for a person or an LLM to act on.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any



def code_hash(code: str) -> str:
    """A candidate's identity: sha256 of its source (EvalResult.candidate_hash, the run
    store's candidates.code_hash, the build and result cache keys)."""
    return hashlib.sha256(code.encode()).hexdigest()

class Verdict(str, enum.Enum):
    """The one-word outcome of an evaluation."""

    CORRECT = "correct"  # compiled, matched the reference on every trial, timed
    INCORRECT = "incorrect"  # ran, but the output differs from the reference
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"  # raised, crashed, illegal access, OOM
    TIMEOUT = "timeout"
    REJECTED = "rejected"  # a rule or runtime check says it cheats
    INVALID_TASK = "invalid_task"  # the reference itself is broken


class ErrorClass(str, enum.Enum):
    """Why a stage failed; finer than the verdict, stable across versions."""

    NONE = "none"
    SYNTAX = "syntax"
    FORMAT = "format"  # no ModelNew, not valid candidate file
    STATIC_RULE = "static_rule"
    COMPILE = "compile"
    COMPILE_TIMEOUT = "compile_timeout"
    IMPORT = "import"  # candidate module raised while loading
    INIT = "init"  # ModelNew(*init_inputs) raised
    FORWARD = "forward"  # forward raised a Python / CUDA error
    CUDA_FAULT = "cuda_fault"  # illegal address etc.: the context is gone
    OOM = "oom"
    CRASH = "crash"  # the process died (signal, os._exit) without a result
    TIMEOUT = "timeout"
    OUTPUT_TYPE = "output_type"  # not a plain tensor, wrong structure
    SHAPE = "shape"
    DTYPE = "dtype"
    DEVICE = "device"
    ALIASING = "aliasing"  # returned an input or a view of one
    NAN = "nan"  # NaN/Inf where the reference has none
    MISMATCH = "mismatch"  # values outside tolerance
    INPUT_MUTATION = "input_mutation"
    NONDETERMINISTIC = "nondeterministic"
    TIMED_MISMATCH = "timed_mismatch"  # wrong on the outputs of timed calls
    UNACCOUNTED_WORK = "unaccounted_work"  # side streams / threads outside the timer
    BACKGROUND_THREAD = "background_thread"
    TAMPERING = "tampering"  # timer, harness or torch internals modified
    REFERENCE_SLOWED = "reference_slowed"  # the reference ran slower once the candidate was loaded
    PHASE_DEPENDENT = "phase_dependent"  # calls behave differently when profiled (or checked) than when timed
    IMPOSSIBLE_SPEED = "impossible_speed"  # faster than the physical bound
    NO_KERNEL = "no_kernel"  # none of the candidate's own kernels ran
    SANITIZER = "sanitizer"  # compute-sanitizer found memory errors or races
    TASK = "task"  # reference failed
    SANDBOX = "sandbox"  # the evaluator itself could not run the job


@dataclass
class Stage:
    """Common fields of every stage record."""

    ok: bool
    seconds: float = 0.0
    error: ErrorClass = ErrorClass.NONE
    message: str = ""  # short, actionable, for people and LLMs


@dataclass
class StaticResult(Stage):
    warnings: list[str] = field(default_factory=list)


@dataclass
class CompileResult(Stage):
    cached: bool = False
    backend: str = ""  # "load_inline" | "cupy" | "none"
    log: str = ""  # trimmed compiler output


@dataclass
class CheckResult(Stage):
    trials: int = 0
    trials_passed: int = 0
    max_abs_error: float | None = None
    rel_error: float | None = None  # ||out - ref|| / ||ref||
    atol: float = 0.0
    rtol: float = 0.0
    detail: str = ""  # which output differed and where
    own_kernel_share: float | None = None  # GPU time in the candidate's own kernels (profiled call)


@dataclass
class TimingStats:
    """Raw samples (ms) and their summary; ratios are computed from raw samples."""

    samples_ms: list[float]
    median_ms: float
    ci_low_ms: float
    ci_high_ms: float
    mean_ms: float
    stdev_ms: float

    @property
    def cv(self) -> float:
        return self.stdev_ms / self.mean_ms if self.mean_ms else 0.0


@dataclass
class Bound:
    """The task's physical floor on this GPU."""

    flops: float
    bytes: float
    peak_flops: float  # FLOP/s, measured
    bandwidth: float  # B/s, measured
    floor_ms: float
    fraction: float | None = None  # floor / candidate time: 1.0 is at the limit


@dataclass
class TimingResult(Stage):
    candidate: TimingStats | None = None
    eager: TimingStats | None = None
    speedup_eager: float | None = None
    speedup_eager_ci: tuple[float, float] | None = None
    compiled_ms: float | None = None  # torch.compile baseline (cached per task/GPU)
    speedup_compile: float | None = None
    bound: Bound | None = None
    rechecked_outputs: int = 0
    # Host milliseconds to enqueue one call (median). The event times above exclude it
    # (timing's hide_launch, on by default); where it outlasts the kernel, back-to-back
    # calls are host-bound, which the report and the LLM's feedback say.
    candidate_launch_ms: float | None = None
    eager_launch_ms: float | None = None
    # Speedup when calls run back to back, as in a program that does not wait for each: each
    # side's time per call is the larger of its GPU time and its host launch time. Equal to
    # speedup_eager unless a side is host-bound (a CuPy launch of 0.25 ms for a 0.13 ms kernel).
    speedup_back_to_back: float | None = None
    # A run's best is evaluated twice, in independent sessions: the lower speedup's timing
    # is kept above (its CI widened to cover both), the other session's figures here.
    other_session_speedup: float | None = None
    other_session_ci: tuple[float, float] | None = None
    # Trust diagnostics: the reference's time per call in this session over its time before
    # the candidate was loaded, and profiled timed calls' time over the unprofiled ones.
    reference_drift: float | None = None
    profiled_ratio: float | None = None


@dataclass
class SystemInfo:
    gpu: str = ""
    compute_capability: str = ""
    driver: str = ""
    torch: str = ""
    cuda: str = ""
    cupy: str = ""
    python: str = ""
    sandbox: str = ""
    hostname: str = ""
    gpu_uuid: str = ""  # which physical GPU ran it (several of one model can share a host)
    harness: str = ""  # config.HARNESS_VERSION that measured it: timing changes between versions


@dataclass
class EvalResult:
    verdict: Verdict
    task_hash: str
    candidate_hash: str
    static: StaticResult | None = None
    compile: CompileResult | None = None
    check: CheckResult | None = None
    timing: TimingResult | None = None
    system: SystemInfo = field(default_factory=SystemInfo)
    error: ErrorClass = ErrorClass.NONE
    message: str = ""
    wall: dict[str, float] = field(default_factory=dict)  # compile/startup/check/time seconds
    output: str = ""  # the tail of the candidate's stdout/stderr: shown, never parsed
    cached: bool = False  # served from the evaluation cache
    warnings: list[str] = field(default_factory=list)
    profile: str = ""  # Nsight Compute summary (optimize --profile), or why there is none
    sanitizer: str = ""  # compute-sanitizer findings for a run's best kernel, or why none

    @property
    def correct(self) -> bool:
        return self.verdict is Verdict.CORRECT

    @property
    def speedup(self) -> float | None:
        return self.timing.speedup_eager if self.timing else None

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalResult":
        return _decode(cls, data)


# --- JSON round trip ---------------------------------------------------------------

def _encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [_encode(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def _decode(tp: Any, data: Any) -> Any:
    import typing

    if data is None:
        return None
    if isinstance(tp, str):
        tp = eval(tp, globals())  # annotations are strings under `from __future__`
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(args[0], data)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data}
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if origin is tuple:
        return tuple(data)
    return data
