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
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import logging
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import OK_MARKER, NoGPU
from kernelsmith.evaluate.pool import EvaluatorPool
from kernelsmith.results import CompileResult, ErrorClass, EvalResult, SystemInfo, Verdict, _decode, _encode
from kernelsmith.task import Task

log = logging.getLogger(__name__)

ACTOR_START_TIMEOUT = 600.0  # seconds to wait for a (re)started GPU actor to come up


def ray_available() -> tuple[bool, str]:
    """(True, version) when Ray can be imported, else (False, what to do)."""
    try:
        import ray
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install
        return False, f"Ray is not importable ({type(exc).__name__}: {exc}); install it with pip install 'ray==2.60.0'"
    return True, f"ray {getattr(ray, '__version__', '?')}"


def load_factory(spec: str | Callable | None) -> Callable[[EvalConfig], Any]:
    """'module:callable' -> the callable; a callable as is; None -> the real Evaluator."""
    if spec is None:
        from kernelsmith.evaluate.evaluator import Evaluator

        return Evaluator
    if callable(spec):
        return spec
    mod, _, name = str(spec).partition(":")
    if not mod or not name:
        raise ValueError(f"evaluator_factory takes 'module:callable' (got {spec!r})")
    return getattr(importlib.import_module(mod), name)


# --- build directories as bytes ------------------------------------------------------------

def pack_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(str(path), arcname=".")
    return buf.getvalue()


def install_tree(root: Path, relative_key: str, data: bytes) -> bool:
    """Unpack a build directory to root/relative_key (atomically: unpack beside it, then
    rename). False when a finished build (with its marker) is already there."""
    rel = Path(relative_key)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"not a relative build key: {relative_key!r}")
    dest = Path(root) / rel
    if (dest / OK_MARKER).exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".ks_install_"))
    try:
        tmp.chmod(0o755)  # sandboxed jobs may run as nobody
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                for m in tar.getmembers():
                    if m.name.startswith("/") or ".." in Path(m.name).parts or m.issym() or m.islnk():
                        raise ValueError(f"unsafe member in a build archive: {m.name!r}")
                tar.extractall(tmp)
        if not (tmp / OK_MARKER).exists():
            raise ValueError("the build archive has no completion marker")
        if (dest / OK_MARKER).exists():
            return False
        if dest.exists():  # a killed earlier attempt
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.rename(tmp, dest)
        except OSError:
            if (dest / OK_MARKER).exists():  # someone else installed it meanwhile
                return False
            raise
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _to_dict(r: Any) -> dict:
    return r.to_dict() if hasattr(r, "to_dict") else _encode(r)


def compile_failure(task: Task, code: str, comp: CompileResult, system: SystemInfo | None = None) -> EvalResult:
    """The result the GPU actor would give for a candidate that does not compile (as in
    Evaluator._gpu_stage)."""
    from kernelsmith.evaluate import static

    chash = hashlib.sha256(code.encode()).hexdigest()
    verdict = Verdict.TIMEOUT if comp.error is ErrorClass.COMPILE_TIMEOUT else Verdict.COMPILE_ERROR
    return EvalResult(verdict, task.hash, chash, static=static.screen(code, task.source), compile=comp,
                      error=comp.error, message=comp.message or "compile failed", system=system or SystemInfo(),
                      wall={"compile": comp.seconds})


def died(task: Task, code: str, why: str) -> EvalResult:
    chash = hashlib.sha256(code.encode()).hexdigest()
    return EvalResult(Verdict.RUNTIME_ERROR, task.hash, chash, error=ErrorClass.SANDBOX,
                      message=f"the GPU worker died twice: {why}"[:2000])


# --- the Ray side ---------------------------------------------------------------------------

def _node_id() -> str:
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        return ""


