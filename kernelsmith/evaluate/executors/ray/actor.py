"""The Ray side of the pool: the GPU actor that owns one Evaluator, and the Ray-decorated
forms of it and of the compile task."""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import OK_MARKER
from kernelsmith.evaluate.executors.ray.builds import compile_job, install_tree
from kernelsmith.evaluate.executors.ray.runtime import load_factory, node_id
from kernelsmith.results import EvalResult, _encode
from kernelsmith.task import Task


def _to_dict(r: Any) -> dict:
    return r.to_dict() if hasattr(r, "to_dict") else _encode(r)


class _EvalActor:
    """Owns one Evaluator on one GPU (Ray's CUDA_VISIBLE_DEVICES: gpu=0)."""

    def __init__(self, config: EvalConfig, factory: str | Callable | None):
        import ray

        self.config = dataclasses.replace(config, gpu=0)
        self.ev = load_factory(factory)(self.config)
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]

    def info(self) -> dict:
        return {"pid": os.getpid(), "node": node_id(), "gpu_ids": self.gpu_ids,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def probe(self) -> Any:
        return self.ev.probe() if hasattr(self.ev, "probe") else {}

    def build_facts(self) -> dict:
        """What a remote compile needs to produce this actor's build keys."""
        self.probe()
        ev = self.ev
        system = _encode(ev.system()) if hasattr(ev, "system") else {}
        return {"arch": ev.arch, "torch": ev._torch_version(), "root": str(ev.root), "node": node_id(),
                "system": system}

    def install_build(self, relative_key: str, tar_bytes: bytes) -> bool:
        return install_tree(Path(self.ev.root), relative_key, tar_bytes)

    def has_build(self, relative_key: str) -> bool:
        return (Path(self.ev.root) / relative_key / OK_MARKER).exists()

    def attr(self, name: str) -> Any:
        """An attribute of the evaluator (tests and debugging)."""
        return getattr(self.ev, name)

    def retime(self, src: str, path: str, code: str) -> dict | None:
        """A second, independent evaluation (see Evaluator.retime); None when unsupported."""
        run = getattr(self.ev, "retime", None)
        return _to_dict(run(Task.from_source(src, path), code)) if run is not None else None

    def settle(self, src: str, path: str, code: str, result: dict) -> None:
        """Record a checked result's final verdict in this actor's cache (Evaluator.settle)."""
        run = getattr(self.ev, "settle", None)
        if run is not None:
            run(Task.from_source(src, path), code, EvalResult.from_dict(result))

    def tool(self, name: str, src: str, path: str, code: str) -> str:
        """compute-sanitizer ("sanitize") or Nsight Compute ("profile") on this actor's GPU."""
        run = getattr(self.ev, name, None) if name in ("sanitize", "profile") else None
        if run is None:
            return f"not run: this evaluator has no {name} job"
        return run(Task.from_source(src, path), code)

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


_REMOTE: dict[str, Any] = {}
_REMOTE_LOCK = threading.Lock()


def ray_remotes() -> dict[str, Any]:
    """The Ray-decorated actor class ("actor") and compile task ("compile"), made on first
    use: importing this module must not need Ray."""
    with _REMOTE_LOCK:
        if not _REMOTE:
            import ray

            _REMOTE["actor"] = ray.remote(num_gpus=1, max_restarts=0, max_concurrency=1)(_EvalActor)
            _REMOTE["compile"] = ray.remote(num_cpus=1, max_retries=1)(compile_job)
        return _REMOTE
