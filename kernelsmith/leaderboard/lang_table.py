"""The language x task table of the leaderboard: per run, for each kernel language and task,
the evaluated candidates' pass@k, fast_1@k and proficiency over the first 10 (see metrics).

Markdown and HTML show one pivot per run (rows: languages, columns: the group's tasks, plus a
mean over the tasks the language attempted); CSV and JSON carry the long form, one row per
(run, language, task)."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

from kernelsmith.leaderboard import metrics as mt
from kernelsmith.leaderboard.build import Group, Leaderboard, RunEntry

NOTE = ("pass@k: unbiased estimator 1 - C(n-c,k)/C(n,k) over the n evaluated candidates of a task in a language "
        "(c correct; n/a when n < k). fast_1@k: the same with c = correct and speedup over eager > 1. "
        "prof: proficiency over the first 10 candidates in proposal order (Godoy et al. 2023): 0 none correct, "
        "0.25 one correct, 0.5 several mixed with incorrect, 0.75 several all ahead of the incorrect, 1 all correct.")

CSV_FIELDS = ["reference_set", "run_id", "model", "strategy", "label", "language", "task_hash", "task", "n", "correct",
              "fast_1", *[f"pass@{k}" for k in mt.PASS_KS], *[f"fast_1@{k}" for k in mt.PASS_KS], "proficiency",
              "proficiency_level"]


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def cell_text(st: mt.SampleStats) -> str:
    return f"{st.correct}/{st.n} · pass@1 {_f(st.pass_at(1))} · fast_1@1 {_f(st.fast_at(1.0, 1))} · prof {_f(st.proficiency)}"


def mean_text(stats: list[mt.SampleStats]) -> str:
    return (f"pass@1 {_f(mt.mean(s.pass_at(1) for s in stats))} · fast_1@1 "
            f"{_f(mt.mean(s.fast_at(1.0, 1) for s in stats))} · prof {_f(mt.mean(s.proficiency for s in stats))}")


def pivot(g: Group, r: RunEntry) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(header, [(language, cells)]): one column per task of the group, then the mean."""
    tasks = g.tasks
    header = ["language", *[t["name"] for t in tasks], "mean over its tasks"]
    by_lang: dict[str, dict[str, mt.SampleStats]] = {}
    for st in r.samples:
        by_lang.setdefault(st.language, {})[st.task_hash] = st
    rows = []
    for lang, cells in sorted(by_lang.items()):
        rows.append((lang, [cell_text(cells[t["hash"]]) if t["hash"] in cells else "–" for t in tasks]
                     + [mean_text(list(cells.values()))]))
    return header, rows


def render_md(lb: Leaderboard) -> list[str]:
    out = ["## Language x task", "", NOTE, ""]
    for g in lb.groups:
        for r in g.runs:
            header, rows = pivot(g, r)
            if not rows:
                continue
            out += [f"### {r.run_id} ({r.model} / {r.strategy}{', ' + r.label if r.label else ''}), "
                    f"reference set {g.name}", ""]
            out.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join([lang, *cells]) + " |" for lang, cells in rows]
            out.append("")
    return out


def render_csv(lb: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for g in lb.groups:
        for r in g.runs:
            for st in r.samples:
                d = st.to_dict()
                w.writerow({"reference_set": g.name, "run_id": r.run_id, "model": r.model, "strategy": r.strategy,
                            "label": r.label, "task": d.pop("name"),
                            **{k: ("" if v is None else v) for k, v in d.items()}})
    return buf.getvalue()


def render_html(lb: Leaderboard) -> list[str]:
    out = [f"<h2>Language x task</h2><p class=\"defs\">{escape(NOTE)}</p>"]
    for g in lb.groups:
        for r in g.runs:
            header, rows = pivot(g, r)
            if not rows:
                continue
            out.append(f"<h3>{escape(r.run_id)} ({escape(r.model)} / {escape(r.strategy)}), reference set "
                       f"{escape(g.name)}</h3><table class=\"languages\" data-run=\"{escape(r.run_id)}\"><thead><tr>")
            out += [f"<th class=\"t\">{escape(h)}</th>" for h in header]
            out.append("</tr></thead><tbody>")
            for lang, cells in rows:
                out.append(f"<tr data-language=\"{escape(lang)}\"><td class=\"t\">{escape(lang)}</td>"
                           + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
            out.append("</tbody></table>")
    return out


def any_samples(lb: Leaderboard) -> bool:
    return any(r.samples for r in lb.runs)


__all__: list[Any] = ["render_md", "render_csv", "render_html", "pivot", "NOTE", "CSV_FIELDS"]
