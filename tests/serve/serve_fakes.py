"""Helpers for the serve tests: a loopback server over fake evaluators (tests/search's
FakeEvaluator, results by the kernel's tag), and a tiny JSON HTTP client."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))

from search_fakes import TASK_SRC, FakeEvaluator, correct, kernel, reply  # noqa: E402,F401

TOKEN = "test-token-0123456789abcdef"
GELU_SRC = TASK_SRC.replace("torch.relu(x)", "torch.nn.functional.gelu(x)")


class GuardedEvaluator(FakeEvaluator):
    """A FakeEvaluator for one GPU that fails the test if it is ever entered twice at once."""

    def __init__(self, gpu: int, log: list, violations: list, **kw):
        super().__init__(**kw)
        self.gpu, self.log, self.violations = gpu, log, violations
        self._inside = threading.Lock()

    def evaluate_many(self, items, on_result=None):
        if not self._inside.acquire(blocking=False):
            self.violations.append(self.gpu)
            raise AssertionError(f"GPU {self.gpu} entered concurrently")
        try:
            items = list(items)
            self.log.append((self.gpu, len(items)))
            return super().evaluate_many(items, on_result)
        finally:
            self._inside.release()


class Fakes:
    """One evaluator per GPU, made lazily by the service through `factory`."""

    def __init__(self, table=None, delay=0.0, raise_at=None):
        self.table, self.delay, self.raise_at = table or {}, delay, raise_at
        self.by_gpu: dict[int, GuardedEvaluator] = {}
        self.log: list = []
        self.violations: list = []

    def factory(self, gpu: int):
        ev = GuardedEvaluator(gpu, self.log, self.violations, table=self.table, delay=self.delay,
                              raise_at=self.raise_at)
        self.by_gpu[gpu] = ev
        return ev

    @property
    def seen(self) -> list[str]:
        return [t for ev in self.by_gpu.values() for t in ev.seen]


def write_tasks(root: Path) -> Path:
    d = root / "tasks"
    d.mkdir(parents=True)
    (d / "relu.py").write_text(TASK_SRC)
    (d / "gelu.py").write_text(GELU_SRC)
    (d / "notes.py").write_text("x = 1\n")  # not a task: skipped in a folder
    return d


def request(url: str, method: str, path: str, body=None, token: str | None = TOKEN, raw: bytes | None = None,
            headers: dict | None = None, timeout: float = 20.0):
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, (json.loads(text) if text else None)
    finally:
        conn.close()


def poll(url: str, job_id: str, timeout: float = 10.0) -> list[dict]:
    """Every view of the job until it is done."""
    views = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, view = request(url, "GET", f"/v1/jobs/{job_id}")
        assert status == 200, view
        views.append(view)
        if view["status"] in ("done", "failed"):
            return views
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} not done after {timeout}s: {views[-1]}")
