"""Leaderboard exports: Markdown, CSV, JSON (and HTML, in ``html``)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from kernelsmith.leaderboard import lang_table
from kernelsmith.leaderboard.build import Leaderboard, RunEntry
from kernelsmith.leaderboard.metrics import Summary

FORMATS = ("md", "csv", "json", "html")

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


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render_md(lb: Leaderboard) -> str:
    cols = columns()
    out = ["# kernelsmith leaderboard", "", f"_Generated {lb.generated_at} from {lb.db}._", "", HEADER, ""]
    if not lb.groups:
        out += ["No runs with tasks found.", ""]
    for g in lb.groups:
        out += [f"## {g.title}", ""]
        out.append("| " + " | ".join(c[0] for c in cols) + " |")
        out.append("|" + "|".join("---" for _ in cols) + "|")
        for r in g.runs:
            out.append("| " + " | ".join(_md_escape(cell(fmt, get(r))) for _, _, get, fmt in cols) + " |")
        out += ["", "Per level:", "", "| run | level | tasks | fast_0 | fast_1 | fast_1.5 | fast_2 | "
                "geomean vs eager (correct) | geomean vs eager (all, fail=1x) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in g.runs:
            for lvl, sm in r.levels.items():
                out.append(f"| {r.run_id} | {lvl} | {sm.tasks} | " + " | ".join(
                    fnum(sm.fast[k], pct=True) for k in ("fast_0", "fast_1", "fast_1.5", "fast_2"))
                    + f" | {fx(sm.geomean_eager_correct)} | {fx(sm.geomean_eager_all)} |")
        out += ["", f"Tasks of reference set {g.name}:", ""]
        out += [f"- `{t['hash'][:12]}` {t['name']}" + (f" (level {t['level']})" if t["level"] is not None else "")
                for t in g.tasks]
        out.append("")
    if lang_table.any_samples(lb):
        out += lang_table.render_md(lb)
    if lb.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in lb.notes] + [""]
    return "\n".join(out)


CSV_FIELDS = ["reference_set", "set_id", "set_tasks", "rank", "run_id", "kind", "status", "model", "strategy", "gpu",
              "label", "replayed", "scope", "tasks", "correct", "fast_0", "fast_1", "fast_1.5", "fast_2",
              "geomean_eager_correct", "geomean_eager_all", "geomean_compile_correct", "geomean_compile_all",
              "llm_calls", "tokens", "cost_usd", "gpu_seconds", "tokens_per_task", "cost_per_task_usd",
              "gpu_seconds_per_task", "wins", "wins_per_usd"]


def _summary_cells(sm: Summary) -> dict[str, Any]:
    d = sm.to_dict()
    return {k: ("" if d.get(k) is None else d[k]) for k in d}


def render_csv(lb: Leaderboard) -> str:
    """One row per run with scope "all", then one per run and level ("level1", ..., "level_none");
    run-level cost columns are repeated only on the "all" row."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for g in lb.groups:
        for r in g.runs:
            base = {"reference_set": g.name, "set_id": g.set_id, "set_tasks": len(g.tasks), "rank": r.rank,
                    "run_id": r.run_id, "kind": r.kind, "status": r.status, "model": r.model, "strategy": r.strategy,
                    "gpu": r.gpu, "label": r.label, "replayed": int(r.replayed)}
            row = dict(base, scope="all", **_summary_cells(r.summary), llm_calls=r.llm_calls, tokens=r.tokens,
                       cost_usd=r.cost_usd, gpu_seconds=r.gpu_seconds,
                       tokens_per_task=_blank(r.tokens_per_task), cost_per_task_usd=_blank(r.cost_per_task),
                       gpu_seconds_per_task=_blank(r.gpu_seconds_per_task), wins=r.wins,
                       wins_per_usd=_blank(r.wins_per_usd))
            w.writerow(row)
            for lvl, sm in r.levels.items():
                w.writerow(dict(base, scope=f"level{lvl}" if lvl != "none" else "level_none", **_summary_cells(sm)))
    return buf.getvalue()


def _blank(x: Any) -> Any:
    return "" if x is None else x


def render_json(lb: Leaderboard) -> str:
    return json.dumps(lb.to_dict(), indent=2, sort_keys=False)


def render(lb: Leaderboard, fmt: str) -> str:
    if fmt == "md":
        return render_md(lb)
    if fmt == "csv":
        return render_csv(lb)
    if fmt == "json":
        return render_json(lb)
    if fmt == "html":
        from kernelsmith.leaderboard.html import render_html

        return render_html(lb)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def write(lb: Leaderboard, fmt: str, out: str | Path, pngs: bool = True) -> list[Path]:
    """Write the export to ``out`` and (``pngs``) the two PNG plots next to it
    (``<out stem>_fastp.png``, ``<out stem>_speedups.png``); a CSV export also writes the
    language x task table as ``<out stem>_languages.csv``. Returns the paths written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(lb, fmt), encoding="utf-8")
    written = [out]
    if fmt == "csv":
        langs = out.with_name(out.stem + "_languages.csv")
        langs.write_text(lang_table.render_csv(lb), encoding="utf-8")
        written.append(langs)
    if pngs:
        from kernelsmith.leaderboard.plots import write_pngs

        written += write_pngs(lb, out.with_suffix(""))
    return written


def row_values(r: RunEntry) -> list[tuple[str, str, Any]]:
    """(key, text, sort value) of each column of a run's row (for the HTML table)."""
    vals = []
    for _, key, get, fmt in columns():
        v = get(r)
        vals.append((key, cell(fmt, v), v))
    return vals
