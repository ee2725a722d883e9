"""One queue, one worker thread and one evaluator per GPU.

A worker takes the next candidate from its GPU's queue plus whatever else is waiting there
(up to batch_size) and hands the batch to its own evaluator, so two timings never share a
GPU. New work goes to the GPU with the least queued + running work.

Every piece of work ends with exactly one payload, ("ok", result dict) or ("error",
message): an evaluator that raises or skips an item yields "error" for what is left, and
never kills the worker.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from kernelsmith.task import Task

log = logging.getLogger(__name__)

EvaluatorFactory = Callable[[int], Any]  # gpu index -> object with evaluate_many(items, on_result)


@dataclass
class Work:
    key: tuple[str, str]
    task: Task
    code: str
    future: Future  # resolves to ("ok", result dict) or ("error", message)


class GpuWorkers:
    def __init__(self, gpus: list[int], evaluator_factory: EvaluatorFactory, batch_size: int,
                 on_settled: Callable[[tuple[str, str], tuple], None]):
        """on_settled(key, payload) runs for each piece of work before its future resolves
        (the result cache records it there, so a waiter never misses it)."""
        self.gpus = gpus
        self.batch_size = batch_size
        self.evaluations = 0  # candidates sent to an evaluator
        self._on_settled = on_settled
        self._factory = evaluator_factory
        self._lock = threading.Lock()
        self._queues = {g: queue.Queue() for g in gpus}
        self._load = {g: 0 for g in gpus}  # queued + being evaluated
        self._busy = {g: 0 for g in gpus}
        self._stop = threading.Event()
        self._threads: dict[int, threading.Thread] = {}
        self._evaluators: dict[int, Any] = {}
        self._rr = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        for g in self.gpus:
            t = threading.Thread(target=self._worker, args=(g,), name=f"ks-serve-gpu{g}", daemon=True)
            self._threads[g] = t
            t.start()

    def close(self) -> None:
        self._stop.set()
        for g in self.gpus:
            self._queues[g].put(None)
        for t in self._threads.values():
            t.join(timeout=5)
        for ev in self._evaluators.values():
            if hasattr(ev, "close"):
                try:
                    ev.close()
                except Exception:  # noqa: BLE001 - closing must not mask shutdown
                    log.exception("closing an evaluator failed")

    # -- queueing ------------------------------------------------------------------------
    def enqueue(self, work: Work) -> None:
        with self._lock:
            g = self._pick_gpu()
            self._load[g] += 1
        self._queues[g].put(work)

    def _pick_gpu(self) -> int:  # under self._lock
        # Round-robin among the least loaded, so equal loads still spread over the GPUs.
        low = min(self._load.values())
        ties = [g for g in self.gpus if self._load[g] == low]
        self._rr += 1
        return ties[self._rr % len(ties)]

    def depth(self) -> tuple[dict[str, dict], int]:
        """({gpu: {"queued", "running"}}, evaluations so far)."""
        with self._lock:
            per_gpu = {str(g): {"queued": self._load[g] - self._busy[g], "running": self._busy[g]}
                       for g in self.gpus}
            return per_gpu, self.evaluations

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads.values())

    # -- the workers ---------------------------------------------------------------------
    def _evaluator(self, gpu: int):
        # Built in the worker on first use: a slow or failing factory then delays or fails
        # that GPU's items only, not the server's start.
        if gpu not in self._evaluators:
            self._evaluators[gpu] = self._factory(gpu)
        return self._evaluators[gpu]

    def _worker(self, gpu: int) -> None:
        q = self._queues[gpu]
        while not self._stop.is_set():
            first = q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    q.put(None)  # the stop sentinel: leave it for the loop above
                    break
                batch.append(nxt)
            self._run_batch(gpu, batch)

    def _run_batch(self, gpu: int, batch: list[Work]) -> None:
        for w in batch:
            w.future.set_running_or_notify_cancel()
        with self._lock:
            self._busy[gpu] += len(batch)
            self.evaluations += len(batch)
        settled: set[int] = set()

        # An item may be reported both through on_result and in the returned list; only
        # the first report counts.
        def finish(i: int, payload: tuple) -> None:
            if i in settled:
                return
            settled.add(i)
            w = batch[i]
            with self._lock:
                self._load[gpu] -= 1
                self._busy[gpu] -= 1
            self._on_settled(w.key, payload)
            w.future.set_result(payload)

        def on_result(i: int, res) -> None:
            finish(i, ("ok", as_dict(res)))

        try:
            ev = self._evaluator(gpu)
            out = ev.evaluate_many([(w.task, w.code) for w in batch], on_result)
            for i, res in enumerate(out or []):
                if i < len(batch):
                    finish(i, ("ok", as_dict(res)))
            missing = "the evaluator returned no result for this candidate"
        except Exception as exc:  # noqa: BLE001 - reported per item, never kills the worker
            log.exception("evaluation on GPU %s failed", gpu)
            missing = f"the evaluator failed on GPU {gpu}: {type(exc).__name__}: {str(exc)[:500]}"
        for i in range(len(batch)):
            finish(i, ("error", missing))


def as_dict(res) -> dict:
    """An evaluator's result (a dict, or an EvalResult) as a dict."""
    if isinstance(res, dict):
        return res
    return res.to_dict()
