"""The tasks a reward server knows, and how a request names one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from kernelsmith.serve.errors import RequestError
from kernelsmith.task import Task, TaskError

log = logging.getLogger(__name__)


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
