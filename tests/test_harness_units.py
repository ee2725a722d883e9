"""Harness pieces that need no GPU: output comparison, statistics, log trimming."""

import torch

from kernelsmith.harness import check, timing
from kernelsmith.harness.compile import trim_log


def _cmp(c, r, inputs=()):
    return check.compare(c, r, list(inputs), None, None, check.Errors())


def test_compare_accepts_within_tolerance():
    r = torch.randn(100)
    assert _cmp(r + 1e-6, r) is None


def test_compare_classifies_failures():
    r = torch.randn(10, 10)
    assert _cmp(r + 1.0, r).error == "mismatch"
    assert _cmp(r.double(), r).error == "dtype"
    assert _cmp(r.view(100), r).error == "shape"
    bad = r.clone()
    bad[3, 3] = float("nan")
    assert _cmp(bad, r).error == "nan"
    x = torch.randn(10, 10)
    assert _cmp(x, x.clone(), inputs=[x]).error == "aliasing"
    assert _cmp(x[:5], x[:5].clone(), inputs=[x]).error == "aliasing"  # a view of an input
    assert _cmp((r,), r).error == "output_type"

    class Lazy(torch.Tensor):
        pass

    assert _cmp(r.as_subclass(Lazy), r).error == "output_type"


def test_mismatch_message_says_where():
    r = torch.zeros(4, 4) + torch.arange(16.0).view(4, 4)
    c = r.clone()
    c[2, 1] += 5
    m = _cmp(c, r)
    assert "(2, 1)" in m.detail and "1 of 16" in m.detail


def test_near_constant_reference_is_flagged():
    assert check.near_constant(torch.ones(100))
    assert not check.near_constant(torch.randn(100))


def test_fast_close():
    r = torch.randn(50)
    assert check.fast_close(r + 1e-7, r, None, None)
    assert not check.fast_close(r + 1, r, None, None)
    assert not check.fast_close(r.double(), r, None, None)


def test_median_ci_contains_median_and_shrinks():
    import random

    rng = random.Random(1)
    small = [1 + rng.gauss(0, 0.05) for _ in range(20)]
    big = small + [1 + rng.gauss(0, 0.05) for _ in range(400)]
    m, lo, hi = timing.median_ci(small)
    assert lo <= m <= hi
    m2, lo2, hi2 = timing.median_ci(big)
    assert hi2 - lo2 < hi - lo


def test_ratio_ci_brackets_ratio():
    num = [2.0 + 0.01 * (i % 7) for i in range(50)]
    den = [1.0 + 0.01 * (i % 5) for i in range(50)]
    lo, hi = timing.ratio_ci(num, den)
    assert lo < 2.03 / 1.02 < hi


def test_trim_log_keeps_errors():
    log = "\n".join(["noise"] * 500 + ["kernel.cu(4): error: expected a )", "  code", "  ^"] + ["noise"] * 500)
    t = trim_log(log)
    assert "error: expected a )" in t and len(t) < 1000


def test_kernel_provenance_names_and_matching():
    from kernelsmith.harness.loader import Capture
    from kernelsmith.harness.provenance import _is_own, kernel_names

    c = Capture()
    c.cupy.append({"code": 'extern "C" __global__ void __launch_bounds__(256) leaky(const float* x) {}',
                   "name": "leaky", "options": []})
    c.inline.append({"cuda_sources": "template <typename T>\n__global__ void\nsgemm_tiled(const T* a) {}",
                     "cpp_sources": ""})
    names = kernel_names(c)
    assert names == {"leaky", "sgemm_tiled"}
    assert _is_own("leaky", names)
    assert _is_own("void sgemm_tiled<float>(float const*)", names)
    assert not _is_own("ampere_sgemm_128x64_nn", names)  # cuBLAS doing the work
    assert not _is_own("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>()", names)


def test_provenance_knows_names_the_profiler_demangles_as_types():
    # Seen on the H200: CuPy kernel `rrn` listed by the profiler as "__int128 restrict".
    from kernelsmith.harness.provenance import _is_own, as_profiler_shows

    assert as_profiler_shows("rrn") == "__int128 restrict"
    assert as_profiler_shows("leaky") is None  # not a mangled form: listed as it is
    assert _is_own("__int128 restrict", {"rrn"})
    assert not _is_own("__int128 restrict", {"leaky"})
    assert not _is_own("int", {"leaky"})


