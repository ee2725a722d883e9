"""The evaluator's side of fast inline builds (kernelsmith.harness.build): the shared
precompiled torch header, and how long the GPU waited on the compilers.

The header is built here, in the orchestrator, outside any sandbox: no candidate code
takes part, and jobs (in either sandbox: the cache directory is mounted read-write into
Docker and reachable by the process sandbox) only read it. A candidate never writes it,
so one candidate cannot plant code in another's build.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # the header builder imports kernelsmith from here

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
        self._proc = None  # the header builder (a process of its own session)
        self._closing = False
        self.report: list[dict] = []  # {"flags", "dir", "seconds", "built"} or {"flags", "error"}

    def _spawn(self):
        """The header builder: a process of its own session (close stops it and its
        compilers together), started here, in the caller's thread, so that a caller that
        ends at once still gets its header built."""
        variants = [[kind, list(flags)] for kind, flags in self.variants]
        cmd = [sys.executable, "-m", "kernelsmith.harness.build.pch", "--root", str(self.root),
               "--timeout", str(self.timeout), "--variants", json.dumps(variants)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH")) if p))
        try:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env, start_new_session=True), ""
        except OSError as exc:
            return None, str(exc)

    def _build_all(self, proc=None, err: str = "") -> None:
        """Read the builder's report, a JSON line per variant (start it first if need be)."""
        if proc is None and not err:
            proc, err = self._spawn()
        variants = [[kind, list(flags)] for kind, flags in self.variants]
        got = 0
        if proc is not None:
            for line in proc.stdout:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                got += 1
                if "error" in r:  # no header: builds are slower, never wrong
                    log.warning("precompiled header %s %s not built: %s", r.get("kind"), r.get("flags"), r["error"])
                self.report.append(r)
                self._first.set()
            err = proc.stderr.read()[-500:]
            proc.wait()
        for kind, flags in variants[got:]:  # the builder died, never started, or close() stopped it
            why = "stopped at close" if self._closing else (err or "the header builder exited")
            if not self._closing:
                log.warning("precompiled header %s %s not built: %s", kind, flags, why)
            self.report.append({"kind": kind, "flags": flags, "error": why})
        self._first.set()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if not self.variants:
            self._first.set()
            return
        proc, err = self._spawn()
        self._proc = proc
        threading.Thread(target=self._build_all, args=(proc, err), daemon=True, name="ks-pch").start()

    def close(self) -> None:
        """Let the first variant finish (the one most builds use: a one-shot `kernelsmith
        compile` is shorter than its build, and the next run should find it), then stop the
        builder; what it left half-built is swept (now where no builder holds its lock, else
        by the next builder of that header)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._first.wait(self.timeout)
        self._closing = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        from kernelsmith.harness.build import pch

        pch.sweep(str(self.root))

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
