"""The timing stage: paired, interleaved timing of candidate and reference, with every
timed output checked as deeply as the checked ones.

A candidate can count its calls, look for a profiler, or read the allocator, so it can
tell checked calls from timed ones whatever the harness does; what it must not gain is
a timed call that does less than a checked one. So, in timed calls:
- inputs are new each round (fresh draws of the task's own distribution, or, where
  drawing is slow, the round's base perturbed by more than the tolerance), so nothing
  computed earlier passes;
- the output must match the reference on the same inputs, must not share memory with
  the call's inputs, the reference's output or the flush buffer, and is poisoned once
  checked (memory the candidate returns without writing it in that call reads as NaN);
- a reference output that exists while the candidate runs is sealed;
- a few calls at random rounds run under the profiler: they decide "the candidate's own
  kernels did the work" and must take about as long as the unprofiled calls;
- the interpreter's state is verified at random rounds and at the end, and the
  reference must run about as fast as it did before the candidate was loaded.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

import torch

from kernelsmith.harness import bound, check, provenance, timing
from kernelsmith.harness.prepare import Prepared, reference_call, weights
from kernelsmith.harness.stops import Stop, classify
from kernelsmith.harness.tensors import Sealed, clone, fresh_inputs, perturb, poison, poison_like

FRESH_MAX_MS = 2.0  # draw new inputs per round when one draw costs less than this
PROFILED_CALLS = 3  # candidate calls at random rounds run under the profiler
DEEP_CHECKS = 1  # interpreter verifications at random rounds (plus one at the end)
PROFILED_SLOWER = 1.25  # profiled calls this much slower than the rest: behaviour depends on the profiler
PROFILED_SLACK_MS = 0.02  # ... and by more than this (the profiler's own cost on tiny kernels)
REFERENCE_SLOWER = 1.25  # the reference this much slower than before the candidate loaded
REFERENCE_SLACK_MS = 0.02


@dataclass(frozen=True)
class Limits:
    """The timing stage's thresholds, frozen with the checker's settings."""

    profiled_calls: int = PROFILED_CALLS
    deep_checks: int = DEEP_CHECKS
    profiled_slower: float = PROFILED_SLOWER
    reference_slower: float = REFERENCE_SLOWER


def run(ev, prep: Prepared, cfg: timing.TimingConfig, limits: Limits = Limits()) -> dict:
    """Time ev.new against ev.ref. `ev` is the Evaluation (task, dev, tolerances, flush,
    names, verify(when, deep))."""
    stage = _Timed(ev, prep, cfg, limits)
    return stage.run()


class _Timed:
    def __init__(self, ev, prep: Prepared, cfg: timing.TimingConfig, limits: Limits):
        self.ev, self.prep, self.cfg, self.limits = ev, prep, cfg, limits
        self.rng = random.Random(secrets.randbits(64))
        early = range(1, max(2, cfg.min_samples + 1))
        self.profile_at = set(self.rng.sample(early, min(limits.profiled_calls, len(early))))
        self.check_at = set(self.rng.sample(early, min(limits.deep_checks, len(early))))
        self.profiles: list[provenance.Provenance] = []
        self.rounds: dict[int, dict] = {}
        self.counter = {"round": -1, "n": 0, "rechecked": 0}
        self.keep = weights(ev.ref)
        self.gen = torch.Generator(device=ev.dev)
        self.gen.manual_seed(secrets.randbits(62))

    # -- inputs ---------------------------------------------------------------------
    def _draw(self) -> list:
        ev = self.ev
        if self.prep.fresh_ms < FRESH_MAX_MS:
            return fresh_inputs(ev.task, ev.dev)
        return perturb(self.bases[self.counter["round"] % len(self.bases)], self.gen, self.amplitude)

    def _args(self) -> list:
        c = self.counter
        c["n"] += 1
        if c["n"] % 2 == 1:  # the first side of a round draws the round's inputs
            c["round"] += 1
            self.ev.verify("timing", deep=False)
            self.rounds[c["round"]] = {"inputs": self._draw()}
        args = clone(self.rounds[c["round"]]["inputs"])
        poison_like(self.prep.out_shapes, self.ev.dev)  # an output allocated but not written reads as NaN
        return args

    # -- per-call checks ------------------------------------------------------------
    def _on_output(self, name: str, k: int, result, args: list) -> None:
        slot = self.rounds[self.counter["round"]]
        if name == "candidate":
            self._no_alias(result, args, slot)
            slot["candidate"] = result
        elif "candidate" in slot:
            slot["reference"] = result
        else:  # the candidate runs next, with this result in memory: seal it
            slot["reference"] = Sealed(result, keep=self.keep)
        if "candidate" in slot and "reference" in slot:
            ref = slot["reference"]
            ref = ref.open() if isinstance(ref, Sealed) else ref
            if not check.fast_close(slot["candidate"], ref, self.ev.settings.atol, self.ev.settings.rtol):
                raise Stop("incorrect", "timed_mismatch",
                           "an output produced while timing differs from the reference on the same inputs")
            poison(slot["candidate"])  # returned memory is used once
            poison(ref, self.keep)  # and a stale reference result is not left in freed memory
            self.counter["rechecked"] += 1
            del self.rounds[self.counter["round"]]

    def _no_alias(self, out, args: list, slot: dict) -> None:
        ref = slot.get("reference")
        held = [self.ev.flush.buf] + list(args) + list(slot["inputs"])
        held += ref.storages() if isinstance(ref, Sealed) else []
        for t in check.flatten(out):
            if type(t) is torch.Tensor and check.aliases(t, held):
                raise Stop("incorrect", "aliasing", "an output produced while timing shares memory with an input, "
                                                    "the reference's output or the harness's buffers")

    def _around(self, name: str, i: int):
        if name == "candidate" and i in self.profile_at:
            return _Profiled(self)
        return None

    def _between(self, i: int) -> None:
        if i in self.check_at:
            self.ev.verify("timing", deep=True)

    # -- the stage ------------------------------------------------------------------
    def run(self) -> dict:
        ev, cfg = self.ev, self.cfg
        ev.verify("starting to time")  # the deep verification just ran, after the checks
        if self.prep.fresh_ms >= FRESH_MAX_MS:
            self.bases = [fresh_inputs(ev.task, ev.dev) for _ in range(cfg.input_sets)]
            _, rtol = check.tolerance(self.prep.out_shapes[0][1], ev.settings.atol, ev.settings.rtol)
            self.amplitude = max(1e-3, min(0.1, 10 * rtol))  # a result cached earlier fails the tolerance
        ref, cand = reference_call(ev.ref), reference_call(ev.new)
        try:
            timing.warmup(ref, clone(self.prep.warm_inputs), cfg, lambda out: poison(out, self.keep))
            timing.warmup(cand, clone(self.prep.warm_inputs), cfg, poison)
            samples = timing.interleave({"reference": ref, "candidate": cand}, [self._args], ev.flush, cfg,
                                        self._on_output, self._around, self._between)
            for _ in range(min(2, self.limits.profiled_calls) - len(self.profiles)):  # the time cap came first
                self._profile_once(cand)
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "forward") from None
        self.rounds.clear()
        # cheap checks here: the deep one follows in Evaluation.run, after the candidate's
        # objects are gone (two back to back cost 30-40 ms and see the same state)
        ev.verify("timing")
        return self._summary(samples)

    def _profile_once(self, cand) -> None:
        args = fresh_inputs(self.ev.task, self.ev.dev)
        poison_like(self.prep.out_shapes, self.ev.dev)
        _, _, _, out = timing.time_call(cand, args, self.ev.flush, _Profiled(self))
        del out

    def _summary(self, samples: dict) -> dict:
        ev, prep = self.ev, self.prep
        c, r = samples["candidate"], samples["reference"]
        tc, tr = timing.summarize(c.event_ms), timing.summarize(r.event_ms)
        res = {"candidate": tc, "eager": tr, "rechecked_outputs": self.counter["rechecked"]}
        res["speedup_eager"] = tr["median_ms"] / tc["median_ms"]
        res["speedup_eager_ci"] = timing.ratio_ci(r.event_ms, c.event_ms)
        gaps_c = [h - e for h, e in zip(c.host_ms, c.event_ms)]
        gaps_r = [h - e for h, e in zip(r.host_ms, r.event_ms)]
        gap_c, gap_r = timing.median_ci(gaps_c)[0], timing.median_ci(gaps_r)[0]
        res["host_gap_ms"] = {"candidate": gap_c, "reference": gap_r}
        # host time to enqueue one call (kept out of the events by hide_launch, up to HIDE_MAX_MS)
        res["launch_ms"] = {"candidate": timing.median_ci(c.launch_ms)[0], "eager": timing.median_ci(r.launch_ms)[0]}
        ev.out["timing"] = res
        # Work the events do not see (side streams, late threads) shows up as host time past
        # the end event: on the candidate's calls when it outlasts them, on the reference's
        # when the candidate's work still runs while the reference is timed. Compared round
        # by round (both sides of a round share the flush and the host's state).
        # The whole 95% interval must lie past the bound: host jitter (a busy CPU, builds
        # running beside the GPU) moves a median of a few dozen rounds, not the interval
        # (seen on an H200: an honest candidate's median paired gap at -0.235 ms once).
        paired, lo, hi = timing.median_ci([a - b for a, b in zip(gaps_c, gaps_r)])
        if lo > max(0.1, tc["median_ms"]):
            raise Stop("rejected", "unaccounted_work",
                       f"work continues {paired:.3f} ms (95% CI {lo:.3f} to {hi:.3f}) after the timed stream finishes "
                       "(side streams or background work the timer does not see)")
        if -hi > max(0.1, tr["median_ms"]):
            raise Stop("rejected", "unaccounted_work",
                       f"the GPU was still busy {-paired:.3f} ms (95% CI {-hi:.3f} to {-lo:.3f}) after each timed "
                       "reference call, more than after the candidate's (work the candidate left running slows the "
                       "reference)")
        self._reference_checks(res, tr["median_ms"], timing.median_ci(r.event_ms)[1])
        self._provenance_checks(res, c, tc["median_ms"])
        ceil = ev.args.get("ceilings") or {}
        if ceil.get("bandwidth") and ceil.get("peak_flops"):
            floor = bound.floor_ms(ev.out["flops"], ev.out["bytes"], ceil["peak_flops"], ceil["bandwidth"])
            res["bound"] = {"flops": ev.out["flops"], "bytes": ev.out["bytes"], "peak_flops": ceil["peak_flops"],
                            "bandwidth": ceil["bandwidth"], "floor_ms": floor, "fraction": floor / tc["median_ms"]}
            if tc["median_ms"] < 0.9 * floor:
                raise Stop("rejected", "impossible_speed",
                           f"{tc['median_ms']:.4f} ms is below the physical floor {floor:.4f} ms on this GPU")
        return res

    def _reference_checks(self, res: dict, ref_ms: float, ref_lo_ms: float) -> None:
        pristine = self.prep.pristine
        if not pristine:
            return
        res["reference_before_load_ms"] = pristine["median_ms"]
        res["reference_drift"] = ref_ms / pristine["median_ms"] if pristine["median_ms"] > 0 else None
        # the interval's lower end, not the median: a few slow rounds (host jitter) are not
        # a slowed reference
        if ref_lo_ms > self.limits.reference_slower * pristine["median_ms"] + REFERENCE_SLACK_MS:
            raise Stop("rejected", "reference_slowed",
                       f"the reference took {ref_ms:.4f} ms per call once the candidate was loaded, "
                       f"{pristine['median_ms']:.4f} ms before: the candidate changed what the reference runs on")

    def _provenance_checks(self, res: dict, c: timing.Samples, cand_ms: float) -> None:
        if not self.profiles:
            return
        p = provenance.merge(self.profiles)
        ev = self.ev
        ev.out["provenance"] = {"own_ms": p.own_ms, "other_ms": p.other_ms, "own": p.own, "others": p.others,
                                "calls": len(self.profiles)}
        if not p.available:
            ev.out["warnings"].append("kernel provenance not checked: the profiler saw no kernels here")
            return
        others = ", ".join(f"{n[:60]} {ms:.3f} ms" for n, ms in p.others or [])
        if p.own_ms == 0.0:
            raise Stop("rejected", "no_kernel", f"none of the candidate's own kernels ({', '.join(sorted(ev.names))}) "
                                                f"ran in timed calls; the GPU time went to: {others}")
        if p.own_share < 0.5:
            raise Stop("rejected", "no_kernel", f"only {p.own_share:.0%} of the GPU time of timed calls is in the "
                                                f"candidate's own kernels; the rest went to: {others}")
        # The GPU time of a profiled call's kernels (what CUPTI measured, without the
        # profiler's own gaps between launches) against the unprofiled calls' event time:
        # more work when profiled means the unprofiled calls do something else.
        busy = timing.median_ci([q.own_ms + q.other_ms for q in self.profiles if q.available])[0]
        res["profiled_ratio"] = busy / cand_ms if cand_ms > 0 else None
        if busy > self.limits.profiled_slower * cand_ms + PROFILED_SLACK_MS:
            raise Stop("rejected", "phase_dependent",
                       f"the kernels of timed calls made under the profiler ran {busy:.4f} ms, the unprofiled calls "
                       f"took {cand_ms:.4f} ms in all: the candidate does different work when it is profiled")


class _Profiled:
    """A profiler around one timed candidate call; the attribution lands in stage.profiles."""

    def __init__(self, stage: _Timed):
        self.stage = stage
        self.prof = provenance.profiler()

    def __enter__(self):
        self.prof.__enter__()
        return self

    def __exit__(self, *exc):
        self.prof.__exit__(*exc)
        if exc[0] is None:
            try:
                self.stage.profiles.append(provenance.attribute(self.prof.events(), self.stage.ev.names))
            except Exception as e:  # noqa: BLE001 - profiler trouble is ours, not the candidate's
                self.stage.ev.out["warnings"].append(f"a profiled call was not attributed ({type(e).__name__})")
        return False
