"""The evaluator's side of fast inline builds (kernelsmith.harness.build): the shared
precompiled torch header, and how long the GPU waited on the compilers.

The header is built here, in the orchestrator, outside any sandbox: no candidate code
takes part, and jobs (in either sandbox: the cache directory is mounted read-write into
Docker and reachable by the process sandbox) only read it. A candidate never writes it,
so one candidate cannot plant code in another's build.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# The headers worth building, in order (the one most builds use first):
# the slim kind (main.cpp of the usual wrapper) and the full one (torch/extension.h), each
# for no extra_cflags and for the -O3 LLMs like to add. Any other set builds without a
# header (GCC then parses it: slower, same result).
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (("slim", ()), ("full", ()), ("slim", ("-O3",)),
                                                      ("full", ("-O3",)))
# With KERNELSMITH_OPS_BINDING=1 the operator-binding header (harness/build/binding.py) comes
# first: a job binds a slim main.cpp's functions as torch operators only where it is ready.
OPS_VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (("ops", ()), ("ops", ("-O3",)))


def default_variants() -> tuple[tuple[str, tuple[str, ...]], ...]:
    from kernelsmith.harness.build import binding

    return (OPS_VARIANTS[:1] + VARIANTS + OPS_VARIANTS[1:]) if binding.enabled() else VARIANTS


class HeaderCache:
    """Builds each precompiled-header variant once, in the background (`start`); `wait`
    blocks until the first one is ready (or failed). The evaluator does not wait: builds
    that start before a header is there go without it (slower than with it, faster than
    waiting for it, and the same object)."""

    def __init__(self, root: Path, variants=None, timeout: float = 900):
        self.root = Path(root)
        self.variants = default_variants() if variants is None else variants
        self.timeout = timeout
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._started = False
        self.report: list[dict] = []  # {"flags", "dir", "seconds", "built"} or {"flags", "error"}

    def _build_all(self) -> None:
        from kernelsmith.harness.build import pch

        for i, (kind, flags) in enumerate(self.variants):
            try:
                self.report.append({"kind": kind, "flags": list(flags),
                                    **pch.build(str(self.root), flags, timeout=self.timeout, kind=kind)})
            except Exception as exc:  # noqa: BLE001 - no header: builds are slower, never wrong
                log.warning("precompiled header %s %s not built: %s", kind, list(flags), str(exc)[-500:])
                self.report.append({"kind": kind, "flags": list(flags), "error": str(exc)[-500:]})
            if i == 0:
                self._first.set()
        self._first.set()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        threading.Thread(target=self._build_all, daemon=True, name="ks-pch").start()

    def wait(self, arch: str | None = None) -> None:
        self.start()
        self._first.wait(self.timeout)


class IdleMeter:
    """GPU idle time: how long the GPU stage waited for a build while builds were pending,
    against the whole time GPU work was being dealt out (evaluate_many calls)."""

    def __init__(self):
        self.idle_s = 0.0
        self.total_s = 0.0
        self.waits = 0
        self._lock = threading.Lock()

    def open(self, pending: bool) -> "_Span":
        return _Span(self, pending)

    def add(self, idle: float, total: float, waits: int) -> None:
        with self._lock:
            self.idle_s += idle
            self.total_s += total
            self.waits += waits

    def summary(self) -> dict:
        with self._lock:
            frac = self.idle_s / self.total_s if self.total_s > 0 else 0.0
            return {"gpu_idle_s": round(self.idle_s, 3), "gpu_total_s": round(self.total_s, 3),
                    "gpu_idle_fraction": round(frac, 4), "gpu_waits": self.waits}


class _Span:
    """One evaluate_many call: idle from `start` to `stop` (the wait for the next finished build)."""

    def __init__(self, meter: IdleMeter, pending: bool):
        self.meter = meter
        self.t0 = time.perf_counter()
        self.idle = 0.0
        self.waits = 0
        self._since: float | None = self.t0 if pending else None

    def start(self) -> None:
        self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.idle += time.perf_counter() - self._since
            self.waits += 1
            self._since = None

    def close(self) -> None:
        self._since = None  # nothing pending after the last result
        self.meter.add(self.idle, time.perf_counter() - self.t0, self.waits)


def gpu_idle_of(pool) -> dict | None:
    """The GPU idle figures of an Evaluator or an EvaluatorPool (summed over its GPUs), or
    None for a pool that keeps none (Ray, dry runs)."""
    evs = getattr(pool, "evaluators", None) or [pool]
    meters = [ev.gpu_idle for ev in evs if isinstance(getattr(ev, "gpu_idle", None), IdleMeter)]
    if not meters:
        return None
    total = IdleMeter()
    for m in meters:
        total.add(m.idle_s, m.total_s, m.waits)
    return total.summary()


def idle_line(idle: dict | None) -> str:
    if not idle:
        return ""
    return (f"GPU idle {100 * idle['gpu_idle_fraction']:.1f}% ({idle['gpu_idle_s']:.1f} s of "
            f"{idle['gpu_total_s']:.1f} s waiting on builds)")
