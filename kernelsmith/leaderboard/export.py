"""Leaderboard exports: Markdown, CSV, JSON (and HTML, in ``html``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kernelsmith.leaderboard import lang_table
from kernelsmith.leaderboard.build import Leaderboard
from kernelsmith.leaderboard.html import render_html
from kernelsmith.leaderboard.metrics import Summary
from kernelsmith.leaderboard.plots import write_pngs
from kernelsmith.leaderboard.table import HEADER, cell, columns, fnum, fx

FORMATS = ("md", "csv", "json", "html")

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
        written += write_pngs(lb, out.with_suffix(""))
    return written
