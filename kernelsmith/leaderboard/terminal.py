"""The leaderboard on a terminal: one compact rich table per reference set (the columns
that fit a screen; every column is in --format md/csv/json/html)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from kernelsmith.leaderboard.build import Leaderboard
from kernelsmith.leaderboard.table import fnum, fx

# (header, value of a RunEntry), in screen order
_COLUMNS = [
    ("#", lambda r: str(r.rank)),
    ("run", lambda r: r.run_id),
    ("model", lambda r: r.model + (" [replay]" if r.replayed else "")),
    ("strategy", lambda r: r.strategy),
    ("GPU", lambda r: r.gpu or "-"),
    ("tasks", lambda r: str(r.tasks)),
    ("correct", lambda r: fnum(r.summary.fast["fast_0"], pct=True)),
    ("fast_1", lambda r: fnum(r.summary.fast["fast_1"], pct=True)),
    ("fast_2", lambda r: fnum(r.summary.fast["fast_2"], pct=True)),
    ("geomean\nvs eager", lambda r: fx(r.summary.geomean_eager_correct)),
    ("geomean all\n(fail=1x)", lambda r: fx(r.summary.geomean_eager_all)),
    ("$/task", lambda r: fnum(r.cost_per_task, 4)),
]


def render_table(lb: Leaderboard):
    """A rich renderable: a title line, a table per reference set, then the notes."""
    parts: list = [Text(f"kernelsmith leaderboard ({lb.db})", style="bold")]
    if not lb.groups:
        parts.append(Text("No runs with tasks found."))
    for g in lb.groups:
        t = Table(title=g.title, title_justify="left", header_style="bold")
        for i, (head, _) in enumerate(_COLUMNS):
            t.add_column(head, justify="right" if i >= 5 or i == 0 else "left", overflow="fold")
        for r in g.runs:
            t.add_row(*(get(r) for _, get in _COLUMNS))
        parts.append(t)
    for n in lb.notes:
        parts.append(Text(f"note: {n}", style="dim"))
    parts.append(Text("fast_p: share of tasks whose best kernel is correct and > p times faster than eager; "
                      "more columns: --format md | csv | json | html", style="dim"))
    return Group(*parts)


def print_table(lb: Leaderboard, console: Console | None = None) -> None:
    (console or Console()).print(render_table(lb))
