"""The reward service without HTTP: known tasks, a result cache keyed by (task hash, code hash)
with in-flight de-duplication, one queue and one worker thread (with its own evaluator) per GPU,
and asynchronous jobs.

Nothing here raises on a bad candidate: a completion without usable code scores as a format
error, an evaluator that breaks gives an "error" item whose reward is None (an infrastructure
failure must not be learned from) and that is not cached.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from kernelsmith.llm.extract import extract_code
from kernelsmith.task import Task, TaskError

log = logging.getLogger(__name__)

EvaluatorFactory = Callable[[int], Any]  # gpu index -> object with evaluate_many(items, on_result)


class RequestError(ValueError):
    """A request the service cannot serve, with a message for the client (HTTP 400)."""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# --- tasks ------------------------------------------------------------------------------

class TaskIndex:
    """Tasks addressed by file stem, by parent/stem (when stems collide), or by hash (or a
    unique hash prefix of at least 12 characters)."""

    def __init__(self, tasks: Iterable[Task] = ()):
        self.by_hash: dict[str, Task] = {}
        self.by_name: dict[str, Task | None] = {}  # None: ambiguous stem
        for t in tasks:
            self.add(t)

    def add(self, task: Task) -> None:
        self.by_hash[task.hash] = task
        long_name = f"{task.path.parent.name}/{task.name}" if task.path.parent.name else task.name
        self.by_name.setdefault(long_name, task)
        if task.name not in self.by_name:
            self.by_name[task.name] = task
        elif (prev := self.by_name[task.name]) is None or prev.hash != task.hash:
            self.by_name[task.name] = None  # two different tasks share the stem: ambiguous

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> "TaskIndex":
        """Files are loaded as given (an invalid one is an error); folders are searched
        recursively for *.py, skipping files that are not KernelBench-format tasks."""
        idx = cls()
        for raw in paths:
            p = Path(raw)
            if p.is_dir():
                for f in sorted(p.rglob("*.py")):
                    if f.name.startswith("_"):
                        continue
                    try:
                        idx.add(Task.load(f))
                    except TaskError as exc:
                        log.warning("skipping %s: %s", f, exc)
            elif p.exists():
                idx.add(Task.load(p))
            else:
                raise TaskError(f"no such task file or folder: {p}")
        return idx

    def __len__(self) -> int:
        return len(self.by_hash)

    def names(self) -> list[str]:
        return sorted(n for n, t in self.by_name.items() if t is not None and "/" not in n)

    def resolve(self, ref: Any) -> Task:
        if not isinstance(ref, str) or not ref:
            raise RequestError("each item needs \"task\": a task name or hash (a string)")
        ref = ref.strip()
        if ref.endswith(".py"):
            ref = ref[:-3]
        if ref in self.by_hash:
            return self.by_hash[ref]
        if ref in self.by_name:
            t = self.by_name[ref]
            if t is None:
                opts = sorted(n for n, x in self.by_name.items() if "/" in n and n.endswith("/" + ref))
                raise RequestError(f"task name {ref!r} is ambiguous; use one of: {', '.join(opts)} or a hash")
            return t
        if len(ref) >= 12:
            hits = [t for h, t in self.by_hash.items() if h.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
        known = self.names()
        shown = ", ".join(known[:50]) + (f", ... ({len(known)} in all)" if len(known) > 50 else "")
        raise RequestError(f"unknown task {ref!r}; known tasks: {shown or '(none)'}")


# --- results -> response items ----------------------------------------------------------

def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def summarize(result: dict | None, *, format_error: str | None = None, error: str | None = None) -> dict:
    """The per-item fields of a score response (without reward / cached / code_hash)."""
    if result is None:
        return {"compiled": False, "correct": False, "speedup": None, "speedup_ci": None, "noise": None,
                "verdict": "error" if error else "none", "error_class": "sandbox" if error else "format",
                "message": error or format_error or ""}
    mean, sd = _get(result, "timing", "candidate", "mean_ms"), _get(result, "timing", "candidate", "stdev_ms")
    noise = sd / mean if isinstance(mean, (int, float)) and isinstance(sd, (int, float)) and mean else None
    speedup = _get(result, "timing", "speedup_eager")
    ci = _get(result, "timing", "speedup_eager_ci")
    return {"compiled": bool(_get(result, "compile", "ok")), "correct": result.get("verdict") == "correct",
            "speedup": speedup if isinstance(speedup, (int, float)) and math.isfinite(speedup) else None,
            "speedup_ci": list(ci) if ci else None, "noise": noise,
            "verdict": result.get("verdict"), "error_class": result.get("error", "none"),
            "message": result.get("message", "")}


# --- work items and jobs ----------------------------------------------------------------

@dataclass
class _Work:
    key: tuple[str, str]
    task: Task
    code: str
    future: Future  # resolves to ("ok", result dict) or ("error", message)


@dataclass
class Item:
    """One scored item of a request: the raw completion, and where its result comes from."""

    completion: str
    task: Task
    code: str | None
    format_error: str = ""
    future: Future | None = None
    cached: bool = False


@dataclass
class Job:
    id: str
    items: list[Item]
    reward: str
    reward_kwargs: dict
    created: float = field(default_factory=time.time)
    finished: float | None = None
    results: list[dict] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self) -> str:
        if self.error:
            return "failed"
        futs = [it.future for it in self.items if it.future is not None]
        if self.results is not None or all(f.done() for f in futs):
            return "done"
        return "running" if any(f.running() or f.done() for f in futs) else "queued"


# --- the service --------------------------------------------------------------------------

class ScoreService:
    """Scores completions: extract, dedupe, queue on the least-loaded GPU, evaluate, reward."""

    def __init__(self, tasks: TaskIndex, evaluator_factory: EvaluatorFactory, gpus: list[int] | None = None,
                 reward: str = "log_speedup", store=None, batch_size: int = 16, max_jobs: int = 10_000,
                 max_cache: int = 200_000):
        import rewards

        self.tasks = tasks
        self.gpus = list(gpus) if gpus else [0]
        self.default_reward = reward
        self.reward_names = rewards.names()
        if reward not in self.reward_names:
            raise ValueError(f"unknown reward {reward!r}; known: {', '.join(self.reward_names)}")
        self.store = store
        self.batch_size = max(1, batch_size)
        self.max_jobs = max_jobs
        self.max_cache = max_cache
        self.cache: OrderedDict[tuple[str, str], dict] = OrderedDict()  # oldest first, trimmed to max_cache
        self.inflight: dict[tuple[str, str], Future] = {}
        self.jobs: dict[str, Job] = {}
        self.evaluations = 0  # candidates sent to an evaluator
        self._lock = threading.Lock()
        self._queues = {g: queue.Queue() for g in self.gpus}
        self._load = {g: 0 for g in self.gpus}  # queued + being evaluated
        self._busy = {g: 0 for g in self.gpus}
        self._stop = threading.Event()
        self._factory = evaluator_factory
        self._workers: dict[int, threading.Thread] = {}
        self._evaluators: dict[int, Any] = {}
        self._rr = 0

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "ScoreService":
        for g in self.gpus:
            t = threading.Thread(target=self._worker, args=(g,), name=f"ks-serve-gpu{g}", daemon=True)
            self._workers[g] = t
            t.start()
        return self

    def close(self) -> None:
        self._stop.set()
        for g in self.gpus:
            self._queues[g].put(None)
        for t in self._workers.values():
            t.join(timeout=5)
        for ev in self._evaluators.values():
            if hasattr(ev, "close"):
                try:
                    ev.close()
                except Exception:  # noqa: BLE001 - closing must not mask shutdown
                    log.exception("closing an evaluator failed")

    # -- submission --------------------------------------------------------------------
    def parse_items(self, raw_items: Any, max_items: int) -> list[Item]:
        if not isinstance(raw_items, list) or not raw_items:
            raise RequestError("\"items\" must be a non-empty list of {\"task\": ..., \"completion\": ...}")
        if len(raw_items) > max_items:
            raise RequestError(f"{len(raw_items)} items in one request; the limit is {max_items} "
                               "(split the batch, or start the server with a larger --max-items)")
        items = []
        for i, raw in enumerate(raw_items):
            if not isinstance(raw, dict):
                raise RequestError(f"item {i} is not an object")
            task = self.tasks.resolve(raw.get("task"))
            if "code" in raw and raw["code"] is not None:
                if not isinstance(raw["code"], str):
                    raise RequestError(f"item {i}: \"code\" must be a string")
                code, err = (raw["code"], "") if raw["code"].strip() else (None, "the code was empty")
                items.append(Item(raw["code"], task, code, err))
                continue
            text = raw.get("completion")
            if isinstance(text, list):  # chat messages: the assistant's last message
                text = completion_text(text)
            if text is not None and not isinstance(text, str):
                raise RequestError(f"item {i}: \"completion\" must be a string or a list of chat messages")
            code, err = extract_code(text)
            items.append(Item(text or "", task, code, err))
        return items

    def submit(self, items: list[Item], reward: str | None = None, reward_kwargs: dict | None = None) -> Job:
        reward = reward or self.default_reward
        if reward not in self.reward_names:
            raise RequestError(f"unknown reward {reward!r}; known rewards: {', '.join(self.reward_names)}")
        if reward_kwargs is not None and not isinstance(reward_kwargs, dict):
            raise RequestError("\"reward_kwargs\" must be an object")
        for it in items:
            if it.code is not None:
                it.future, it.cached = self._future_for(it.task, it.code)
        job = Job(uuid.uuid4().hex, items, reward, dict(reward_kwargs or {}))
        with self._lock:
            self.jobs[job.id] = job
            if len(self.jobs) > self.max_jobs:
                for jid in list(self.jobs)[: len(self.jobs) - self.max_jobs]:
                    if self.jobs[jid].status() in ("done", "failed"):
                        del self.jobs[jid]
        return job

    def _future_for(self, task: Task, code: str) -> tuple[Future, bool]:
        key = (task.hash, code_hash(code))
        with self._lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return _done(("ok", self.cache[key])), True
            if key in self.inflight:
                return self.inflight[key], True
        stored = self._store_get(key)
        with self._lock:
            if stored is not None:
                self._remember(key, self.cache.get(key, stored))
                return _done(("ok", self.cache[key])), True
            if key in self.cache:
                return _done(("ok", self.cache[key])), True
            if key in self.inflight:
                return self.inflight[key], True
            fut: Future = Future()
            self.inflight[key] = fut
            g = self._pick_gpu()
            self._load[g] += 1
        self._queues[g].put(_Work(key, task, code, fut))
        return fut, False

    def _remember(self, key, result: dict) -> None:  # under self._lock
        self.cache[key] = result
        self.cache.move_to_end(key)
        while len(self.cache) > self.max_cache:
            self.cache.popitem(last=False)

    def _pick_gpu(self) -> int:  # under self._lock
        low = min(self._load.values())
        ties = [g for g in self.gpus if self._load[g] == low]
        self._rr += 1
        return ties[self._rr % len(ties)]

    # -- workers -------------------------------------------------------------------------
    def _evaluator(self, gpu: int):
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
                    q.put(None)
                    break
                batch.append(nxt)
            self._run_batch(gpu, batch)

    def _run_batch(self, gpu: int, batch: list[_Work]) -> None:
        for w in batch:
            w.future.set_running_or_notify_cancel()
        with self._lock:
            self._busy[gpu] += len(batch)
            self.evaluations += len(batch)
        settled: set[int] = set()

        def finish(i: int, payload: tuple) -> None:
            if i in settled:
                return
            settled.add(i)
            w = batch[i]
            with self._lock:
                if payload[0] == "ok":
                    self._remember(w.key, payload[1])
                self.inflight.pop(w.key, None)
                self._load[gpu] -= 1
                self._busy[gpu] -= 1
            if payload[0] == "ok":
                self._store_put(w.key, payload[1])
            w.future.set_result(payload)

        def on_result(i: int, res) -> None:
            finish(i, ("ok", _as_dict(res)))

        try:
            ev = self._evaluator(gpu)
            out = ev.evaluate_many([(w.task, w.code) for w in batch], on_result)
            for i, res in enumerate(out or []):
                if i < len(batch):
                    finish(i, ("ok", _as_dict(res)))
            missing = "the evaluator returned no result for this candidate"
        except Exception as exc:  # noqa: BLE001 - reported per item, never kills the worker
            log.exception("evaluation on GPU %s failed", gpu)
            missing = f"the evaluator failed on GPU {gpu}: {type(exc).__name__}: {str(exc)[:500]}"
        for i in range(len(batch)):
            finish(i, ("error", missing))

    # -- results ---------------------------------------------------------------------------
    def wait(self, job: Job, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for it in job.items:
            if it.future is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    it.future.result(timeout=left)
                except Exception:  # noqa: BLE001 - timeouts: the caller checks status
                    return False
        return True

    def results(self, job: Job) -> list[dict] | None:
        """The scored items once every evaluation is done (None before)."""
        with job.lock:
            if job.results is not None or job.error:
                return job.results
            if not all(it.future is None or it.future.done() for it in job.items):
                return None
            try:
                job.results = self._score(job)
            except Exception as exc:  # noqa: BLE001 - a reward that raises fails the job, not the server
                log.exception("reward %s failed", job.reward)
                job.error = f"reward {job.reward!r} failed: {type(exc).__name__}: {exc}"
            job.finished = time.time()
            return job.results

    def _score(self, job: Job) -> list[dict]:
        import rewards

        payloads = [it.future.result() if it.future is not None else None for it in job.items]
        results = [p[1] if p is not None and p[0] == "ok" else None for p in payloads]
        fn = rewards.get(job.reward)
        values = fn([it.completion for it in job.items], results, **job.reward_kwargs)
        out = []
        for it, p, r, v in zip(job.items, payloads, results, values):
            err = p[1] if p is not None and p[0] == "error" else None
            row = summarize(r, format_error=it.format_error, error=err)
            v = None if err or v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
            row.update(reward=v, code_hash=code_hash(it.code) if it.code is not None else None,
                       cached=it.cached or bool(r and r.get("cached")), task=it.task.name,
                       task_hash=it.task.hash)
            out.append(row)
        return out

    def job_view(self, job: Job) -> dict:
        res = self.results(job)
        status = job.status()
        view = {"job_id": job.id, "status": status, "reward_name": job.reward, "items": len(job.items),
                "done": sum(1 for it in job.items if it.future is None or it.future.done())}
        if job.error:
            view["error"] = job.error
        if res is not None:
            view["results"] = res
        return view

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def queue_info(self) -> dict:
        with self._lock:
            per_gpu = {str(g): {"queued": self._load[g] - self._busy[g], "running": self._busy[g]}
                       for g in self.gpus}
            jobs = list(self.jobs.values())
            cache_size, inflight, evaluations = len(self.cache), len(self.inflight), self.evaluations
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for j in jobs:
            counts[j.status()] += 1
        return {"gpus": per_gpu, "jobs": counts, "cache_size": cache_size, "in_flight": inflight,
                "evaluations": evaluations, "workers_alive": sum(t.is_alive() for t in self._workers.values())}

    # -- persistent store -------------------------------------------------------------------
    def _store_get(self, key):
        if self.store is None:
            return None
        try:
            return self.store.get(*key)
        except Exception:  # noqa: BLE001 - a broken store degrades to memory caching
            log.exception("reading the result store failed")
            return None

    def _store_put(self, key, result: dict) -> None:
        if self.store is None:
            return
        try:
            self.store.put(*key, result)
        except Exception:  # noqa: BLE001
            log.exception("writing the result store failed")


def completion_text(c: Any) -> str | None:
    """A completion as text: a string, or the content of the last assistant message of a chat."""
    if c is None or isinstance(c, str):
        return c
    if isinstance(c, dict):
        return c.get("content") if isinstance(c.get("content"), str) else None
    if isinstance(c, (list, tuple)):
        msgs = [m for m in c if isinstance(m, dict)]
        asst = [m for m in msgs if m.get("role") == "assistant"] or msgs
        if asst:
            content = asst[-1].get("content")
            if isinstance(content, list):  # content parts [{"type": "text", "text": ...}]
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else None
    return None


def _done(value) -> Future:
    f: Future = Future()
    f.set_running_or_notify_cancel()
    f.set_result(value)
    return f


def _as_dict(res) -> dict:
    if isinstance(res, dict):
        return res
    d = res.to_dict()
    return d
