"""Everything the checks need from the reference, made before the candidate is imported.

Once candidate code has run, anything in the interpreter may have been changed: the
random sources get_inputs() draws from, the ops the reference calls, the Module call
machinery. So the inputs of every correctness check and the reference's outputs for them
are made here, from a pristine interpreter, and held sealed (tensors.Sealed); the
reference is also timed here once, so that a reference slowed down later shows.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

import torch

from kernelsmith.harness import timing
from kernelsmith.harness.integrity import OpRecorder
from kernelsmith.harness.tensors import Sealed, clone, fresh_inputs, poison, sparse_apply, sparse_plan

_sync = timing.device_sync
_perf = time.perf_counter
SPARSE_FRAC = 1e-4  # share of elements changed in place per sparse-update round
SPARSE_ROUNDS = 2
# The reference alone, timed briefly before the candidate loads (a baseline for drift).
PRISTINE = dict(min_samples=10, max_samples=40, max_seconds=0.6, target_ci=0.02, warmup_ms=20.0)


@dataclass
class Trial:
    inputs: list
    expected: Sealed


@dataclass
class SparseRound:
    fresh: list  # where the changed elements' new values come from
    plan: list  # per input: flat indices to change, or None
    expected: Sealed  # the reference on the inputs after this round's change


@dataclass
class Prepared:
    trials: list[Trial]
    sparse_base: list
    sparse_rounds: list[SparseRound]
    warm_inputs: list  # for the timing warm-up: not one of the timed inputs
    probe_inputs: list  # for the provenance call when timing is skipped
    out_shapes: list  # (shape, dtype) of each output tensor, for poisoning
    ops: set[str] = field(default_factory=set)  # aten ops of the reference, get_inputs and the checker
    fresh_ms: float = 0.0  # host ms to draw one input set (decides how timed inputs are made)
    pristine: dict | None = None  # the reference timed alone: median_ms, gap_ms


def reference_call(ref):
    def call(*a):
        with torch.no_grad():
            return ref(*a)
    call.ref = ref
    return call


def weights(model) -> tuple:
    """A model's parameters and buffers: a reference output that is one of them is never
    poisoned (the reference would be changed)."""
    if not isinstance(model, torch.nn.Module):
        return ()
    return tuple(model.parameters()) + tuple(model.buffers())


def prepare(task, ref, dev, trials: int, flush, cfg: timing.TimingConfig | None) -> Prepared:
    """Inputs and sealed reference outputs for every check; with `cfg`, the pristine
    reference timing too. Raises what the reference raises (the caller calls it invalid)."""
    call = reference_call(ref)
    keep = weights(ref)
    recorder = OpRecorder()
    t0 = _perf()
    with recorder:
        first = fresh_inputs(task, dev)
    _sync()
    fresh_ms = (_perf() - t0) * 1e3
    sets = [first] + [fresh_inputs(task, dev) for _ in range(trials - 1)]
    out = []
    for i, inputs in enumerate(sets):
        if i == 0:
            with recorder:
                ref_out = call(*clone(inputs))
        else:
            ref_out = call(*clone(inputs))
        out.append(Trial(inputs, Sealed(ref_out, keep=keep)))
    _sync()
    shapes = [(tuple(t.shape), t.dtype) for t in _tensors(out[0].expected.open())]
    base = fresh_inputs(task, dev)
    state = clone(base)
    gen = torch.Generator(device=dev)
    gen.manual_seed(secrets.randbits(62))
    rounds = []
    for _ in range(SPARSE_ROUNDS):
        fresh = fresh_inputs(task, dev)
        plan = sparse_plan(state, SPARSE_FRAC, gen)
        if not sparse_apply(state, fresh, plan):
            break  # no float input large enough to change sparsely
        rounds.append(SparseRound(fresh, plan, Sealed(call(*clone(state)), keep=keep)))
    del state
    prep = Prepared(out, base, rounds, fresh_inputs(task, dev), fresh_inputs(task, dev), shapes,
                    recorder.ops, fresh_ms)
    if cfg is not None:
        prep.pristine = _time_alone(call, task, dev, flush, cfg)
    _sync()
    return prep


def _time_alone(call, task, dev, flush, cfg: timing.TimingConfig) -> dict:
    short = timing.TimingConfig(**{**cfg.__dict__, **PRISTINE})
    sets = [fresh_inputs(task, dev) for _ in range(2)]
    n = {"i": 0}

    def args():
        n["i"] += 1
        return clone(sets[n["i"] % 2])

    timing.warmup(call, clone(sets[0]), short, lambda out: poison(out, weights(call.ref)))
    # every output poisoned before it is freed: a stale correct result must not lie around
    keep = weights(call.ref)
    s = timing.interleave({"reference": call}, [args], flush, short,
                          lambda name, k, out, a: poison(out, keep))["reference"]
    return {"median_ms": timing.median_ci(s.event_ms)[0],
            "gap_ms": timing.median_ci([h - e for h, e in zip(s.host_ms, s.event_ms)])[0],
            "samples": len(s.event_ms)}


def _tensors(out) -> list:
    return [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
