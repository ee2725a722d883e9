"""Several GPUs: one `Evaluator` per GPU, batches split across them, or one GPU per task.

Each Evaluator already compiles in parallel on the CPU and evaluates one candidate at a time
on its GPU; the pool gives each of them a share of the compile workers (so together they
use the machine's cores once, not once per GPU) and

- `evaluate_many` deals a batch out across the GPUs (round robin), returns results in input
  order; a GPU never evaluates two batches at once (a lock per evaluator);
- `map_tasks(fn, tasks)` runs ``fn(task, evaluator)`` for every task with one GPU leased per
  task from a queue of free evaluators, so a task's whole search times on one GPU and no two
  tasks ever share a GPU's timings.

Tests (and CPU-only callers) pass ``evaluators=[...]`` (fakes) instead of a config.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import subprocess
import threading
from typing import Any, Callable, Iterable, Sequence, TypeVar

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator, NoGPU
from kernelsmith.sandbox.base import visible_devices

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def visible_gpus() -> list[int]:
    """Indices of the GPUs this process may use, counted within CUDA_VISIBLE_DEVICES when
    it is set (as torch's cuda:N; sandbox.base.physical_gpu maps them back), else the GPUs
    `nvidia-smi -L` lists; [] when there are none."""
    entries = visible_devices()
    if entries is not None:
        return list(range(len(entries)))
    try:
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [i for i, line in enumerate(ln for ln in proc.stdout.splitlines() if ln.startswith("GPU "))]


def parse_gpus(spec: str | None) -> list[int] | None:
    """'0,1' -> [0, 1]; None / '' / 'all' -> None (every visible GPU)."""
    if spec is None or not spec.strip() or spec.strip().lower() == "all":
        return None
    try:
        out = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes GPU indices like 0,1 (got {spec!r})") from None
    if not out or any(g < 0 for g in out) or len(set(out)) != len(out):
        raise ValueError(f"--gpus takes distinct GPU indices like 0,1 (got {spec!r})")
    return out


class EvaluatorPool:
    def __init__(self, config: EvalConfig | None = None, gpus: list[int] | None = None, sandbox=None,
                 evaluators: Sequence[Any] | None = None):
        self.config = config or EvalConfig.from_env()
        if evaluators is not None:
            if not evaluators:
                raise ValueError("EvaluatorPool needs at least one evaluator")
            self.evaluators = list(evaluators)
            self.gpus = list(gpus) if gpus is not None else list(range(len(self.evaluators)))
            self._owned = False
        else:
            found = visible_gpus() if gpus is None else list(gpus)
            if not found:
                raise NoGPU("no CUDA GPU visible (nvidia-smi -L lists none and CUDA_VISIBLE_DEVICES gives none)")
            self.gpus = found
            share = max(1, self.config.compile_workers // len(found))  # one compile budget for the machine
            self.evaluators = [Evaluator(dataclasses.replace(self.config, gpu=g, compile_workers=share), sandbox)
                               for g in found]
            self._owned = True
        self._locks = [threading.Lock() for _ in self.evaluators]
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(len(self.evaluators)):
            self._free.put(i)

    def __len__(self) -> int:
        return len(self.evaluators)

    def __enter__(self) -> "EvaluatorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            for ev in self.evaluators:
                ev.close()

    # -- facts ------------------------------------------------------------------------
    def probe(self) -> list[dict]:
        """Every GPU's facts (in parallel); raises NoGPU / RuntimeError like Evaluator.probe."""
        out: list[Any] = [None] * len(self.evaluators)
        errors: list[BaseException] = []

        def one(i: int) -> None:
            ev = self.evaluators[i]
            try:
                out[i] = ev.probe() if hasattr(ev, "probe") else {}
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(self.evaluators))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return out

    # -- batches ----------------------------------------------------------------------
    def evaluate_many(self, items: Iterable[tuple[Any, str]],
                      on_result: Callable[[int, Any], None] | None = None) -> list:
        """Round-robin the items over the GPUs; results in input order. on_result(i, result)
        gets the index into `items` (calls come from several threads, one at a time)."""
        items = list(items)
        if not items:
            return []
        n = min(len(self.evaluators), len(items))
        shares = [list(range(g, len(items), n)) for g in range(n)]
        results: list[Any] = [None] * len(items)
        cb_lock = threading.Lock()
        errors: list[BaseException] = []

        def work(g: int) -> None:
            idx = shares[g]

            def local(j: int, r) -> None:
                results[idx[j]] = r
                if on_result:
                    with cb_lock:
                        on_result(idx[j], r)

            try:
                with self._locks[g]:
                    got = self.evaluators[g].evaluate_many([items[i] for i in idx], on_result=local)
                for j, r in enumerate(got):
                    results[idx[j]] = r
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        if n == 1:
            work(0)
        else:
            threads = [threading.Thread(target=work, args=(g,), daemon=True, name=f"ks-gpu{self.gpus[g]}")
                       for g in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        if errors:
            raise errors[0]
        return results

    # -- one GPU per task ----------------------------------------------------------------
    def map_tasks(self, fn: Callable[[T, Any], R], tasks: Sequence[T], stop: threading.Event | None = None,
                  ) -> list[R | None]:
        """fn(task, evaluator) for every task, as many at once as there are GPUs, each with a
        GPU of its own for its whole run. Results in task order (None for tasks never started).
        When a call raises (KeyboardInterrupt included) `stop` is set, no further task starts,
        the running ones finish, and the first exception is raised. Ctrl-C in the caller sets
        `stop` too: fn may watch it to finish early."""
        stop = stop or threading.Event()
        tasks = list(tasks)
        results: list[R | None] = [None] * len(tasks)
        todo: queue.Queue[int] = queue.Queue()
        for i in range(len(tasks)):
            todo.put(i)
        errors: list[BaseException] = []

        def worker() -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                g = self._free.get()
                try:
                    with self._locks[g]:
                        results[i] = fn(tasks[i], self.evaluators[g])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    errors.append(exc)
                    stop.set()
                finally:
                    self._free.put(g)

        threads = [threading.Thread(target=worker, daemon=True, name=f"ks-task{k}")
                   for k in range(min(len(self.evaluators), len(tasks)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            stop.set()
            for t in threads:  # fn sees `stop` and winds down; a second Ctrl-C leaves at once
                while t.is_alive():
                    t.join(0.2)
            raise
        if errors:
            raise errors[0]
        return results

    def evaluator_gpu(self, evaluator: Any) -> int | None:
        for ev, g in zip(self.evaluators, self.gpus):
            if ev is evaluator:
                return g
        return None
