"""The GPU stage, run in a fresh forked child per candidate: load, check, time.

Returns a plain dict (the orchestrator turns it into typed results). Every failure is
reported as {"verdict", "error", "message"} and the child exits: a CUDA fault poisons
the context for good, and the next candidate gets a new process anyway.
"""

from __future__ import annotations

import secrets
import time

import torch

from kernelsmith.harness import bound, check, integrity, probe, provenance, timing
from kernelsmith.harness.loader import Capture, load_module, patch_cupy, patch_load_inline

_sync = torch.cuda.synchronize
_perf = time.perf_counter
CUDA_FAULT_MARKERS = ("illegal memory access", "unspecified launch failure", "misaligned address",
                      "illegal instruction", "device-side assert", "an illegal", "CUDA error",
                      "cudaError", "CUDA_ERROR", "launch timed out")


class Stop(Exception):
    """Ends the evaluation with a verdict."""

    def __init__(self, verdict: str, error: str, message: str):
        super().__init__(message)
        self.verdict, self.error, self.message = verdict, error, message


def classify(exc: BaseException, where: str) -> Stop:
    text = f"{type(exc).__name__}: {exc}"
    short = text if len(text) < 1500 else text[:1500] + " [...]"
    if "out of memory" in text.lower():
        return Stop("runtime_error", "oom", f"{where}: out of memory: {short}")
    if any(m in text for m in CUDA_FAULT_MARKERS):
        return Stop("runtime_error", "cuda_fault", f"{where}: CUDA fault (the context is lost): {short}")
    return Stop("runtime_error", "forward" if where == "forward" else where, f"{where} raised {short}")


def _to(dev, xs: list) -> list:
    return [x.to(dev) if isinstance(x, torch.Tensor) else x for x in xs]


def _clone(xs: list) -> list:
    return [x.clone() if isinstance(x, torch.Tensor) else x for x in xs]


def _perturb(xs: list, gen: torch.Generator) -> list:
    """New content at new addresses with the same structure: floats scaled by 1 +/- 1e-3
    elementwise (zeros, signs and sparsity survive), other tensors cloned."""
    out = []
    for x in xs:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=torch.float32)
            out.append((x * (1 + 2e-3 * (noise - 0.5)).to(x.dtype)).contiguous())
        else:
            out.append(x.clone() if isinstance(x, torch.Tensor) else x)
    return out


def sparse_update(xs: list, fresh: list, frac: float, gen: torch.Generator) -> bool:
    """Overwrite, in place, about `frac` of the elements of each contiguous float tensor of
    at least 1024 elements in xs with the same elements of `fresh` (same distribution).
    Returns whether anything changed."""
    changed = False
    for x, y in zip(xs, fresh):
        if (isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() >= 1024 and x.is_contiguous()
                and isinstance(y, torch.Tensor) and y.shape == x.shape):
            flat, src = x.view(-1), y.reshape(-1).to(x.dtype)
            idx = torch.randint(0, flat.numel(), (max(1, int(flat.numel() * frac)),), generator=gen,
                                device=flat.device)
            flat[idx] = src[idx]
            changed = True
    return changed


def _poison(like) -> None:
    """Fill freed allocator blocks of the output's sizes with NaN, so an output the
    candidate allocates but never writes reads as NaN, not a stale result."""
    blocks = [torch.full_like(r, float("nan")) if r.is_floating_point() else torch.full_like(r, 7)
              for r in check.flatten(like) if isinstance(r, torch.Tensor)]
    del blocks