def test_sparse_update_changes_few_elements_in_place():
    import torch

    from kernelsmith.harness.evaluate import sparse_update

    x, ids, small = torch.randn(64, 1024), torch.arange(4096), torch.randn(100)
    before, ptr, small_before = x.clone(), x.data_ptr(), small.clone()
    gen = torch.Generator().manual_seed(0)
    assert sparse_update([x, ids, small], [torch.randn(64, 1024), ids + 1, torch.randn(100)], 1e-3, gen)
    assert x.data_ptr() == ptr  # same tensor, same address: what an address-keyed cache sees
    changed = int((x != before).sum())
    assert 40 <= changed <= 66  # about 0.1% of 65536 (duplicate indices allowed)
    assert torch.equal(ids, torch.arange(4096)) and torch.equal(small, small_before)  # ints and tiny tensors kept
    # the 16 elements a sampling cache reads (corners, centre) are almost surely untouched
    assert not sparse_update([torch.arange(10.0)], [torch.zeros(10)], 1e-3, gen)


def test_sparse_update_defeats_a_sampling_cache():
    """The hostile candidate 20_cache_by_sample_hash, in miniature and on the CPU."""
    import torch

    from kernelsmith.harness.evaluate import sparse_update

    cache = {}

    def cached_tanh(x):
        flat = x.reshape(-1)
        key = (x.data_ptr(), tuple(flat[torch.tensor([0, 1, flat.numel() // 2, flat.numel() - 1])].tolist()))
        if key not in cache:
            cache[key] = torch.tanh(x)
        return cache[key]

    x = torch.randn(256, 1024)
    cached_tanh(x)
    sparse_update([x], [torch.randn(256, 1024)], 1e-3, torch.Generator().manual_seed(1))
    assert not torch.allclose(cached_tanh(x), torch.tanh(x))  # stale: the check sees a mismatch


def _cpu_evaluation(monkeypatch, candidate):
    """The harness's Evaluation on the CPU (tests/harness/cpu_harness.py's stand-ins for
    events and sync), its inputs and reference outputs prepared as before a candidate
    loads, the per-call verification off."""
    import types

    import torch

    from kernelsmith.harness import evaluate, prepare, timing
    from tests.harness import cpu_harness

    cpu_harness.install(monkeypatch)
    ev = evaluate.Evaluation({"device": "cpu", "trials": 1})
    ev.task = types.SimpleNamespace(get_inputs=lambda: [torch.randn(512, 1024)])
    ev.flush = timing.L2Flusher(ev.dev, False, 0.0)
    ev.prep = prepare.prepare(ev.task, torch.tanh, ev.dev, 1, ev.flush, None)
    ev.new = candidate
    monkeypatch.setattr(ev, "verify", lambda when, deep=False: None)
    return ev


def test_sparse_update_check_catches_a_sampling_cache_and_passes_an_honest_kernel(monkeypatch):
    import pytest
    import torch

    from kernelsmith.harness.evaluate import Stop

    cache = {}

    def sampling_cache(x):  # 20_cache_by_sample_hash in miniature: address + 16 fixed elements
        flat = x.reshape(-1)
        n = flat.numel()
        idx = torch.tensor([0, 1, 2, 3, n // 3, n // 2, n // 2 + 1, 2 * n // 3, n - 4, n - 3, n - 2, n - 1,
                            4096, 8191, n - 4097, n // 7])
        key = (x.data_ptr(), tuple(flat[idx].tolist()))
        if key not in cache:
            cache[key] = torch.tanh(x)
        return cache[key]

    with pytest.raises(Stop) as caught:
        _cpu_evaluation(monkeypatch, sampling_cache)._sparse_update_check()
    assert caught.value.verdict == "incorrect" and "stale output" in caught.value.message
    _cpu_evaluation(monkeypatch, lambda x: torch.tanh(x))._sparse_update_check()  # no Stop: honest


def test_sparse_update_check_second_round_catches_a_cache_the_first_round_missed(monkeypatch):
    """A round whose changes touch the cache's sample makes it recompute: the next round
    (changes elsewhere) must still catch the stale output."""
    import pytest
    import torch

    from kernelsmith.harness import evaluate, prepare

    real = prepare.sparse_plan
    rounds = []

    def first_round_touches_the_sample(xs, frac, gen):
        rounds.append(frac)
        if len(rounds) == 1:  # change element 0, which the cache samples
            return [torch.zeros(1, dtype=torch.long)]
        return real(xs, frac, gen)

    monkeypatch.setattr(prepare, "sparse_plan", first_round_touches_the_sample)
    cache = {}

    def cache_on_first_element(x):
        key = (x.data_ptr(), float(x.view(-1)[0]))
        if key not in cache:
            cache[key] = torch.tanh(x)
        return cache[key]

    with pytest.raises(evaluate.Stop) as caught:
        _cpu_evaluation(monkeypatch, cache_on_first_element)._sparse_update_check()
    assert len(rounds) == 2 and "stale output" in caught.value.message


def test_launch_is_hidden_behind_a_flush_that_outlasts_the_slowest_enqueue(monkeypatch):
    """The start event must fire only after the timed call is queued: with hide_launch the
    flush repeats for longer than the host's enqueue time seen so far, both sides alike;
    warm_ms sets a floor; without either, one flush."""
    from kernelsmith.harness import timing

    clock = {"t": 0.0}
    fills = []

    class FakeEvent:
        def __init__(self, enable_timing=True):
            self.t = None

    class FakeBuffer:  # GPU memory stands in: each overwrite takes 0.04 ms of "GPU" time
        def fill_(self, v):
            fills.append(v)

    monkeypatch.setattr(timing, "_Event", FakeEvent)
    monkeypatch.setattr(timing, "_record", lambda ev: setattr(ev, "t", clock["t"]))
    monkeypatch.setattr(timing, "_elapsed", lambda a, b: (b.t - a.t) * 1e3)
    monkeypatch.setattr(timing, "_sync", lambda: None)
    monkeypatch.setattr(timing, "_perf", lambda: clock["t"])

    def flusher(hide: bool, warm_ms: float = 0.0):
        f = object.__new__(timing.L2Flusher)  # no GPU here
        f.buf, f._v, f.hide_launch, f.warm_ms, f.hide_ms, f.flush_ms = FakeBuffer(), 0, hide, warm_ms, 0.0, 0.04
        return f

    def slow_launch(ms):
        def fn():
            clock["t"] += ms / 1e3  # host time to enqueue
            return 0.0
        return fn

    sides = {"reference": slow_launch(0.01), "candidate": slow_launch(0.2)}
    flush = flusher(hide=True)
    out = timing.interleave(sides, [lambda: []], flush, timing.TimingConfig(min_samples=5, max_samples=12))
    assert abs(flush.hide_ms - (timing.HIDE_MARGIN * 0.2 + timing.HIDE_PAD_MS)) < 1e-9  # the slower side
    assert flush.passes() == 9  # ceil(0.33 / 0.04): the overwrite outlasts the 0.2 ms enqueue
    calls = 2 * (len(out["candidate"].event_ms) + 1)  # +1: each side's discarded first call
    # the very first call (no enqueue seen yet): one overwrite; the second covers whichever
    # side came first (random order: 2 after the quick side, 9 after the slow one); from
    # then on every call is covered for the slow side
    assert len(fills) - 9 * (calls - 2) - 1 in (2, 9)
    assert all(abs(x - 0.2) < 1e-9 for x in out["candidate"].launch_ms)
    assert all(abs(x - 0.01) < 1e-9 for x in out["reference"].launch_ms)
    flush.observe(100.0)  # a host-bound call: the cover is capped
    assert flush.hide_ms == timing.HIDE_MAX_MS and flush.passes() == 125
    flush.observe(0.001)  # never shrinks within a session
    assert flush.hide_ms == timing.HIDE_MAX_MS
    off = flusher(hide=False)
    off.observe(0.2)
    assert off.passes() == 1  # the default: one overwrite, launch time not covered
    assert flusher(hide=False, warm_ms=1.0).passes() == 25  # at least 1 ms of GPU work before the start
    measured = flusher(hide=True)
    monkeypatch.setattr(timing, "_record", lambda ev: setattr(ev, "t", clock["t"]))
    FakeBuffer.fill_ = lambda self, v: clock.__setitem__("t", clock["t"] + 0.05e-3)
    assert abs(measured._time_one() - 0.05) < 1e-9  # one overwrite's GPU time, measured by events


def _overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def test_speedup_ci_covers_drift_the_bootstrap_misses():
    """A session recorded on an H200 in which the GPU sped up under both sides, by different
    amounts: the halves' speedups differ by 15%. The bootstrap CIs of the two halves do not
    overlap (each claims about +/-1%-6%); the stated CI (with batch means) of each half does."""
    import json

    from kernelsmith.harness import timing
    from tests.gpu.conftest import ROOT

    rec = json.loads((ROOT / "tests/fixtures/timing/h200_drifting_session.json").read_text())
    cand, eager = rec["candidate_ms"], rec["eager_ms"]
    h = len(cand) // 2
    first = timing._bootstrap_ratio_ci(eager[:h], cand[:h], 2000, 0)
    second = timing._bootstrap_ratio_ci(eager[h:], cand[h:], 2000, 0)
    assert not _overlap(first, second)  # the independence assumption fails on real samples
    stated1, stated2 = timing.ratio_ci(eager[:h], cand[:h]), timing.ratio_ci(eager[h:], cand[h:])
    assert _overlap(stated1, stated2)
    assert stated1[0] <= first[0] and stated1[1] >= first[1]  # never narrower than the bootstrap


def test_speedup_ci_stays_tight_on_steady_samples():
    """Independent samples: the batch-means part must not blow the CI up."""
    import random

    from kernelsmith.harness import timing

    rng = random.Random(7)
    eager = [0.200 * (1 + rng.gauss(0, 0.02)) for _ in range(200)]
    cand = [0.100 * (1 + rng.gauss(0, 0.02)) for _ in range(200)]
    lo, hi = timing.ratio_ci(eager, cand)
    assert lo < 2.0 < hi and (hi - lo) / 2 / 2.0 < 0.01  # within +/-1% of the true 2.0x
    assert timing.batch_ratio_ci(eager[:10], cand[:10]) is None  # too few rounds: bootstrap only
    assert timing.ratio_ci(eager[:10], cand[:10]) == timing._bootstrap_ratio_ci(eager[:10], cand[:10], 2000, 0)


def test_poison_blocks_are_made_on_the_evaluation_device(monkeypatch):
    """poison_like once made its NaN blocks on the host (no device): on a GPU that poisoned
    nothing a candidate's allocation could get, and cost 7 ms a call (seen on the H200)."""
    from kernelsmith.harness import tensors

    made = []
    real = torch.full
    monkeypatch.setattr(tensors.torch, "full", lambda *a, **k: made.append(k.get("device")) or real(*a, **k))
    tensors.poison_like([((4, 4), torch.float32), ((3,), torch.int64)], torch.device("meta"))
    assert made == [torch.device("meta")] * 2


def test_numpy_compat_puts_back_only_a_missing_row_stack(monkeypatch):
    """numba-cuda 0.30 registers np.row_stack, which NumPy 2.5 removed (seen on the H200)."""
    import numpy

    from kernelsmith.harness.loader import numpy_compat

    monkeypatch.delattr(numpy, "row_stack", raising=False)
    numpy_compat()
    assert numpy.row_stack is numpy.vstack
    sentinel = object()
    monkeypatch.setattr(numpy, "row_stack", sentinel, raising=False)
    numpy_compat()
    assert numpy.row_stack is sentinel  # one that exists is left alone


def test_device_sync_and_event_record_avoid_the_device_count_query():
    """Both are bound to the direct calls where torch has them (a CUDA build)."""
    if getattr(torch._C, "_cuda_synchronize", None) is None:
        assert timing.device_sync is torch.cuda.synchronize  # a CPU build: torch's own
    else:
        assert timing.device_sync is torch._C._cuda_synchronize
