"""What bench and generations runs share: the progress-event callback type, the per-level
summary KernelBench reports (correct rate, fast_1, geometric mean speedup over eager), and
the run's notes, where each failed task or skipped row is recorded with its reason.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from kernelsmith.store.runs import RunStore

Event = Callable[[str, dict], None]  # on_event(kind, info): progress for the CLI


@dataclass
class LevelSummary:
    level: int | None  # None: the "all" row
    count: int
    correct: int
    fast_1: int  # correct and faster than eager
    geomean_speedup: float | None  # over the correct ones

    @property
    def correct_rate(self) -> float:
        return self.correct / self.count if self.count else 0.0

    @property
    def fast_1_rate(self) -> float:
        return self.fast_1 / self.count if self.count else 0.0


def summarize(entries: Iterable[tuple[int | None, bool, float | None]]) -> list[LevelSummary]:
    """entries: (level, correct, speedup over eager). One row per level, then an "all" row."""
    by: dict[int | None, list[tuple[bool, float | None]]] = {}
    for level, ok, sp in entries:
        by.setdefault(level, []).append((ok, sp))

    def row(level, items) -> LevelSummary:
        good = [sp for ok, sp in items if ok and sp and sp > 0]
        geo = math.exp(sum(math.log(s) for s in good) / len(good)) if good else None
        return LevelSummary(level, len(items), sum(1 for ok, _ in items if ok),
                            sum(1 for ok, sp in items if ok and sp is not None and sp > 1.0), geo)

    out = [row(lv, by[lv]) for lv in sorted(by, key=lambda x: (x is None, x or 0))]
    if len(out) > 1:
        out.append(row(None, [e for items in by.values() for e in items]))
    return out


def summary_table(rows: list[LevelSummary], title: str = ""):
    from rich.table import Table

    t = Table("level", "tasks", "correct", "fast_1", "geomean speedup (correct)", title=title or None)
    for r in rows:
        t.add_row("all" if r.level is None else str(r.level), str(r.count),
                  f"{r.correct} ({r.correct_rate:.0%})", f"{r.fast_1} ({r.fast_1_rate:.0%})",
                  f"{r.geomean_speedup:.3f}x" if r.geomean_speedup else "-")
    return t


class RunNotes:
    """The run's notes in runs.db, one line per failure; tasks finish on several threads, so
    appends are locked, and every append is stored at once so an interrupted run keeps them."""

    def __init__(self, store: RunStore, run_id: str, initial: str = ""):
        self.store, self.run_id = store, run_id
        self.lines = [ln for ln in (initial or "").splitlines() if ln.strip()]
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line[:1000])
            self.store.set_run_status(self.run_id, "running", notes="\n".join(self.lines))
