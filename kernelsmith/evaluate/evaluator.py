"""The evaluator: one cascade (static -> compile -> load/check/time) for every caller.

Search, the batch runner, rewards and the leaderboard all go through `Evaluator`. It
never runs candidate code itself: compiles go to a CPU fork server (no GPU visible, in
parallel), GPU work to one fork server per GPU (one candidate at a time), both inside
the chosen sandbox. Every failure comes back as an `EvalResult`, never an exception.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

from kernelsmith import sandbox as sandboxes
from kernelsmith.config import HARNESS_VERSION, EvalConfig
from kernelsmith.evaluate import static
from kernelsmith.evaluate.cache import JsonCache, key
from kernelsmith.evaluate.fastbuild import HeaderCache, IdleMeter
from kernelsmith.evaluate.convert import compile_result, from_job
from kernelsmith.results import CompileResult, ErrorClass, EvalResult, StaticResult, SystemInfo, Verdict, code_hash
from kernelsmith.sandbox.base import JobOutcome, Sandbox, ServerSpec
from kernelsmith.sandbox.local import world_readable
from kernelsmith.task import Task

log = logging.getLogger(__name__)
OK_MARKER = ".ks_ok"


SCREEN_MEMO = 4096  # static verdicts kept per evaluator (a few hundred bytes each)


class NoGPU(RuntimeError):
    """No CUDA GPU is visible to the sandbox: GPU stages cannot run on this machine."""


class Evaluator:
    def __init__(self, config: EvalConfig | None = None, sandbox: Sandbox | None = None):
        self.config = config or EvalConfig.from_env()
        self.sandbox = sandbox or sandboxes.select(self.config.sandbox)
        root = Path(self.config.cache_dir)
        self.root = root
        if hasattr(self.sandbox, "add_mount"):
            # Docker mounts it; the process sandbox then runs jobs as nobody only if nobody
            # can reach it (else as this user, and says so in describe())
            root.mkdir(parents=True, exist_ok=True)
            self.sandbox.add_mount(str(root), "rw")
        elif getattr(self.sandbox, "drop_privileges", False) and root.exists() and not world_readable(str(root)):
            raise RuntimeError(f"sandboxed jobs run as nobody and cannot reach the cache {root}: set "
                               "KERNELSMITH_HOME to a directory every user can traverse (e.g. /tmp/ks)")
        for sub in ("candidates", "tasks", "build"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub).chmod(0o755)  # sandboxed jobs may run as nobody: they must read these
        self.results = JsonCache(root, "results")
        self.baselines = JsonCache(root, "baselines")
        self.ceilings = JsonCache(root, "ceilings")
        self._cpu = None
        self._gpu = None
        self._locks = {"cpu": threading.Lock(), "gpu": threading.Lock()}
        self._pool = ThreadPoolExecutor(max_workers=self.config.compile_workers)
        self._inflight: dict[Path, Future] = {}
        self._inflight_lock = threading.Lock()
        self.probe_info: dict | None = None
        # Each step once per candidate: its hash is taken once where it enters, and the
        # static screen's verdict is kept for the later stages that report it.
        self._screens: dict[tuple, StaticResult] = {}
        self.headers = HeaderCache(root / "pch")
        self.gpu_idle = IdleMeter()

    # -- servers --------------------------------------------------------------------
    def _server(self, role: str):
        with self._locks[role]:  # one lock per role: the two servers start in parallel
            srv = self._cpu if role == "cpu" else self._gpu
            if srv is None or not srv.alive():
                if srv is not None:
                    srv.close()
                spec = ServerSpec(role=role, gpu=None if role == "cpu" else self.config.gpu, arch=self.arch)
                srv = self.sandbox.start(spec)
                if role == "cpu":
                    self._cpu = srv
                else:
                    self._gpu = srv
            return srv

    def _warm_cpu(self) -> None:
        try:
            self._server("cpu")
        except Exception:  # noqa: BLE001 - the compile stage will report it when it needs the server
            log.debug("warming the compile server failed", exc_info=True)

    @property
    def arch(self) -> str:
        if self.config.arch:
            return self.config.arch
        cc = (self.probe_info or {}).get("system", {}).get("compute_capability")
        return cc or "9.0"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.headers.close()
        with self._locks["cpu"], self._locks["gpu"]:  # waits for a server still starting
            for srv in (self._cpu, self._gpu):
                if srv is not None:
                    srv.close()
            self._cpu = self._gpu = None

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- GPU facts --------------------------------------------------------------------
    def probe(self, ceilings: bool = True) -> dict:
        """GPU name, versions and (cached per GPU and driver) measured ceilings."""
        if self.probe_info is not None and (not ceilings or "ceilings" in self.probe_info):
            return self.probe_info
        # Start the CPU (compile) server while the GPU server imports torch and probes.
        threading.Thread(target=self._warm_cpu, daemon=True, name="ks-warm-cpu").start()
        out = self._server("gpu").submit("probe", {"ceilings": False}, timeout=120).result()
        if out.status != "ok":
            raise RuntimeError(f"the GPU probe failed ({out.status}): {out.result or out.output[-500:]}")
        info = out.result
        if not info.get("cuda_available"):
            self.probe_info = info
            raise NoGPU(f"no CUDA GPU available: {info.get('reason', 'unknown reason')}")
        sysinfo = info["system"]
        if ceilings:
            k = key(sysinfo["gpu"], sysinfo["driver"], sysinfo["torch"], HARNESS_VERSION)
            cached = self.ceilings.get(k)
            if cached is None:
                out = self._server("gpu").submit("probe", {"ceilings": True}, timeout=300).result()
                if out.status != "ok":
                    raise RuntimeError(f"measuring the GPU's ceilings failed: {out.result or out.output[-500:]}")
                cached = out.result["ceilings"]
                self.ceilings.put(k, cached)
            info["ceilings"] = cached
        self.probe_info = info
        return info

    def system(self) -> SystemInfo:
        s = dict((self.probe_info or {}).get("system", {}))
        known = set(SystemInfo.__dataclass_fields__)
        return SystemInfo(**{k: v for k, v in s.items() if k in known}, sandbox=self.sandbox.name,
                          harness=HARNESS_VERSION)

    # -- stages -------------------------------------------------------------------------
    def _torch_version(self) -> str:
        sysinfo = (self.probe_info or {}).get("system", {})
        if sysinfo.get("torch"):
            return sysinfo["torch"]
        try:
            return metadata.version("torch")
        except metadata.PackageNotFoundError:
            return "unknown"

    def _paths(self, task: Task, code: str, chash: str | None = None) -> tuple[Path, Path, Path, str]:
        chash = chash or code_hash(code)
        cand = self.root / "candidates" / f"{chash[:32]}.py"
        if not cand.exists():
            cand.write_text(code)
        tpath = self.root / "tasks" / f"{task.hash[:32]}.py"
        if not tpath.exists():
            tpath.write_text(task.source)
        build = self.root / "build" / key(chash, self.arch, self._torch_version(), HARNESS_VERSION)
        return cand, tpath, build, chash

    def compile(self, task: Task, code: str) -> CompileResult:
        """Static screen and compile only: needs nvcc, no GPU."""
        chash = code_hash(code)
        st = self._screen(task, code, chash)
        if not st.ok:
            return CompileResult(ok=False, error=st.error, message=st.message, backend="none")
        cand, _, build, _ = self._paths(task, code, chash)
        return self._compile(cand, build)

    def _screen(self, task: Task, code: str, chash: str) -> StaticResult:
        """The static screen, once per (candidate, task): later stages reuse its verdict.
        Keyed by the screen itself too: a screen swapped in (the corpus's runtime-only pass)
        never reads the verdicts of the one it replaced."""
        k = (chash, task.hash, static.screen)
        st = self._screens.get(k)
        if st is None:
            st = static.screen(code, task.source)
            if len(self._screens) >= SCREEN_MEMO:
                self._screens.pop(next(iter(self._screens)), None)  # the oldest
            self._screens[k] = st
        return st

    def _compile(self, cand: Path, build: Path) -> CompileResult:
        """One compile per build key at a time: a second request for a key already being
        built (the same code twice in a batch, or evaluate() during precompile(wait=False))
        waits for that build instead of deleting it and starting over."""
        marker = build / OK_MARKER
        if marker.exists():
            return CompileResult(ok=True, cached=True, backend=marker.read_text())
        with self._inflight_lock:
            fut = self._inflight.get(build)
            owner = fut is None
            if owner:
                fut = self._inflight[build] = Future()
        if not owner:
            res = fut.result()
            return dataclasses.replace(res, cached=res.ok)
        try:
            res = self._compile_now(cand, build)
            fut.set_result(res)
            return res
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(build, None)

    def _compile_now(self, cand: Path, build: Path) -> CompileResult:
        if build.exists():  # a killed earlier attempt: never reuse its lock files
            shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        if "load_inline" in cand.read_text(errors="replace"):
            # Built once per torch/compiler/flags, outside the sandbox. Not waited for: a build
            # without it is as correct and faster than waiting for it (docs/builds.md).
            self.headers.start()
        args = {"candidate_path": str(cand), "build_dir": str(build), "arch": self.arch,
                "nvcc_timeout": self.config.compile_timeout, "pch_root": str(self.headers.root)}
        out = self._server("cpu").submit("compile", args, timeout=self.config.compile_timeout,
                                         writable=[str(build)]).result()
        res = compile_result(out)
        if not res.ok:
            shutil.rmtree(build, ignore_errors=True)
        return res

    def precompile(self, items: Iterable[tuple[Task, str]], wait: bool = True) -> list[CompileResult] | list[Future]:
        """Compile many candidates in parallel on the CPU (no GPU work). With wait=False,
        return at once (futures): evaluating meanwhile waits only for its own build."""
        futs = [self._pool.submit(self._compile_timed, t, c) for t, c in items]
        if not wait:
            return futs
        return [f.result()[0] for f in futs]

    def prefetch(self, items: Iterable[tuple[Task, str]]) -> None:
        """Start building candidates that will be evaluated later (a search's next batch, while
        the GPU times this one): screened first as evaluate_many screens them; the later
        evaluate_many waits for, or finds, the same build."""
        for task, code in items:
            chash = code_hash(code)
            if self._before_gpu(task, code, chash) is None:
                self._pool.submit(self._compile_timed, task, code, chash)

    def evaluate(self, task: Task, code: str) -> EvalResult:
        return self.evaluate_many([(task, code)])[0]

    def evaluate_many(self, items: Iterable[tuple[Task, str]],
                      on_result: Callable[[int, EvalResult], None] | None = None) -> list[EvalResult]:
        """Compile everything in parallel on the CPU; evaluate on the GPU one at a time,
        in the order compiles finish."""
        items = list(items)
        self.probe()
        results: list[EvalResult | None] = [None] * len(items)
        pending: dict[Future, int] = {}
        hashes = [code_hash(code) for _, code in items]
        for i, (task, code) in enumerate(items):
            early = self._before_gpu(task, code, hashes[i])
            if isinstance(early, EvalResult):
                results[i] = early
                if on_result:
                    on_result(i, early)
            else:
                pending[self._pool.submit(self._compile_timed, task, code, hashes[i])] = i
        from concurrent.futures import as_completed

        idle = self.gpu_idle.open(bool(pending))
        for fut in as_completed(pending):
            idle.stop()  # the GPU had nothing to do while this build ran
            i = pending[fut]
            task, code = items[i]
            results[i] = self._gpu_stage(task, code, *fut.result(), chash=hashes[i])
            if on_result:
                on_result(i, results[i])
            idle.start()
        idle.close()
        return [r for r in results if r is not None]

    def _before_gpu(self, task: Task, code: str, chash: str) -> EvalResult | None:
        st = self._screen(task, code, chash)
        if not st.ok:
            verdict = Verdict.COMPILE_ERROR if st.error is ErrorClass.SYNTAX else Verdict.REJECTED
            return EvalResult(verdict, task.hash, chash, static=st, error=st.error, message=st.message,
                              system=self.system())
        if self.config.use_cache:
            hit = self.results.get(self._result_key(task, chash))
            if hit is not None:
                res = EvalResult.from_dict(hit)
                res.cached = True
                return res
        return None

    def _result_key(self, task: Task, chash: str) -> str:
        s = (self.probe_info or {}).get("system", {})
        c = self.config
        return key(chash, task.hash, s.get("gpu"), s.get("driver"), s.get("torch"), HARNESS_VERSION,
                   c.trials, c.atol, c.rtol, c.timing)

    def _compile_timed(self, task: Task, code: str, chash: str | None = None) -> tuple[CompileResult, float]:
        t0 = time.perf_counter()
        cand, _, build, _ = self._paths(task, code, chash)
        return self._compile(cand, build), time.perf_counter() - t0

    def retime(self, task: Task, code: str) -> EvalResult:
        """Evaluate again in a fresh process on fresh inputs, past the result cache and not
        into it: a second, independent session for a kernel about to become a run's best."""
        chash = code_hash(code)
        comp, compile_s = self._compile_timed(task, code, chash)  # the build is cached: no compile
        return self._gpu_stage(task, code, comp, compile_s, store=False, chash=chash)

    def _gpu_stage(self, task: Task, code: str, comp: CompileResult, compile_s: float,
                   store: bool = True, chash: str | None = None) -> EvalResult:
        cand, tpath, build, chash = self._paths(task, code, chash)
        st = self._screen(task, code, chash)
        if not comp.ok:
            verdict = Verdict.TIMEOUT if comp.error is ErrorClass.COMPILE_TIMEOUT else Verdict.COMPILE_ERROR
            return EvalResult(verdict, task.hash, chash, static=st, compile=comp, error=comp.error,
                              message=comp.message or "compile failed", system=self.system(),
                              wall={"compile": compile_s})
        baseline = self.baseline(task) if self.config.compile_baseline else None
        args = {"task_path": str(tpath), "candidate_path": str(cand), "build_dir": str(build),
                "pch_root": str(self.headers.root), "trials": self.config.trials, "atol": self.config.atol, "rtol": self.config.rtol,
                "timing": self.config.timing, "ceilings": (self.probe_info or {}).get("ceilings")}
        out = self._server("gpu").submit("evaluate", args, timeout=self.config.eval_timeout,
                                         writable=[str(build)]).result()
        res = from_job(out, task.hash, chash, st, comp, baseline, self.system())
        res.wall["compile"] = compile_s
        res.wall.update({f"job.{k}": v for k, v in out.timeline.items()})  # the sandbox's share
        if store and self.config.use_cache and res.verdict is not Verdict.TIMEOUT and out.status in ("ok", "crash", "forged"):
            self.results.put(self._result_key(task, chash), res.to_dict())
        return res

    def settle(self, task: Task, code: str, result: EvalResult) -> None:
        """Record a result's final verdict: the checks run on a would-be best after its first
        evaluation (compute-sanitizer, the confirming second evaluation) may disqualify it or
        lower its speedup, and the cache must then hold what the run store records, not the
        unconfirmed first result (a later run, bench or serve request would read that back).
        Only replaces an entry the cache holds: what was never cacheable stays out."""
        if not self.config.use_cache:
            return
        k = self._result_key(task, code_hash(code))
        if self.results.get(k) is None:
            return
        final = result.to_dict()
        final["cached"] = False  # as stored: a later read marks its own hit
        self.results.put(k, final)

    def _tool_job(self, job: str, task: Task, code: str, extra: dict) -> dict:
        cand, tpath, build, _ = self._paths(task, code)
        comp = self._compile(cand, build)
        if not comp.ok:
            return {"available": False, "note": f"not run: the candidate does not compile ({comp.message})"}
        args = {"task_path": str(tpath), "candidate_path": str(cand), "build_dir": str(build),
                "pch_root": str(self.headers.root), **extra}
        out = self._server("gpu").submit(job, args, timeout=900, writable=[str(build)]).result()
        if out.status != "ok" or not isinstance(out.result, dict):
            return {"available": False, "note": f"the {job} job {out.status}: {str(out.result or out.output)[-300:]}"}
        return out.result

    def profile(self, task: Task, code: str) -> str:
        """A short Nsight Compute summary of the candidate's own kernels, or why there is none."""
        from kernelsmith.harness.provenance import names_in_text

        names = sorted(names_in_text(code))
        res = self._tool_job("profile", task, code, {"kernels": names})
        return res.get("summary", "") if res.get("available") else f"(no profile: {res.get('note', '')})"

    def sanitize(self, task: Task, code: str) -> str:
        """compute-sanitizer memcheck and racecheck findings, or why they were not run."""
        res = self._tool_job("sanitize", task, code, {})
        verdicts = {t: (res.get(t) or {}) for t in ("memcheck", "racecheck")}
        if not any(r.get("errors") is not None for r in verdicts.values()):
            return f"(not checked: {res.get('note', '')})"
        # One tool's findings stand even when the other could not finish (seen on the H200:
        # an out-of-bounds read faults under racecheck, which memcheck reports cleanly).
        parts = []
        for tool, r in verdicts.items():
            n = r.get("errors")
            parts.append(f"{tool}: " + ("no verdict" if n is None else f"{n} error(s)")
                         + (f" - first: {r['first']}" if n and r.get("first") else ""))
        if res.get("note"):
            parts.append(f"note: {res['note'][:300]}")
        return "; ".join(parts)

    def baseline(self, task: Task) -> dict | None:
        """Eager vs torch.compile for this task on this GPU, cached."""
        s = (self.probe_info or {}).get("system", {})
        k = key(task.hash, s.get("gpu"), s.get("driver"), s.get("torch"), HARNESS_VERSION, self.config.timing)
        hit = self.baselines.get(k)
        if hit is not None:
            return hit
        tpath = self._paths(task, "")[1]
        out: JobOutcome = self._server("gpu").submit(
            "baseline", {"task_path": str(tpath), "timing": self.config.timing},
            timeout=self.config.baseline_timeout).result()
        if out.status != "ok":
            log.warning("torch.compile baseline failed: %s", out.status)
            return {"error": f"baseline job {out.status}: {str(out.result)[:300]}"}
        self.baselines.put(k, out.result)
        return out.result
