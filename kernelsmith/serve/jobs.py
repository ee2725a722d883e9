"""Jobs: the items of one score request, and their rewards once every evaluation is done.

An item whose evaluation failed ("error") gets reward None whatever the reward function
says: an infrastructure failure must not be learned from.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kernelsmith.serve.request_items import Item, code_hash

log = logging.getLogger(__name__)


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

    def wait(self, timeout: float | None = None) -> bool:
        """Whether every evaluation finished within `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for it in self.items:
            if it.future is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    it.future.result(timeout=left)
                except Exception:  # noqa: BLE001 - timeouts: the caller checks status
                    return False
        return True

    def scored(self) -> list[dict] | None:
        """The scored items once every evaluation is done (None before). Scored once: the
        reward function runs on the first call after the last evaluation."""
        with self.lock:
            if self.results is not None or self.error:
                return self.results
            if not all(it.future is None or it.future.done() for it in self.items):
                return None
            try:
                self.results = score(self)
            except Exception as exc:  # noqa: BLE001 - a reward that raises fails the job, not the server
                log.exception("reward %s failed", self.reward)
                self.error = f"reward {self.reward!r} failed: {type(exc).__name__}: {exc}"
            self.finished = time.time()
            return self.results

    def view(self) -> dict:
        """The job as the HTTP API shows it."""
        res = self.scored()
        status = self.status()
        view = {"job_id": self.id, "status": status, "reward_name": self.reward, "items": len(self.items),
                "done": sum(1 for it in self.items if it.future is None or it.future.done())}
        if self.error:
            view["error"] = self.error
        if res is not None:
            view["results"] = res
        return view


def score(job: Job) -> list[dict]:
    """Response rows for a job whose evaluations are all done: the job's reward function
    over every item, merged with each item's summary."""
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
