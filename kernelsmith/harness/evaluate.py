"""The GPU stage, run in a fresh forked child per candidate: load, check, time.

Returns a plain dict (the orchestrator turns it into typed results). Every failure is
reported as {"verdict", "error", "message"} and the child exits: a CUDA fault poisons
the context for good, and the next candidate gets a new process anyway.

Order matters: everything the checks compare against (inputs, the reference's outputs,
the reference's speed) is made before the candidate is imported (prepare.py), and the
interpreter's whole state is recorded then (surface.py) and verified after every phase.
"""

from __future__ import annotations

import gc
import os
import secrets
import time
from dataclasses import dataclass

import torch

from kernelsmith.harness import bound, check, integrity, probe, provenance, seal, surface, timed, timing
from kernelsmith.harness.loader import (
    Capture, load_module, numpy_compat, patch_cupy, patch_load_inline, patch_pycuda,
)
from kernelsmith.harness.prepare import Prepared, prepare
from kernelsmith.harness.stops import CUDA_FAULT_MARKERS, Stop, classify  # noqa: F401 - re-exported
from kernelsmith.harness.tensors import (  # noqa: F401 - re-exported for the harness's other jobs
    clone as _clone, fresh_inputs as _fresh_inputs, poison, poison_like, sparse_apply, sparse_update,
)

_sync = timing.device_sync
_perf = time.perf_counter


@dataclass(frozen=True)
class Settings:
    """The checker's settings, fixed when the evaluation starts and re-verified after every
    phase: a candidate that loosens a tolerance is caught, not obeyed."""

    atol: float | None
    rtol: float | None
    trials: int
    skip_timing: bool
    timing: tuple
    limits: timed.Limits

    @classmethod
    def of(cls, args: dict) -> "Settings":
        return cls(args.get("atol"), args.get("rtol"), int(args.get("trials", 5)), bool(args.get("skip_timing")),
                   tuple(sorted((args.get("timing") or {}).items())), timed.Limits(**(args.get("limits") or {})))


class _Lap:
    """Records the seconds since the previous call under wall[prefix + name]."""

    def __init__(self, wall: dict, prefix: str):
        self.wall, self.prefix, self.t = wall, prefix, _perf()

    def __call__(self, name: str) -> None:
        now = _perf()
        self.wall[self.prefix + name] = now - self.t
        self.t = now


