"""The leaderboard table's columns and number formats: one source for the Markdown, HTML
and terminal renderings (export, html, terminal)."""

from __future__ import annotations

import math
from typing import Any

from kernelsmith.leaderboard.build import RunEntry

HEADER = ("Ranked within reference sets (identical task-hash sets) by fast_1, then geomean (all, fail=1x). "
          "fast_p = fraction of ALL attempted tasks with a correct kernel and speedup over eager > p (fast_0 = "
          "correct rate). geomean 'correct' = over tasks with a correct kernel; 'all' = over all tasks, failures "
          "as 1.0x. Speedup per dollar = wins/$: tasks with a correct kernel faster than eager (speedup > 1) per "
          "USD of LLM cost (n/a when free).")


def fnum(x: float | None, digits: int = 2, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if pct:
        return f"{100 * x:.1f}%"
    return f"{x:.{digits}f}"


def fx(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}x"


# (title, getter, formatter, sort type) of each leaderboard column: one source for md and html
def columns() -> list[tuple[str, str, Any, Any]]:
    s = lambda attr: (lambda r: getattr(r.summary, attr))  # noqa: E731
    f = lambda key: (lambda r: r.summary.fast[key])  # noqa: E731
    return [
        ("rank", "rank", lambda r: r.rank, str),
        ("run", "run", lambda r: r.run_id, str),
        ("model", "model", lambda r: r.model, str),
        ("strategy", "strategy", lambda r: r.strategy, str),
        ("GPU", "gpu", lambda r: r.gpu, str),
        ("label", "label", lambda r: (r.label + (" [replay]" if r.replayed else "")).strip(), str),
        ("tasks", "tasks", lambda r: r.tasks, str),
        ("fast_0 (correct)", "fast_0", f("fast_0"), lambda x: fnum(x, pct=True)),
        ("fast_1", "fast_1", f("fast_1"), lambda x: fnum(x, pct=True)),
        ("fast_1.5", "fast_1.5", f("fast_1.5"), lambda x: fnum(x, pct=True)),
        ("fast_2", "fast_2", f("fast_2"), lambda x: fnum(x, pct=True)),
        ("geomean vs eager (correct)", "speedup", s("geomean_eager_correct"), fx),
        ("geomean vs eager (all, fail=1x)", "speedup_all", s("geomean_eager_all"), fx),
        ("geomean vs compile (correct)", "compile", s("geomean_compile_correct"), fx),
        ("geomean vs compile (all, fail=1x)", "compile_all", s("geomean_compile_all"), fx),
        ("tokens/task", "tokens", lambda r: r.tokens_per_task, lambda x: fnum(x, 0)),
        ("$/task", "cost", lambda r: r.cost_per_task, lambda x: fnum(x, 4)),
        ("GPU s/task", "gpu_s", lambda r: r.gpu_seconds_per_task, lambda x: fnum(x, 1)),
        ("wins/$", "wins_per_usd", lambda r: r.wins_per_usd, lambda x: fnum(x, 2)),
    ]


def cell(fmt: Any, value: Any) -> str:
    return str(value) if fmt is str else fmt(value)


def row_values(r: RunEntry) -> list[tuple[str, str, Any]]:
    """(key, text, sort value) of each column of a run's row (for the HTML table)."""
    vals = []
    for _, key, get, fmt in columns():
        v = get(r)
        vals.append((key, cell(fmt, v), v))
    return vals
