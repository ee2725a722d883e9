"""Timing: L2-flushed, interleaved, adaptive, on events bound before candidates load.

Design choices (see EVALUATION.md):
- The L2 flush is launched on the same stream right before the start event and repeated
  until it outlasts the host's slowest enqueue seen so far (`hide_launch`; it grows, never
  shrinks, within a session, and both sides share it), so the events time GPU work only,
  not the host's launch path and its jitter; the launch time is reported on its own. The
  flush also lasts at least `warm_ms` (2 ms), so the GPU comes to each timed call busy
  rather than from idle: its clocks follow load.
  Why, measured on one H200 (2026-11-29, six kernels of 68-170 us, each evaluated twice,
  `dev/device/steps.sh spreadab`): with one 40 us flush the two evaluations' speedups
  differed by 0.4-24.5% (CuPy's 0.1-0.3 ms Python launch landed in the events; the two
  sides' samples rose and fell together as the GPU idled between them); with the launch
  hidden, 0.2-2.4%; hidden and warm, 0.14-0.68%, and each side converged in 15 samples.
- Reference and candidate alternate in random order (ABAB/BABA) on the same rotating
  input sets; the speedup is the ratio of medians of samples from one session.
- Sampling stops when the confidence interval of each median is within `target_ci` of
  the median (order-statistic interval), with a floor on samples and a cap on time.
- Every timed output of the candidate is compared with the reference output for the same
  inputs, so a kernel that is right while checked and wrong while timed is caught.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

_Event = torch.cuda.Event
_elapsed = torch.cuda.Event.elapsed_time
_event_record = torch.cuda.Event.record
_current_device = getattr(torch._C, "_cuda_getDevice", None)


def _record(event) -> None:
    """Record on the current stream, named by device index: Event.record() without a
    stream asks torch.cuda.is_available() (a driver call) to find the device, twice per
    timed call (850 calls, 0.2 s of one evaluation on an H200)."""
    _event_record(event, torch.cuda.current_stream(_current_device()) if _current_device else None)


# The device-wide sync, without torch.cuda.synchronize's per-call device guard: that asks
# the driver for the device count on every call (1,360 calls, 0.2 s of one candidate's
# evaluation on an H200). A job sees one GPU, the current device.
device_sync = getattr(torch._C, "_cuda_synchronize", None) or torch.cuda.synchronize
_sync = device_sync
_perf = time.perf_counter


@dataclass
class TimingConfig:
    min_samples: int = 15
    max_samples: int = 400
    max_seconds: float = 8.0  # per candidate, both sides together
    # Relative half-width of each median's 95% CI. 0.7% per side puts the speedup's CI
    # near +/-1%: at 1% per side, two evaluations of one kernel on an H200 differed by up
    # to 2.3% (six kernels of 80-290 us, 2026-11-29).
    target_ci: float = 0.007
    warmup_ms: float = 50.0
    warmup_calls: int = 3
    input_sets: int = 3
    hide_launch: bool = True  # flush long enough that host launch time stays out of the events
    warm_ms: float = 2.0  # flush at least this long before each timed call: the GPU arrives busy


@dataclass
class Samples:
    event_ms: list[float] = field(default_factory=list)
    host_ms: list[float] = field(default_factory=list)
    launch_ms: list[float] = field(default_factory=list)  # host time to enqueue the call
    profiled_ms: list[float] = field(default_factory=list)  # calls made under the profiler (not in event_ms)


HIDE_MARGIN = 1.5  # outlast the longest enqueue seen this many times over, plus HIDE_PAD_MS
HIDE_PAD_MS = 0.03
HIDE_MAX_MS = 5.0  # beyond this a call is host-bound, and its samples say so


class L2Flusher:
    """Prepares the GPU for a timed call: overwrites a buffer twice the L2 size. With
    hide_launch, repeats the overwrite until it outlasts the host's slowest enqueue seen, so
    the start event fires after the call is queued; with warm_ms, for at least that long,
    so the GPU comes to the timed call busy rather than from idle (its clocks follow load)."""

    def __init__(self, device: torch.device, hide_launch: bool = TimingConfig.hide_launch,
                 warm_ms: float = TimingConfig.warm_ms):
        l2 = (getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 64 << 20) or (64 << 20)
              if device.type == "cuda" else 1 << 20)  # a CPU device: the harness's own tests
        self.buf = torch.empty(2 * l2 // 4, dtype=torch.int32, device=device)
        self._v = 0
        self.hide_launch, self.warm_ms, self.hide_ms = hide_launch, warm_ms, 0.0
        self.flush_ms = self._time_one() if (hide_launch or warm_ms > 0) else 0.0

    def _fill(self) -> None:
        self._v ^= 1
        self.buf.fill_(self._v)

    def _time_one(self) -> float:
        """GPU milliseconds of one overwrite (median of 5, after one untimed)."""
        self._fill()
        times = []
        for _ in range(5):
            start, end = _Event(enable_timing=True), _Event(enable_timing=True)
            _record(start)
            self._fill()
            _record(end)
            _sync()
            times.append(_elapsed(start, end))
        return sorted(times)[2]

    def passes(self) -> int:
        want = max(self.warm_ms, self.hide_ms if self.hide_launch else 0.0)
        return max(1, math.ceil(want / self.flush_ms)) if want > 0 and self.flush_ms > 0 else 1

    def __call__(self) -> None:
        for _ in range(self.passes()):
            self._fill()

    def observe(self, launch_ms: float) -> None:
        """Cover an enqueue this long from now on (never less: a session's samples stay
        comparable, and both sides share one flusher)."""
        self.hide_ms = min(HIDE_MAX_MS, max(self.hide_ms, HIDE_MARGIN * launch_ms + HIDE_PAD_MS))


def median_ci(xs: list[float], z: float = 1.96) -> tuple[float, float, float]:
    """Median and a distribution-free 95% CI from order statistics."""
    s = sorted(xs)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return med, s[lo], s[hi]


def time_call(fn: Callable, args: list, flush: L2Flusher, around=None) -> tuple[float, float, float, object]:
    """One timed call: (event ms, host ms including a device-wide sync, host ms to
    enqueue the call, output). `around`, when given, is a context manager entered after
    the flush is queued and left after the final sync (a profiler sees the call alone)."""
    start, end = _Event(enable_timing=True), _Event(enable_timing=True)
    _sync()  # input preparation must not spill into the host-side measurement
    flush()
    if around is not None:
        around.__enter__()
        try:
            return _timed(fn, args, flush, start, end)
        finally:
            around.__exit__(None, None, None)
    return _timed(fn, args, flush, start, end)


def _timed(fn, args, flush, start, end):
    _record(start)
    h0 = _perf()
    out = fn(*args)
    h_launch = _perf()
    _record(end)
    _sync()  # device-wide: waits for side streams too
    h1 = _perf()
    launch_ms = (h_launch - h0) * 1e3
    flush.observe(launch_ms)
    return _elapsed(start, end), (h1 - h0) * 1e3, launch_ms, out


def warmup(fn: Callable, args: list, cfg: TimingConfig, on_output: Callable | None = None) -> None:
    t0, n = _perf(), 0
    while n < cfg.warmup_calls or (_perf() - t0) * 1e3 < cfg.warmup_ms:
        out = fn(*args)
        if on_output is not None:
            on_output(out)
        del out
        _sync()
        n += 1
        if n > 1000:
            break


def converged(samples: list[float], target: float) -> bool:
    med, lo, hi = median_ci(samples)
    return med > 0 and (hi - lo) / 2 / med <= target


def interleave(
    sides: dict[str, Callable],
    input_sets: list[Callable[[], list]],
    flush: L2Flusher,
    cfg: TimingConfig,
    on_output: Callable[[str, int, object, list], None] | None = None,
    around: Callable[[str, int], object] | None = None,
    between: Callable[[int], None] | None = None,
) -> dict[str, Samples]:
    """Time every side on the same inputs, alternating in random order. `around(name,
    round)` may return a context manager for that call (a profiler): such a round's
    samples go to `profiled_ms` for that side and are left out of both sides' samples, so
    the samples stay paired by round. `between(round)` runs after each round."""
    rng = random.Random()
    out = {name: Samples() for name in sides}
    t0 = _perf()
    i = 0
    while True:
        k = i % len(input_sets)
        names = list(sides)
        rng.shuffle(names)
        taken = []
        for name in names:
            args = input_sets[k]()
            ctx = around(name, i) if around is not None else None
            ev, host, launch, result = time_call(sides[name], args, flush, ctx)
            if ctx is not None:
                out[name].profiled_ms.append(ev)
            taken.append((name, ev, host, launch, ctx is not None))
            if on_output is not None:
                on_output(name, k, result, args)
            del result, args
        if i > 0 and not any(p for *_, p in taken):  # the first round is discarded (it sets the cover)
            for name, ev, host, launch, _ in taken:
                out[name].event_ms.append(ev)
                out[name].host_ms.append(host)
                out[name].launch_ms.append(launch)
        if between is not None:
            between(i)
        i += 1
        n = len(next(iter(out.values())).event_ms)
        if n >= cfg.max_samples or (_perf() - t0) > cfg.max_seconds and n >= 3:
            break
        if n >= cfg.min_samples and n % 5 == 0 and all(converged(s.event_ms, cfg.target_ci) for s in out.values()):
            break
    return out


# Student t, 97.5th percentile, by degrees of freedom (batch means use BATCHES - 1)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365}
BATCHES = 5
MIN_PER_BATCH = 3


def ratio_ci(num: list[float], den: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% CI of median(num) / median(den) for samples taken in rounds (num[i], den[i] from
    one round): the union of a bootstrap CI, which treats samples as independent, and a
    batch-means CI, which does not. Why both: on an H200 the GPU's speed drifted within a
    session (both sides together, by different amounts), so samples are not independent;
    on 48 recorded sessions the bootstrap CI of one half overlapped the other half's in
    42, the union in all 48 (a test replays one)."""
    boot = _bootstrap_ratio_ci(num, den, n_boot, seed)
    batch = batch_ratio_ci(num, den)
    if batch is None:
        return boot
    return min(boot[0], batch[0]), max(boot[1], batch[1])


