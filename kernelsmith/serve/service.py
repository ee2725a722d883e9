"""The reward service without HTTP: it ties together the known tasks (task_index), the
result cache with in-flight de-duplication (result_cache), one queue, worker thread and
evaluator per GPU (gpu_workers) and asynchronous jobs (jobs).

Nothing here raises on a bad candidate: a completion without usable code scores as a format
error, an evaluator that breaks gives an "error" item whose reward is None (an infrastructure
failure must not be learned from) and that is not cached.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from kernelsmith.serve.errors import RequestError
from kernelsmith.serve.gpu_workers import EvaluatorFactory, GpuWorkers, Work
from kernelsmith.serve.jobs import Job, summarize
from kernelsmith.serve.request_items import Item, code_hash, completion_text, parse_items
from kernelsmith.serve.result_cache import ResultCache
from kernelsmith.serve.task_index import TaskIndex
from kernelsmith.task import Task

# Names that callers import from this module, from before it was split.
__all__ = ["EvaluatorFactory", "Item", "Job", "RequestError", "ScoreService", "TaskIndex", "code_hash",
           "completion_text", "summarize"]


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
        self.jobs: dict[str, Job] = {}
        self._jobs_lock = threading.Lock()
        self.result_cache = ResultCache(store, max_cache)
        self.workers = GpuWorkers(self.gpus, evaluator_factory, self.batch_size,
                                  on_settled=self.result_cache.settle)

    # Views of the parts' state, under the names the service had before it was split.
    @property
    def cache(self) -> OrderedDict[tuple[str, str], dict]:
        return self.result_cache.memory

    @property
    def inflight(self) -> dict[tuple[str, str], Future]:
        return self.result_cache.inflight

    @property
    def evaluations(self) -> int:
        """Candidates sent to an evaluator so far."""
        return self.workers.evaluations

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "ScoreService":
        self.workers.start()
        return self

    def close(self) -> None:
        self.workers.close()

    # -- submission --------------------------------------------------------------------
    def parse_items(self, raw_items: Any, max_items: int) -> list[Item]:
        return parse_items(self.tasks, raw_items, max_items)

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
        with self._jobs_lock:
            self.jobs[job.id] = job
            if len(self.jobs) > self.max_jobs:
                # Forget the oldest finished jobs; unfinished ones stay until they are done.
                for jid in list(self.jobs)[: len(self.jobs) - self.max_jobs]:
                    if self.jobs[jid].status() in ("done", "failed"):
                        del self.jobs[jid]
        return job

    def _future_for(self, task: Task, code: str) -> tuple[Future, bool]:
        """The future of this candidate's result, and whether it was cached or already in
        flight (then it is not evaluated again)."""
        key = (task.hash, code_hash(code))
        fut, known = self.result_cache.claim(key)
        if not known:
            self.workers.enqueue(Work(key, task, code, fut))
        return fut, known

    # -- results ---------------------------------------------------------------------------
    def wait(self, job: Job, timeout: float | None = None) -> bool:
        return job.wait(timeout)

    def results(self, job: Job) -> list[dict] | None:
        """The scored items once every evaluation is done (None before)."""
        return job.scored()

    def job_view(self, job: Job) -> dict:
        return job.view()

    def get_job(self, job_id: str) -> Job | None:
        with self._jobs_lock:
            return self.jobs.get(job_id)

    def queue_info(self) -> dict:
        per_gpu, evaluations = self.workers.depth()
        cache_size, inflight = self.result_cache.sizes()
        with self._jobs_lock:
            jobs = list(self.jobs.values())
        counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for j in jobs:
            counts[j.status()] += 1
        return {"gpus": per_gpu, "jobs": counts, "cache_size": cache_size, "in_flight": inflight,
                "evaluations": evaluations, "workers_alive": self.workers.alive()}
