"""Scale-out on Ray: one GPU actor per GPU of a cluster, compiles as Ray CPU tasks.

`make_ray_pool(config, address=...)` returns an ordinary `EvaluatorPool` whose evaluators
are `RayEvaluator` proxies, so search, the batch runner and `map_tasks` work unchanged:

- every `EvalActor` holds one GPU (``num_gpus=1``; Ray sets CUDA_VISIBLE_DEVICES, so its
  Evaluator uses ``gpu=0``) and runs one call at a time (``max_concurrency=1``): two timings
  never share a GPU;
- with ``remote_compile=True`` each candidate is compiled by a Ray CPU task (anywhere in the
  cluster) for the actor's arch and torch version; the build directory comes back as tar
  bytes and is installed into the actor's build cache, where the `.ks_ok` marker makes the
  actor's own compile a cache hit. A candidate that does not compile comes back as a
  compile_error result at once, without a trip to the GPU;
- a GPU actor that dies mid-batch is replaced and the unfinished items are submitted once
  more; when the replacement dies too, the remaining items are run one at a time on fresh
  actors and an item that still kills its worker comes back as a runtime_error result
  (error=sandbox). Results of the other items are never lost.

Workers must be able to import kernelsmith (an installed package, or PYTHONPATH in the
job's runtime_env) and, for a custom `evaluator_factory` ("module:callable"), that module.

Layout: this package's `__init__` is the driver side (the RayEvaluator proxy and
make_ray_pool); `actor` the Ray side (the GPU actor); `builds` remote compiles and shipping
build directories; `runtime` what both sides share. Its pool builds on
`executors.local.EvaluatorPool`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import NoGPU
from kernelsmith.evaluate.executors.local import EvaluatorPool
from kernelsmith.evaluate.executors.ray.actor import ray_remotes
from kernelsmith.evaluate.executors.ray.builds import compile_failure, install_tree, pack_dir
from kernelsmith.evaluate.executors.ray.runtime import load_factory, ray_available
from kernelsmith.results import CompileResult, ErrorClass, EvalResult, SystemInfo, Verdict, _decode, code_hash
from kernelsmith.task import Task

# Names that callers import from this module, from before it was split.
__all__ = ["ACTOR_START_TIMEOUT", "RayEvaluator", "RayEvaluatorPool", "compile_failure", "died", "install_tree",
           "load_factory", "make_ray_pool", "pack_dir", "ray_available"]

log = logging.getLogger(__name__)

ACTOR_START_TIMEOUT = 600.0  # seconds to wait for a (re)started GPU actor to come up


def died(task: Task, code: str, why: str) -> EvalResult:
    """The result of an item whose GPU worker died under it even when run alone."""
    chash = code_hash(code)
    return EvalResult(Verdict.RUNTIME_ERROR, task.hash, chash, error=ErrorClass.SANDBOX,
                      message=f"the GPU worker died twice: {why}"[:2000])


# --- the driver side --------------------------------------------------------------------------

class RayEvaluator:
    """A stand-in for an Evaluator whose GPU is a Ray actor (evaluate_many / probe / close)."""

    def __init__(self, config: EvalConfig, evaluator_factory: str | Callable | None = None,
                 gpus_per_actor: float = 1, remote_compile: bool = True, build_root: str = "actor",
                 start_timeout: float = ACTOR_START_TIMEOUT, name: str = "gpu"):
        if build_root not in ("actor", "temp"):
            raise ValueError("build_root is 'actor' or 'temp'")
        self.config = config
        self.factory = evaluator_factory
        self.gpus_per_actor = gpus_per_actor
        self.remote_compile = remote_compile
        self.build_root = build_root
        self.start_timeout = start_timeout
        self.name = name
        self.restarts = 0
        self._facts: dict | None = None
        self._info: dict | None = None
        self._lock = threading.Lock()
        self.actor = self._spawn()

    # -- the actor ----------------------------------------------------------------------
    def _spawn(self):
        cls = ray_remotes()["actor"]
        return cls.options(num_gpus=self.gpus_per_actor).remote(self.config, self.factory)

    def wait_ready(self) -> dict:
        """Block until the actor is up (its evaluator built); its pid, node and GPU ids."""
        import ray

        if self._info is None:
            self._info = ray.get(self.actor.info.remote(), timeout=self.start_timeout)
        return self._info

    def _replace(self) -> None:
        import ray

        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.restarts += 1
        self._facts = self._info = None
        self.actor = self._spawn()
        self.wait_ready()

    def info(self) -> dict:
        return self.wait_ready()

    def probe(self) -> Any:
        import ray

        return ray.get(self.actor.probe.remote())

    def attr(self, name: str) -> Any:
        import ray

        return ray.get(self.actor.attr.remote(name))

    def retime(self, task: Task, code: str) -> EvalResult | None:
        """A second, independent evaluation in the actor; None when it could not run (a lost
        actor is no verdict on the kernel)."""
        import ray

        try:
            got = ray.get(self.actor.retime.remote(task.source, str(task.path), code))
        except Exception:  # noqa: BLE001 - a lost actor
            return None
        return EvalResult.from_dict(got) if got is not None else None

    def settle(self, task: Task, code: str, result: EvalResult) -> None:
        """The final verdict of a checked would-be best into the actor's result cache (see
        Evaluator.settle); a lost actor loses its cache with it."""
        import ray

        try:
            ray.get(self.actor.settle.remote(task.source, str(task.path), code, result.to_dict()))
        except Exception as exc:  # noqa: BLE001 - a lost actor
            log.warning("could not record the final verdict on the actor: %s", _short(exc))

    def sanitize(self, task: Task, code: str) -> str:
        return self._tool("sanitize", task, code)

    def profile(self, task: Task, code: str) -> str:
        return self._tool("profile", task, code)

    def _tool(self, name: str, task: Task, code: str) -> str:
        """Run on the actor's GPU, between evaluations (an actor takes one call at a time)."""
        import ray

        try:
            return ray.get(self.actor.tool.remote(name, task.source, str(task.path), code))
        except Exception as exc:  # noqa: BLE001 - a lost actor: the kernel's verdict stands
            return f"not run: the {name} job failed ({_short(exc)})"

    def close(self) -> None:
        import ray

        try:
            ray.get(self.actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - closing a dead or stuck actor
            pass
        try:
            ray.kill(self.actor, no_restart=True)
        except Exception:  # noqa: BLE001
            pass

    # -- batches ------------------------------------------------------------------------
    def evaluate_many(self, items: Iterable[tuple[Task, str]],
                      on_result: Callable[[int, EvalResult], None] | None = None) -> list[EvalResult]:
        import ray

        items = list(items)
        results: list[EvalResult | None] = [None] * len(items)

        def deliver(i: int, r: EvalResult) -> None:
            if results[i] is None:
                results[i] = r
                if on_result:
                    on_result(i, r)

        with self._lock:
            todo = list(range(len(items)))
            if self.remote_compile and todo:
                todo = self._compile_remote(items, todo, deliver)
            why = ""
            for attempt in range(2):
                if not todo:
                    break
                try:
                    self._stream(items, todo, deliver)
                    todo = []
                except ray.exceptions.RayActorError as exc:
                    todo = [i for i in todo if results[i] is None]
                    why = _short(exc)
                    log.warning("Ray GPU actor %s died (%s); %d item(s) unfinished", self.name, why, len(todo))
                    if not self._try_replace(items, todo, deliver, why):
                        todo = []
            # Died twice on the same batch: run what is left one at a time, so one item
            # that kills its worker takes only itself down.
            for i in todo:
                if results[i] is not None:
                    continue
                try:
                    self._stream(items, [i], deliver)
                except ray.exceptions.RayActorError as exc:
                    task, code = items[i]
                    deliver(i, died(task, code, f"{why}; alone: {_short(exc)}"))
                    if not self._try_replace(items, [j for j in todo if results[j] is None], deliver, why):
                        break
        for i, (task, code) in enumerate(items):  # a result for every item, whatever happened
            if results[i] is None:
                deliver(i, died(task, code, "the evaluator returned no result for this item"))
        return results  # type: ignore[return-value]

    def _try_replace(self, items, todo: list[int], deliver, why: str) -> bool:
        try:
            self._replace()
            return True
        except Exception as exc:  # noqa: BLE001 - no GPU left for a new actor, say so per item
            for i in todo:
                task, code = items[i]
                deliver(i, died(task, code, f"{why}; no replacement worker could start: {_short(exc)}"))
            return False

    def _stream(self, items, idx: list[int], deliver) -> None:
        import ray

        payload = [(items[i][0].source, str(items[i][0].path), items[i][1]) for i in idx]
        gen = self.actor.evaluate_stream.options(num_returns="streaming").remote(payload)
        for ref in gen:
            j, d = ray.get(ref)
            deliver(idx[j], EvalResult.from_dict(d))

    def _compile_remote(self, items, todo: list[int], deliver) -> list[int]:
        """Compile on Ray CPU tasks, install the builds in the actor's cache; a failed
        compile is answered here. Returns the items still to evaluate on the GPU."""
        import ray

        if self._facts is None:
            try:
                self._facts = ray.get(self.actor.build_facts.remote())
            except ray.exceptions.RayActorError:
                raise
            except Exception as exc:  # noqa: BLE001 - an evaluator without build keys (a fake)
                log.warning("remote compile is off for %s: its evaluator gives no build facts (%s)",
                            self.name, _short(exc))
                self.remote_compile = False
                return todo
        facts = self._facts
        job = ray_remotes()["compile"]
        refs: dict[tuple[str, str], Any] = {}
        for i in todo:
            task, code = items[i]
            k = (task.hash, code)
            if k not in refs:
                refs[k] = job.remote(self.config, self.factory, facts, task.source, str(task.path), code,
                                     self.build_root)
        outs: dict[tuple[str, str], dict | None] = {}
        installs = []
        for k, ref in refs.items():
            try:
                out = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the actor will compile this one itself
                log.warning("remote compile failed (%s); the GPU worker compiles it", _short(exc))
                out = None
            outs[k] = out
            if out and out.get("tar"):
                installs.append(self.actor.install_build.remote(out["rel"], out["tar"]))
        if installs:
            ray.get(installs)
        system = _decode(SystemInfo, facts.get("system") or {})
        left = []
        for i in todo:
            task, code = items[i]
            out = outs.get((task.hash, code))
            comp = _decode(CompileResult, out["compile"]) if out else None
            # backend "none": the static screen said no; the actor answers those (rejected etc.)
            if comp is not None and not comp.ok and comp.backend != "none":
                deliver(i, compile_failure(task, code, comp, system))
            else:
                left.append(i)
        return left


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class RayEvaluatorPool(EvaluatorPool):
    """An EvaluatorPool of RayEvaluator proxies that kills its actors on close."""

    def close(self) -> None:
        for ev in self.evaluators:
            ev.close()


def make_ray_pool(config: EvalConfig | None = None, address: str | None = None, gpus_per_actor: float = 1,
                  num_actors: int | None = None, evaluator_factory: str | Callable | None = None,
                  remote_compile: bool = True, build_root: str = "actor",
                  start_timeout: float = ACTOR_START_TIMEOUT, init_kwargs: dict | None = None) -> EvaluatorPool:
    """An EvaluatorPool with one Ray GPU actor per GPU of the cluster (or `num_actors`).

    Connects to `address` ("auto", "ray://host:10001", ...) unless Ray is already
    initialised; None starts a local cluster (or joins RAY_ADDRESS)."""
    ok, why = ray_available()
    if not ok:
        raise RuntimeError(why)
    import ray

    config = config or EvalConfig.from_env()
    if not ray.is_initialized():
        ray.init(address=address, **(init_kwargs or {}))
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if num_actors is None:
        num_actors = int(gpus // gpus_per_actor) if gpus_per_actor > 0 else 0
    if gpus <= 0:
        raise NoGPU("the Ray cluster has no GPU to evaluate on (cluster resources: GPU=0); start "
                    "workers with GPUs (ray start --num-gpus=N) or use the local executor")
    if num_actors <= 0:
        raise NoGPU(f"no GPU actor to start: the cluster's {gpus:g} GPU(s) at {gpus_per_actor:g} GPU per actor")
    if num_actors * gpus_per_actor > gpus:
        raise NoGPU(f"{num_actors} actor(s) x {gpus_per_actor:g} GPU need more than the cluster's {gpus:g} GPU(s)")
    evaluators = [RayEvaluator(config, evaluator_factory, gpus_per_actor, remote_compile, build_root,
                               start_timeout, name=f"ray{k}") for k in range(num_actors)]
    try:
        for ev in evaluators:
            ev.wait_ready()
    except BaseException:
        for ev in evaluators:
            ev.close()
        raise
    return RayEvaluatorPool(config, gpus=list(range(num_actors)), evaluators=evaluators)