def _bootstrap_ratio_ci(num, den, n_boot: int, seed: int) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(num), np.asarray(den)
    ra = np.median(rng.choice(a, (n_boot, a.size)), axis=1)
    rb = np.median(rng.choice(b, (n_boot, b.size)), axis=1)
    r = ra / rb
    return float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def batch_ratio_ci(num: list[float], den: list[float], batches: int = BATCHES) -> tuple[float, float] | None:
    """Batch means: the rounds cut into `batches` runs in time order, the ratio of medians
    in each, a t interval over their logs. None when there are too few rounds."""
    import statistics

    n = min(len(num), len(den))
    if n < batches * MIN_PER_BATCH:
        return None
    edges = [round(i * n / batches) for i in range(batches + 1)]
    logs = []
    for lo, hi in zip(edges, edges[1:]):
        d = statistics.median(den[lo:hi])
        if d <= 0:
            return None
        logs.append(math.log(statistics.median(num[lo:hi]) / d))
    mid, half = statistics.fmean(logs), _T975[batches - 1] * statistics.stdev(logs) / math.sqrt(batches)
    return math.exp(mid - half), math.exp(mid + half)


def summarize(samples: list[float]) -> dict:
    import statistics

    med, lo, hi = median_ci(samples)
    return {
        "samples_ms": samples, "median_ms": med, "ci_low_ms": lo, "ci_high_ms": hi,
        "mean_ms": statistics.fmean(samples),
        "stdev_ms": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
    }
