"""The live view of a search: best verified speedup, verdicts, tokens, cost, time."""

from __future__ import annotations

import threading
import time

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


def dry_label(verdict: str, dry_run: bool) -> str:
    """In a dry run nothing runs, so `runtime_error` can only mean: screened, compiled, not run."""
    return "compiled, not run" if dry_run and verdict == "runtime_error" else verdict


class LiveView:
    """A rich Live display as a context manager; subclasses define render()."""

    def _start_live(self, console) -> None:
        self._lock = threading.Lock()
        self.live = Live(self.render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)

    def render(self):  # pragma: no cover - overridden
        raise NotImplementedError


class SearchView(LiveView):
    """An `on_event` callback for run_search that keeps a rich Live display current."""

    def __init__(self, run_id: str, model: str, strategy: str, console, spend, replay: bool = False,
                 dry_run: bool = False):
        self.run_id, self.model, self.strategy, self.replay = run_id, model, strategy, replay
        self.dry_run = dry_run  # nothing is run: a built candidate shows as "compiled, not run"
        self.spend = spend  # () -> (tokens, cost_usd, calls)
        self.t0 = time.monotonic()
        self.verdicts: dict[str, int] = {}
        self.best: float | None = None
        self.best_id = ""
        self.tokens = 0
        self.cost = 0.0
        self.calls = 0
        self.recent: list[str] = []
        self.stop = ""
        self._start_live(console)

    def __call__(self, kind: str, info: dict) -> None:
        with self._lock:
            self.tokens, self.cost, self.calls = self.spend()
            if kind == "candidate":
                v = dry_label(info.get("verdict", "?"), self.dry_run)
                self.verdicts[v] = self.verdicts.get(v, 0) + 1
                sp = info.get("speedup") if v == "correct" else None
                self.recent = (self.recent + [f"{info.get('id', '?')} {v} {f'{sp:.3f}x' if sp else ''}"])[-6:]
            if kind == "best":
                self.best, self.best_id = info.get("speedup"), info.get("id", "")
            if kind == "stop":
                self.stop = str(info.get("reason", ""))
        self.live.update(self.render())

    def render(self):
        s = int(time.monotonic() - self.t0)
        head = Text.assemble(("kernelsmith optimize ", "bold"), (self.run_id, "cyan"), f"  {self.model}",
                             (" [REPLAY]" if self.replay else "", "yellow"), (" [DRY-RUN]" if self.dry_run else "", "yellow"),
                             f"  strategy {self.strategy}")
        t = Table(show_header=False, box=None)
        if self.dry_run:
            t.add_row("best verified speedup", "none (dry run: screened and compiled, nothing timed)")
        else:
            t.add_row("best verified speedup",
                      f"[bold green]{self.best:.3f}x[/] ({self.best_id})" if self.best else "none yet")
        t.add_row("candidates", ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())) or "0")
        t.add_row("tokens / cost", f"{self.tokens:,} / ${self.cost:.4f} in {self.calls} calls")
        t.add_row("elapsed", f"{s // 60}:{s % 60:02d}")
        if self.stop:
            t.add_row("stopped", self.stop)
        return Group(head, t, Text("\n".join(self.recent), style="dim"))
