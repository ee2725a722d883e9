"""Settings: defaults < KERNELSMITH_* environment < command-line flags.

One variable, KERNELSMITH_HOME, relocates all state kept between runs (build cache,
evaluation cache, measured GPU ceilings, baselines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

HARNESS_VERSION = "5"  # bump when a change to the harness invalidates cached results


ROOT_HOME = Path("/var/lib/kernelsmith")  # root's default when its home is private


def _traversable(path: Path) -> bool:
    """Can every user reach `path` (each directory down to it searchable by others)?"""
    p = path.resolve()
    for d in (p, *p.parents):
        try:
            if not d.stat().st_mode & 0o001:
                return False
        except OSError:
            continue  # not made yet: its parents decide
    return True


def home() -> Path:
    """KERNELSMITH_HOME, else ~/.kernelsmith. As root, sandboxed jobs run as nobody and must
    reach the caches, so where root's home is private (mode 700, the usual /root) the
    default is /var/lib/kernelsmith instead (unless ~/.kernelsmith is already reachable)."""
    if os.environ.get("KERNELSMITH_HOME"):
        return Path(os.environ["KERNELSMITH_HOME"]).expanduser()
    default = Path.home() / ".kernelsmith"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not _traversable(default):
        return ROOT_HOME
    return default


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


@dataclass
class EvalConfig:
    trials: int = 5
    atol: float | None = None  # None: by dtype (fp32 1e-4, fp16/bf16 1e-2)
    rtol: float | None = None
    timing: dict = field(default_factory=dict)  # TimingConfig overrides
    compile_timeout: float = 600.0
    eval_timeout: float = 300.0
    baseline_timeout: float = 900.0
    compile_baseline: bool = True
    arch: str | None = None  # None: the GPU's own compute capability, else 9.0
    gpu: int = 0
    compile_workers: int = max(1, (os.cpu_count() or 2))
    use_cache: bool = True
    sandbox: str = "auto"  # auto | process | docker
    cache_dir: Path = field(default_factory=lambda: home() / "cache")

    @classmethod
    def from_env(cls, **overrides) -> "EvalConfig":
        cfg = cls()
        for name, attr in (("KERNELSMITH_ATOL", "atol"), ("KERNELSMITH_RTOL", "rtol")):
            v = _env_float(name)
            if v is not None:
                setattr(cfg, attr, v)
        if os.environ.get("KERNELSMITH_SANDBOX"):
            cfg.sandbox = os.environ["KERNELSMITH_SANDBOX"]
        if os.environ.get("KERNELSMITH_ARCH"):
            cfg.arch = os.environ["KERNELSMITH_ARCH"]
        if os.environ.get("KERNELSMITH_COMPILE_BASELINE", "").lower() in ("0", "false", "no", "off"):
            cfg.compile_baseline = False  # torch.compile costs 10-30 s per task and GPU
        if _env_float("KERNELSMITH_MAX_TIMING_SECONDS") is not None:
            cfg.timing = dict(cfg.timing, max_seconds=_env_float("KERNELSMITH_MAX_TIMING_SECONDS"))
        hide = os.environ.get("KERNELSMITH_HIDE_LAUNCH", "").lower()
        if hide not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
            raise ValueError(f"KERNELSMITH_HIDE_LAUNCH={hide!r} is not one of 1/0, true/false, yes/no, on/off")
        if hide:  # on by default (harness/timing.py); off, with KERNELSMITH_WARM_MS=0, is harness 3's timing
            cfg.timing = dict(cfg.timing, hide_launch=hide in ("1", "true", "yes", "on"))
        for switch in ("KERNELSMITH_OPS_BINDING", "KERNELSMITH_SPLIT_SOURCES"):  # harness/build: binding, split
            val = os.environ.get(switch, "").lower()
            if val not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
                raise ValueError(f"{switch}={val!r} is not one of 1/0, true/false, yes/no, on/off")
        if _env_float("KERNELSMITH_WARM_MS") is not None:
            cfg.timing = dict(cfg.timing, warm_ms=_env_float("KERNELSMITH_WARM_MS"))
        for k, v in overrides.items():
            if v is not None:  # timing is a dict of overrides: a flag's entries win, the environment's stay
                setattr(cfg, k, {**cfg.timing, **v} if k == "timing" else v)
        return cfg
