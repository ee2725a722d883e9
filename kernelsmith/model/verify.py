"""End-to-end verification of an optimized model against the original: outputs on fresh
inputs within tolerance, then paired timing with the harness's own discipline
(kernelsmith.harness.timing: L2 flush that hides the launch and keeps the GPU warm,
interleaved ABAB/BABA rounds on rotating input sets, adaptive stopping on the medians'
CIs, ratio of medians with the bootstrap/batch-means CI, and every timed output of the
optimized model compared with the original's on the same inputs)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Callable

import torch

from kernelsmith.harness import check, timing


@dataclass
class EndToEnd:
    correct: bool
    detail: str = ""  # the first mismatch
    max_abs_error: float = 0.0
    trials: int = 0
    eager_ms: float | None = None
    optimized_ms: float | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    samples: int = 0
    timed_mismatches: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def fresh_like(inputs: list) -> Callable[[], list]:
    """A maker of new inputs shaped like `inputs` (floats: standard normal; integers: in the
    examples' range; bools: coin flips), under a secret seed, on their device."""
    def make():
        g = torch.Generator(device=inputs[0].device).manual_seed(secrets.randbits(62))
        out = []
        for x in inputs:
            if x.is_floating_point():
                out.append(torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype))
            elif x.dtype == torch.bool:
                out.append(torch.rand(x.shape, generator=g, device=x.device) < 0.5)
            else:
                lo, hi = (int(x.min()), int(x.max())) if x.numel() else (0, 0)
                out.append(torch.randint(lo, hi + 1, x.shape, generator=g, device=x.device, dtype=x.dtype))
        return out
    return make


def check_outputs(original, optimized, make_inputs: Callable[[], list], trials: int = 5,
                  atol: float | None = None, rtol: float | None = None) -> EndToEnd:
    errors = check.Errors()
    with torch.no_grad():
        for i in range(trials):
            xs = make_inputs()
            want = original(*[x.clone() for x in xs])
            got = optimized(*[x.clone() for x in xs])
            bad = check.compare(got, want, xs, atol, rtol, errors)
            if bad is not None:
                return EndToEnd(False, f"trial {i + 1}: {bad.detail}", errors.max_abs, i + 1)
    return EndToEnd(True, "", errors.max_abs, trials)


def time_pair(original, optimized, make_inputs: Callable[[], list], result: EndToEnd,
              cfg: timing.TimingConfig | None = None, atol: float | None = None,
              rtol: float | None = None) -> EndToEnd:
    """Paired timing of the two on the GPU; fills the timing fields of `result`."""
    cfg = cfg or timing.TimingConfig()
    sets = [make_inputs() for _ in range(cfg.input_sets)]
    dev = sets[0][0].device
    flush = timing.L2Flusher(dev, cfg.hide_launch, cfg.warm_ms)
    expected: dict[int, object] = {}
    pending: dict[int, object] = {}

    def on_output(name, k, out, args):
        if name == "eager":
            expected[k] = out
            got = pending.pop(k, None)
        else:
            got = out
            if k not in expected:
                pending[k] = out
                return
        if got is not None and k in expected:
            bad = check.compare(got, expected[k], args, atol, rtol, check.Errors())
            if bad is not None and len(result.timed_mismatches) < 3:
                result.timed_mismatches.append(bad.detail)

    with torch.no_grad():
        for side in (original, optimized):
            timing.warmup(side, sets[0], cfg)
        samples = timing.interleave({"eager": original, "optimized": optimized},
                                    [lambda s=s: s for s in sets], flush, cfg, on_output=on_output)
    e, o = samples["eager"].event_ms, samples["optimized"].event_ms
    result.eager_ms = timing.median_ci(e)[0]
    result.optimized_ms = timing.median_ci(o)[0]
    result.speedup = result.eager_ms / result.optimized_ms if result.optimized_ms else None
    lo, hi = timing.ratio_ci(o, e)  # optimized / eager time: the speedup's CI is its inverse
    result.speedup_ci = (1.0 / hi, 1.0 / lo) if lo > 0 else None
    result.samples = len(e)
    if result.timed_mismatches:
        result.correct = False
        result.detail = "while timed: " + result.timed_mismatches[0]
    return result