class Evaluation:
    def __init__(self, args: dict):
        self.args = args
        self.settings = Settings.of(args)
        # By value: a frozen dataclass can still be written in place (object.__setattr__),
        # and an object compared with itself never differs.
        self._frozen = self._settings_now()
        self.dev = torch.device(args.get("device", "cuda"))  # "cpu" only in the harness's own tests
        self.wall: dict[str, float] = {}
        self.out: dict = {"warnings": []}
        self.errors = check.Errors()
        self.surface: surface.Surface | None = None

    def _settings_now(self) -> str:
        return repr((self.settings, sorted(self.args.items(), key=lambda kv: kv[0])))

    def run(self) -> dict:
        t0 = _perf()
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is true fp32
        torch.backends.cudnn.allow_tf32 = False
        if self.dev.type == "cuda" and not torch.cuda.is_available():
            raise Stop("runtime_error", "sandbox", "no CUDA GPU is visible to the evaluator")
        torch.empty(1, device=self.dev)  # creates the CUDA context
        self.wall["startup.cuda_init"] = _perf() - t0  # "a.b": a part of stage a
        self.out["system"] = probe.system_info(with_driver=False)
        self.wall["startup.system"] = _perf() - t0 - self.wall["startup.cuda_init"]
        self._load_task()
        self.wall["startup"] = _perf() - t0
        t1 = _perf()
        self._watch_candidate()
        # The seal on the verifier lives in this frame's locals from here on, and the checks
        # below run as this frame's own bytecode: a candidate that replaces verify(), the
        # surface's diff or timed.run() cannot also replace these (seal.py says why).
        seal_check, seal_code, seal_defaults, seal_record = seal.capture()

        def sealed(when: str) -> None:
            if seal_check.__code__ is not seal_code or seal_check.__defaults__ is not seal_defaults:
                raise Stop("rejected", "tampering", f"while {when} the candidate replaced the verifier's seal")
            seal_check(seal_record, when)

        self._import_candidate()
        sealed("loading")
        self.wall["load"] = _perf() - t1
        t2 = _perf()
        self._check()
        self.wall["check.trials"] = _perf() - t2
        sealed("checking")
        self.verify("checking", deep=True)
        self.names = provenance.kernel_names(self.capture)
        if not self.names:
            raise Stop("rejected", "no_kernel", "no __global__ kernel in the candidate's CUDA sources: write one")
        if self.settings.skip_timing:
            self._provenance()
        self.wall["check"] = _perf() - t2
        if not self.settings.skip_timing:
            t3 = _perf()
            integrity.reset_persisting_l2(self.snapshot.l2_limit)
            self.out["timing"] = timed.run(self, self.prep, self.timing_cfg, self.settings.limits)
            self.wall["time"] = _perf() - t3
        # The candidate's objects go before the last check, so no finalizer of theirs runs
        # after it (on the result's way out of the process).
        self.new = None
        gc.collect()
        sealed("timing" if not self.settings.skip_timing else "profiling")
        self.verify("finishing", deep=True)
        self.out.update(verdict="correct", error="none", message="")
        return self.out

    # -- before the candidate -------------------------------------------------------
    def _load_task(self) -> None:
        lap = _Lap(self.wall, "startup.task_")
        self.timing_cfg = timing.TimingConfig(**self.args.get("timing", {}))
        # The flush buffer exists from here on: its presence tells no phase from another.
        self.flush = timing.L2Flusher(self.dev, self.timing_cfg.hide_launch, self.timing_cfg.warm_ms)
        try:
            self.task = load_module(self.args["task_path"], "ks_task")
            self.init = list(self.task.get_init_inputs())
            self.seed = secrets.randbits(31)
            torch.manual_seed(self.seed)
            self.ref = self.task.Model(*self.init).to(self.dev)
            lap("init")
            cfg = None if self.settings.skip_timing else self.timing_cfg
            self.prep: Prepared = prepare(self.task, self.ref, self.dev, self.settings.trials, self.flush, cfg)
            lap("prepare")
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Stop("invalid_task", "task", f"the reference failed: {type(exc).__name__}: {exc}") from None
        first = self.prep.trials[0]
        ref_out = first.expected.open()
        if check.near_constant(ref_out):
            raise Stop("invalid_task", "task", "the reference output is (near-)constant: no check can fail")
        recorder = integrity.OpRecorder()  # the checker's own ops are watched too
        with recorder:
            check.compare(ref_out, ref_out, [], self.settings.atol, self.settings.rtol, check.Errors())
            check.fast_close(ref_out, ref_out, self.settings.atol, self.settings.rtol)
            poison(ref_out)
        self.prep.ops |= recorder.ops
        del ref_out
        flops, nbytes = bound.count(self.ref, _clone(first.inputs))
        lap("flops")
        self.out["flops"], self.out["bytes"] = flops, nbytes
        if self.prep.pristine:
            self.out["reference_before_load"] = self.prep.pristine

    def _watch(self) -> None:
        """The surface as it is now (the harness has patched what it patches), plus what
        lives outside namespaces."""
        t = _perf()
        s = self.surface = surface.current()
        s.probe("the dispatcher's kernels for the reference's ops", lambda: integrity.dispatcher_state(self.prep.ops))
        s.probe("the reference model's state", lambda: integrity.model_state(self.ref))
        s.probe("nn.Module's global hooks", integrity.global_hooks)
        s.probe("the environment", lambda: dict(os.environ))
        s.probe("the checker's settings", self._settings_now)
        s.rebase()
        self.wall["load.surface"] = _perf() - t

    def _watch_candidate(self) -> None:
        """Everything recorded before the candidate's import: patches, snapshot, surface."""
        self.snapshot = integrity.Snapshot()
        self.capture = Capture()
        patch_load_inline(self.args["build_dir"], self.capture, pch_root=self.args.get("pch_root"))
        try:
            import cupy

            patch_cupy(self.capture, cupy)
        except Exception:  # noqa: BLE001 - CuPy absent: CuPy candidates fail at import
            pass
        patch_pycuda(self.capture)
        numpy_compat()
        provenance.cupti_teardown()  # before the surface's baseline: a candidate that unsets it is caught
        # JIT caches of the Python kernel languages: per candidate, inside its build
        # directory (never a cache another candidate or the host wrote); made here, as
        # PyCUDA only creates its default cache directory, not one it is given
        for var, sub in (("TRITON_CACHE_DIR", "triton"), ("NUMBA_CACHE_DIR", "numba"), ("PYCUDA_CACHE_DIR", "pycuda")):
            os.environ[var] = os.path.join(self.args["build_dir"], sub)
            os.makedirs(os.environ[var], exist_ok=True)
        self._watch()

    def _import_candidate(self) -> None:
        try:
            mod = load_module(self.args["candidate_path"], "ks_candidate")
            self.capture.scan(mod)
        except Exception as exc:  # noqa: BLE001
            text = f"{type(exc).__name__}: {exc}"
            if "Error building extension" in text:
                from kernelsmith.harness.compile import trim_log

                raise Stop("compile_error", "compile", trim_log(text)) from None
            raise classify(exc, "import") from None
        if not hasattr(mod, "ModelNew"):
            raise Stop("rejected", "format", "the candidate defines no class ModelNew")
        try:
            torch.manual_seed(self.seed)
            self.new = mod.ModelNew(*self.init).to(self.dev)
            _sync()
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "init") from None
        self.out["backend"] = self.capture.backend
        # cheap checks only: the checks compare against results made before the import, and
        # the deep verification after them covers whatever loading changed
        self.verify("loading")

    # -- verification ---------------------------------------------------------------
    def verify(self, when: str, deep: bool = False) -> None:
        """Cheap checks (watched callables, flags, threads, L2 limit, settings) every time;
        with `deep`, the whole surface."""
        changed = self.snapshot.tampered()
        if self._settings_now() != self._frozen:
            changed.append("the checker's settings changed")
        if changed:
            raise Stop("rejected", "tampering", f"while {when}: " + "; ".join(changed[:5]))
        threads = self.snapshot.new_threads()
        if threads:
            raise Stop("rejected", "background_thread", f"while {when} the candidate left threads running: {threads[:3]}")
        if integrity.reset_persisting_l2(self.snapshot.l2_limit):
            raise Stop("rejected", "tampering", f"while {when} the candidate set a persisting-L2 cache limit")
        if deep and self.surface is not None:
            t = _perf()
            changed = self.surface.diff()
            self.wall["verify"] = self.wall.get("verify", 0.0) + _perf() - t
            if changed:
                raise Stop("rejected", "tampering", f"while {when} the candidate changed what the reference and the "
                                                    f"checker run on: " + "; ".join(changed[:5]))

    # -- checking -------------------------------------------------------------------
    def _call_candidate(self, inputs: list):
        """One checked call, made the way timed calls are (poisoned memory, flush, events)."""
        poison_like(self.prep.out_shapes, self.dev)
        try:
            with torch.no_grad():
                _, _, _, out = timing.time_call(self.new, inputs, self.flush)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "forward") from None
        self.verify("running forward")
        return out

    def _compare(self, out, expected, inputs: list):
        return check.compare(out, expected, inputs, self.settings.atol, self.settings.rtol, self.errors)

    def _check(self) -> None:
        trials = self.settings.trials
        res = {"trials": trials, "trials_passed": 0}
        self.out["check"] = res
        for t, trial in enumerate(self.prep.trials):
            cand_in = _clone(trial.inputs)
            out = self._call_candidate(cand_in)
            for a, b in zip(cand_in, trial.inputs):
                if isinstance(a, torch.Tensor) and not torch.equal(a, b):
                    raise Stop("incorrect", "input_mutation", "forward modified its input tensors in place")
            expected = trial.expected.open()  # opened only while no candidate code runs
            bad = self._compare(out, expected, cand_in)
            poison(expected)
            del expected
            res.update(max_abs_error=self.errors.max_abs, rel_error=self.errors.rel)
            if bad is not None:
                res["detail"] = f"trial {t + 1}: {bad.detail}"
                raise Stop("incorrect", bad.error, res["detail"])
            if t == 0:  # determinism: the same inputs again, on re-poisoned memory
                poison(out)  # the first output is gone: a second call must write its own
                again = self._call_candidate(_clone(trial.inputs))
                expected = trial.expected.open()
                same = check.fast_close(again, expected, self.settings.atol, self.settings.rtol)
                poison(expected)
                if not same:
                    raise Stop("incorrect", "nondeterministic",
                               "two runs on the same inputs disagree beyond tolerance (a race or uninitialised memory)")
                del again, expected
            poison(out)
            res["trials_passed"] = t + 1
            del out, cand_in
        self._sparse_update_check()
        a, r = check.tolerance(self.prep.out_shapes[0][1] if self.prep.out_shapes else torch.float32,
                               self.settings.atol, self.settings.rtol)
        res.update(atol=a, rtol=r)

    def _sparse_update_check(self) -> None:
        """Output caching keyed by the input's address and a sample of its values: call the
        candidate on the same tensors, changing a scattered 0.01% of their elements in place
        before each of two more calls. Fresh inputs at fresh addresses (the trials) change
        every sampled value, so only this catches a cache that samples (seen: 16 fixed
        elements). Two rounds: a round whose changes happen to touch the sample makes such a
        cache recompute (16 samples: 0.16% of rounds), and the next round catches it. The
        changes and the reference's outputs for them were made before the candidate loaded."""
        inputs = _clone(self.prep.sparse_base)
        first = self._call_candidate(inputs)  # no clone: the addresses are what a cache keys on
        del first
        for rnd in self.prep.sparse_rounds:
            sparse_apply(inputs, rnd.fresh, rnd.plan)
            out = self._call_candidate(inputs)
            expected = rnd.expected.open()
            bad = self._compare(out, expected, inputs)
            poison(expected)
            if bad is not None:
                raise Stop("incorrect", bad.error,
                           f"stale output: after 0.01% of the input's elements changed in place (same tensors, "
                           f"same addresses), {bad.detail}; compute from the current input, do not cache by "
                           f"address or by a sample of values")
            poison(out)
            del out

    def _provenance(self) -> None:
        """Without timing: one profiled call decides whether the candidate's own kernels do
        most of the GPU work (with timing, profiled timed calls at random rounds decide)."""
        inputs = _clone(self.prep.probe_inputs)  # prepared outside the profiled call:
        poison_like(self.prep.out_shapes, self.dev)  # copies and fills there would count as foreign kernels
        _sync()

        def call():
            with torch.no_grad():
                self.new(*inputs)
            _sync()

        try:
            p = provenance.measure(call, self.names)
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - profiler trouble is ours, not the candidate's
            self.out["warnings"].append(f"kernel provenance not checked: profiler failed ({type(exc).__name__})")
            return
        self.out["provenance"] = {"own_ms": p.own_ms, "other_ms": p.other_ms, "own": p.own, "others": p.others}
        self.verify("profiling forward")
        if not p.available:
            self.out["warnings"].append("kernel provenance not checked: the profiler saw no kernels here")
            return
        others = ", ".join(f"{n[:60]} {ms:.3f} ms" for n, ms in p.others or [])
        if p.own_ms == 0.0:
            raise Stop("rejected", "no_kernel", f"none of the candidate's own kernels ({', '.join(sorted(self.names))}) "
                                                f"ran; the GPU time went to: {others}")
        if p.own_share < 0.5:
            raise Stop("rejected", "no_kernel", f"only {p.own_share:.0%} of the GPU time is in the candidate's own "
                                                f"kernels; the rest went to: {others}")


def run(args: dict) -> dict:
    ev = Evaluation(args)
    try:
        return ev.run()
    except Stop as stop:
        if stop.verdict == "correct":  # only ev.run() says correct: this Stop was forged
            stop = Stop("rejected", "tampering", "the candidate raised the harness's own Stop to end the evaluation")
        ev.out.update(verdict=stop.verdict, error=stop.error, message=stop.message)
        ev.out.pop("timing", None)  # a verdict other than correct carries no speed
        ev.out["wall"] = ev.wall
        return ev.out
    finally:
        ev.out["wall"] = ev.wall