def _fresh_inputs(task, dev) -> list:
    """The task's own get_inputs(), under a secret seed, with the GPU as default device
    (CPU random generation of large inputs costs more than the whole check)."""
    torch.manual_seed(secrets.randbits(62))
    with torch.device(dev):
        return _to(dev, list(task.get_inputs()))


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
        self.dev = torch.device("cuda")
        self.atol, self.rtol = args.get("atol"), args.get("rtol")
        self.wall: dict[str, float] = {}
        self.out: dict = {"warnings": []}
        self.errors = check.Errors()

    def run(self) -> dict:
        t0 = _perf()
        torch.backends.cuda.matmul.allow_tf32 = False  # the reference is true fp32
        torch.backends.cudnn.allow_tf32 = False
        if not torch.cuda.is_available():
            raise Stop("runtime_error", "sandbox", "no CUDA GPU is visible to the evaluator")
        torch.empty(1, device=self.dev)  # creates the CUDA context
        self.wall["startup.cuda_init"] = _perf() - t0  # "a.b": a part of stage a
        self.out["system"] = probe.system_info(with_driver=False)
        self.wall["startup.system"] = _perf() - t0 - self.wall["startup.cuda_init"]
        self._load_task()
        self.wall["startup"] = _perf() - t0
        t1 = _perf()
        self._load_candidate()
        self.wall["load"] = _perf() - t1
        t2 = _perf()
        self._check()
        self.wall["check.trials"] = _perf() - t2
        self._provenance()
        self.wall["check"] = _perf() - t2
        if not self.args.get("skip_timing"):
            t3 = _perf()
            self._time()
            self.wall["time"] = _perf() - t3
        self.out.update(verdict="correct", error="none", message="")
        return self.out

    # -- stages -------------------------------------------------------------------
    def _load_task(self) -> None:
        lap = _Lap(self.wall, "startup.task_")
        try:
            self.task = load_module(self.args["task_path"], "ks_task")
            self.init = list(self.task.get_init_inputs())
            self.seed = secrets.randbits(31)
            torch.manual_seed(self.seed)
            self.ref = self.task.Model(*self.init).to(self.dev)
            lap("init")
            inputs = _fresh_inputs(self.task, self.dev)
            _sync()
            lap("inputs")
            with torch.no_grad():
                ref_out = self.ref(*_clone(inputs))
            _sync()
            lap("forward")
        except Exception as exc:  # noqa: BLE001
            raise Stop("invalid_task", "task", f"the reference failed: {type(exc).__name__}: {exc}") from None
        if check.near_constant(ref_out):
            raise Stop("invalid_task", "task", "the reference output is (near-)constant: no check can fail")
        self.out_like = ref_out
        flops, nbytes = bound.count(self.ref, _clone(inputs))
        lap("flops")
        self.out["flops"], self.out["bytes"] = flops, nbytes

    def _load_candidate(self) -> None:
        self.snapshot = integrity.Snapshot()
        self.capture = Capture()
        patch_load_inline(self.args["build_dir"], self.capture)
        try:
            import cupy

            patch_cupy(self.capture, cupy)
        except Exception:  # noqa: BLE001 - CuPy absent: CuPy candidates fail at import
            pass
        try:
            mod = load_module(self.args["candidate_path"], "ks_candidate")
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
        self._integrity("loading")

    def _integrity(self, when: str) -> None:
        changed = self.snapshot.tampered()
        if changed:
            raise Stop("rejected", "tampering", f"while {when}: " + "; ".join(changed[:5]))
        threads = self.snapshot.new_threads()
        if threads:
            raise Stop("rejected", "background_thread", f"while {when} the candidate left threads running: {threads[:3]}")
        if integrity.reset_persisting_l2(self.snapshot.l2_limit):
            raise Stop("rejected", "tampering", f"while {when} the candidate set a persisting-L2 cache limit")

    def _call_candidate(self, inputs: list):
        _poison(self.out_like)
        try:
            with torch.no_grad():
                out = self.new(*inputs)
            _sync()
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "forward") from None
        self._integrity("running forward")
        return out

    def _check(self) -> None:
        trials = int(self.args.get("trials", 5))
        res = {"trials": trials, "trials_passed": 0}
        self.out["check"] = res
        for t in range(trials):
            inputs = _fresh_inputs(self.task, self.dev)
            pristine = _clone(inputs)
            cand_in = _clone(inputs)
            out = self._call_candidate(cand_in)  # before the reference: no stale results
            for a, b in zip(cand_in, pristine):
                if isinstance(a, torch.Tensor) and not torch.equal(a, b):
                    raise Stop("incorrect", "input_mutation", "forward modified its input tensors in place")
            with torch.no_grad():
                ref_out = self.ref(*_clone(inputs))
            _sync()
            bad = check.compare(out, ref_out, cand_in, self.atol, self.rtol, self.errors)
            res.update(max_abs_error=self.errors.max_abs, rel_error=self.errors.rel)
            if bad is not None:
                res["detail"] = f"trial {t + 1}: {bad.detail}"
                raise Stop("incorrect", bad.error, res["detail"])
            if t == 0:  # determinism: the same inputs again, on re-poisoned memory
                again = self._call_candidate(_clone(pristine))
                if not check.fast_close(again, out, self.atol, self.rtol):
                    raise Stop("incorrect", "nondeterministic",
                               "two runs on the same inputs disagree beyond tolerance (a race or uninitialised memory)")
                del again
            res["trials_passed"] = t + 1
            del out, ref_out, inputs, pristine, cand_in
        self._sparse_update_check()
        a, r = check.tolerance(check.flatten(self.out_like)[0].dtype, self.atol, self.rtol)
        res.update(atol=a, rtol=r)

    def _sparse_update_check(self) -> None:
        """Output caching keyed by the input's address and a sample of its values: call the
        candidate on the same tensors, changing a scattered 0.01% of their elements in place
        before each of two more calls. Fresh inputs at fresh addresses (the trials) change
        every sampled value, so only this catches a cache that samples (seen: 16 fixed
        elements). Two rounds: a round whose changes happen to touch the sample makes such a
        cache recompute (16 samples: 0.16% of rounds), and the next round catches it."""
        inputs = _fresh_inputs(self.task, self.dev)
        del_out = self._call_candidate(inputs)  # no clone: the addresses are what a cache keys on
        del del_out
        gen = torch.Generator(device=self.dev)
        gen.manual_seed(secrets.randbits(62))
        for _ in range(2):
            if not sparse_update(inputs, _fresh_inputs(self.task, self.dev), 1e-4, gen):
                return  # no float input large enough to change sparsely
            pristine = _clone(inputs)
            out = self._call_candidate(inputs)
            with torch.no_grad():
                ref_out = self.ref(*pristine)
            _sync()
            bad = check.compare(out, ref_out, inputs, self.atol, self.rtol, self.errors)
            if bad is not None:
                raise Stop("incorrect", bad.error,
                           f"stale output: after 0.01% of the input's elements changed in place (same tensors, "
                           f"same addresses), {bad.detail}; compute from the current input, do not cache by "
                           f"address or by a sample of values")
            del out, ref_out, pristine

    def _provenance(self) -> None:
        """Reject a candidate whose own kernels do not do most of the GPU work."""
        names = provenance.kernel_names(self.capture)
        if not names:
            raise Stop("rejected", "no_kernel", "no __global__ kernel in the candidate's CUDA sources: write one")
        inputs = _fresh_inputs(self.task, self.dev)  # prepared outside the profiled call:
        _poison(self.out_like)  # copies and fills there would count as foreign kernels
        _sync()

        def call():
            with torch.no_grad():
                self.new(*inputs)
            _sync()

        try:
            p = provenance.measure(call, names)
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - profiler trouble is ours, not the candidate's
            self.out["warnings"].append(f"kernel provenance not checked: profiler failed ({type(exc).__name__})")
            return
        self.out["provenance"] = {"own_ms": p.own_ms, "other_ms": p.other_ms, "own": p.own, "others": p.others}
        self._integrity("profiling forward")
        if not p.available:
            self.out["warnings"].append("kernel provenance not checked: the profiler saw no kernels here")
            return
        others = ", ".join(f"{n[:60]} {ms:.3f} ms" for n, ms in p.others or [])
        if p.own_ms == 0.0:
            raise Stop("rejected", "no_kernel", f"none of the candidate's own kernels ({', '.join(sorted(names))}) "
                                                f"ran; the GPU time went to: {others}")
        if p.own_share < 0.5:
            raise Stop("rejected", "no_kernel", f"only {p.own_share:.0%} of the GPU time is in the candidate's own "
                                                f"kernels; the rest went to: {others}")

    def _time(self) -> None:
        cfg = timing.TimingConfig(**self.args.get("timing", {}))
        flush = timing.L2Flusher(self.dev, cfg.hide_launch, cfg.warm_ms)
        integrity.reset_persisting_l2(self.snapshot.l2_limit)
        bases = [_fresh_inputs(self.task, self.dev) for _ in range(cfg.input_sets)]
        gen = torch.Generator(device=self.dev)
        gen.manual_seed(secrets.randbits(62))
        rounds: dict[int, list] = {}
        counter = {"round": -1, "n": 0, "rechecked": 0}

        def fresh_args():
            counter["n"] += 1
            if counter["n"] % 2 == 1:  # first side of a round draws the round's inputs
                counter["round"] += 1
                rounds[counter["round"]] = [_perturb(bases[counter["round"] % len(bases)], gen), {}]
            return _clone(rounds[counter["round"]][0])

        def on_output(name: str, k: int, result) -> None:
            slot = rounds[counter["round"]][1]
            slot[name] = result
            if len(slot) == 2:
                if not check.fast_close(slot["candidate"], slot["reference"], self.atol, self.rtol):
                    raise Stop("incorrect", "timed_mismatch",
                               "an output produced while timing differs from the reference on the same inputs")
                counter["rechecked"] += 1
                del rounds[counter["round"]]

        def cand(*a):
            with torch.no_grad():
                return self.new(*a)

        def ref(*a):
            with torch.no_grad():
                return self.ref(*a)

        try:
            timing.warmup(ref, fresh_args_once(bases), cfg)
            timing.warmup(cand, fresh_args_once(bases), cfg)
            samples = timing.interleave({"reference": ref, "candidate": cand}, [fresh_args], flush, cfg, on_output)
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, "forward") from None
        self._integrity("timing")
        c, r = samples["candidate"], samples["reference"]
        tc, tr = timing.summarize(c.event_ms), timing.summarize(r.event_ms)
        res = {"candidate": tc, "eager": tr, "rechecked_outputs": counter["rechecked"]}
        res["speedup_eager"] = tr["median_ms"] / tc["median_ms"]
        res["speedup_eager_ci"] = timing.ratio_ci(r.event_ms, c.event_ms)
        gap_c = timing.median_ci([h - e for h, e in zip(c.host_ms, c.event_ms)])[0]
        gap_r = timing.median_ci([h - e for h, e in zip(r.host_ms, r.event_ms)])[0]
        res["host_gap_ms"] = {"candidate": gap_c, "reference": gap_r}
        # host time to enqueue one call (kept out of the events by hide_launch, up to HIDE_MAX_MS)
        res["launch_ms"] = {"candidate": timing.median_ci(c.launch_ms)[0], "eager": timing.median_ci(r.launch_ms)[0]}
        self.out["timing"] = res
        # Work the events do not see (side streams, late threads) shows up as host time past
        # the end event; flag it when it is at least as large as the work they do see.
        if gap_c - gap_r > max(0.1, tc["median_ms"]):
            raise Stop("rejected", "unaccounted_work",
                       f"work continues {gap_c - gap_r:.3f} ms after the timed stream finishes "
                       "(side streams or background work the timer does not see)")
        ceil = self.args.get("ceilings") or {}
        if ceil.get("bandwidth") and ceil.get("peak_flops"):
            floor = bound.floor_ms(self.out["flops"], self.out["bytes"], ceil["peak_flops"], ceil["bandwidth"])
            res["bound"] = {"flops": self.out["flops"], "bytes": self.out["bytes"], "peak_flops": ceil["peak_flops"],
                            "bandwidth": ceil["bandwidth"], "floor_ms": floor, "fraction": floor / tc["median_ms"]}
            if tc["median_ms"] < 0.9 * floor:
                raise Stop("rejected", "impossible_speed",
                           f"{tc['median_ms']:.4f} ms is below the physical floor {floor:.4f} ms on this GPU")


def fresh_args_once(bases: list) -> list:
    return _clone(bases[0])


def run(args: dict) -> dict:
    ev = Evaluation(args)
    try:
        return ev.run()
    except Stop as stop:
        ev.out.update(verdict=stop.verdict, error=stop.error, message=stop.message)
        ev.out["wall"] = ev.wall
        return ev.out
    finally:
        ev.out["wall"] = ev.wall