class _EvalActor:
    """Owns one Evaluator on one GPU (Ray's CUDA_VISIBLE_DEVICES: gpu=0)."""

    def __init__(self, config: EvalConfig, factory: str | Callable | None):
        import ray

        self.config = dataclasses.replace(config, gpu=0)
        self.ev = load_factory(factory)(self.config)
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]

    def info(self) -> dict:
        return {"pid": os.getpid(), "node": _node_id(), "gpu_ids": self.gpu_ids,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def probe(self) -> Any:
        return self.ev.probe() if hasattr(self.ev, "probe") else {}

    def build_facts(self) -> dict:
        """What a remote compile needs to produce this actor's build keys."""
        self.probe()
        ev = self.ev
        system = _encode(ev.system()) if hasattr(ev, "system") else {}
        return {"arch": ev.arch, "torch": ev._torch_version(), "root": str(ev.root), "node": _node_id(),
                "system": system}

    def install_build(self, relative_key: str, tar_bytes: bytes) -> bool:
        return install_tree(Path(self.ev.root), relative_key, tar_bytes)

    def has_build(self, relative_key: str) -> bool:
        return (Path(self.ev.root) / relative_key / OK_MARKER).exists()

    def attr(self, name: str) -> Any:
        """An attribute of the evaluator (tests and debugging)."""
        return getattr(self.ev, name)

    def evaluate_stream(self, payload: list[tuple[str, str, str]]):
        """Yields (index, result dict) as results come; raises what the evaluator raises."""
        items = [(Task.from_source(src, path), code) for src, path, code in payload]
        q: queue.Queue = queue.Queue()
        done: set[int] = set()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = self.ev.evaluate_many(items, on_result=lambda i, r: q.put((i, r)))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the actor's thread
                box["exc"] = exc
            finally:
                q.put(None)

        t = threading.Thread(target=run, daemon=True, name="ks-ray-eval")
        t.start()
        while True:
            got = q.get()
            if got is None:
                break
            i, r = got
            if i not in done:
                done.add(i)
                yield i, _to_dict(r)
        t.join()
        if "exc" in box:
            raise box["exc"]
        for i, r in enumerate(box.get("out") or []):  # evaluators that did not call on_result
            if i not in done and r is not None:
                done.add(i)
                yield i, _to_dict(r)

    def close(self) -> None:
        if hasattr(self.ev, "close"):
            self.ev.close()


def _compile_job(config: EvalConfig, factory: str | Callable | None, facts: dict, source: str, path: str,
                 code: str, build_root: str) -> dict:
    """Compile one candidate for the GPU actor described by `facts`.

    build_root="actor": compile at the actor's own cache path (a build's absolute paths,
    e.g. in ninja files, then match on the GPU node, so nothing is rebuilt there); the tar is
    shipped only when this task ran on another node. "temp": compile in a fresh temporary
    cache and always ship."""
    task = Task.from_source(source, path)
    same_node = bool(facts.get("node")) and facts.get("node") == _node_id()
    root = Path(facts["root"]) if build_root == "actor" else None
    tmp = None
    if root is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = None
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="ks_ray_compile_"))
        tmp.chmod(0o755)
        root = tmp
    cfg = dataclasses.replace(config, cache_dir=root, arch=facts["arch"], gpu=0, compile_workers=1)
    ev = load_factory(factory)(cfg)
    try:
        if hasattr(ev, "probe_info"):  # the actor's torch version: the same build key
            ev.probe_info = {"system": {"compute_capability": facts["arch"], "torch": facts["torch"]}}
        comp = ev.compile(task, code)
        out: dict[str, Any] = {"compile": _encode(comp), "rel": None, "tar": None}
        if comp.ok:
            build = Path(ev._paths(task, code)[2])
            out["rel"] = str(build.relative_to(Path(ev.root)))
            if (build / OK_MARKER).exists() and (tmp is not None or not same_node):
                out["tar"] = pack_dir(build)
        return out
    finally:
        if hasattr(ev, "close"):
            ev.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


_REMOTE: dict[str, Any] = {}
_REMOTE_LOCK = threading.Lock()


def _remote() -> dict[str, Any]:
    """The Ray-decorated actor class and compile task (made on first use: importing this
    module must not need Ray)."""
    with _REMOTE_LOCK:
        if not _REMOTE:
            import ray

            _REMOTE["actor"] = ray.remote(num_gpus=1, max_restarts=0, max_concurrency=1)(_EvalActor)
            _REMOTE["compile"] = ray.remote(num_cpus=1, max_retries=1)(_compile_job)
        return _REMOTE


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
        cls = _remote()["actor"]
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
        job = _remote()["compile"]
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
