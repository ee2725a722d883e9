"""The leaderboard's two plots, per reference set: the fast_p curve (fraction of tasks with a
correct kernel and speedup > p, p from 0 to 4) and the distribution of winning speedups
(a box plot per run). As inline SVG (hand-written, for the HTML page: no dependency) and as
PNG via matplotlib (Agg backend; tested with matplotlib 3.10.8)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Sequence

from kernelsmith.leaderboard import metrics as mt
from kernelsmith.leaderboard.build import Leaderboard, RunEntry

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22"]


def run_label(r: RunEntry) -> str:
    return f"#{r.rank} {r.run_id} {r.model}/{r.strategy}" + (" [replay]" if r.replayed else "")


def quartiles(xs: Sequence[float]) -> tuple[float, float, float, float, float]:
    v = sorted(xs)

    def q(p: float) -> float:
        k = (len(v) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return v[lo] + (v[hi] - v[lo]) * (k - lo)

    return v[0], q(0.25), q(0.5), q(0.75), v[-1]


# --- SVG ---------------------------------------------------------------------------------------

def svg_fastp(runs: Sequence[RunEntry], title: str, width: int = 560, height: int = 320) -> str:
    L, R, T, B = 50, 10, 28, 40
    pw, ph = width - L - R, height - T - B
    X = lambda p: L + pw * p / 4.0  # noqa: E731
    Y = lambda f: T + ph * (1 - f)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-fastp" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="fast_p curve">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
             f'{escape(title)}</text>']
    for i in range(5):  # grid
        parts.append(f'<line x1="{X(i):.1f}" y1="{T}" x2="{X(i):.1f}" y2="{T + ph}" stroke="#ddd"/>'
                     f'<text x="{X(i):.1f}" y="{T + ph + 14}" text-anchor="middle" font-size="11">{i}</text>')
    for i in range(6):
        f = i / 5
        parts.append(f'<line x1="{L}" y1="{Y(f):.1f}" x2="{L + pw}" y2="{Y(f):.1f}" stroke="#ddd"/>'
                     f'<text x="{L - 4}" y="{Y(f) + 4:.1f}" text-anchor="end" font-size="11">{f:.1f}</text>')
    parts.append(f'<text x="{L + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="11">'
                 f'p (speedup over eager threshold)</text>')
    parts.append(f'<text x="12" y="{T + ph / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {T + ph / 2})">fast_p</text>')
    for i, r in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{X(p):.1f},{Y(f):.1f}" for p, f in mt.curve(r.outcomes))
        parts.append(f'<polyline class="series" data-run="{escape(r.run_id)}" fill="none" stroke="{color}" '
                     f'stroke-width="2" points="{pts}"><title>{escape(run_label(r))}</title></polyline>')
        ly = T + 8 + 14 * i
        parts.append(f'<rect x="{L + pw - 200}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{L + pw - 186}" y="{ly + 1}" font-size="10">{escape(run_label(r)[:40])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_speedups(runs: Sequence[RunEntry], title: str, width: int = 560, height: int = 320) -> str:
    L, R, T, B = 50, 10, 28, 60
    pw, ph = width - L - R, height - T - B
    data = [mt.speedups(r.outcomes) for r in runs]
    allv = [v for d in data for v in d] or [1.0]
    lo, hi = math.log2(min(min(allv), 0.5)) - 0.25, math.log2(max(max(allv), 2.0)) + 0.25
    Y = lambda v: T + ph * (1 - (math.log2(v) - lo) / (hi - lo))  # noqa: E731
    n = max(len(runs), 1)
    slot = pw / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-speedups" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="speedup distribution">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
             f'{escape(title)}</text>']
    tick = 2.0 ** math.floor(lo)
    while tick <= 2.0 ** hi * 1.0001:
        if 2.0 ** lo <= tick:
            y = Y(tick)
            parts.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" '
                         f'stroke="{"#888" if tick == 1.0 else "#ddd"}"/>'
                         f'<text x="{L - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:g}x</text>')
        tick *= 2
    parts.append(f'<text x="12" y="{T + ph / 2}" text-anchor="middle" font-size="11" '
                 f'transform="rotate(-90 12 {T + ph / 2})">speedup over eager (log)</text>')
    for i, (r, d) in enumerate(zip(runs, data)):
        color = PALETTE[i % len(PALETTE)]
        cx = L + slot * (i + 0.5)
        bw = min(50.0, slot * 0.5)
        parts.append(f'<g class="box" data-run="{escape(r.run_id)}"><title>{escape(run_label(r))}: '
                     f'{len(d)} correct tasks</title>')
        if d:
            mn, q1, med, q3, mx = quartiles(d)
            parts.append(f'<line x1="{cx:.1f}" y1="{Y(mn):.1f}" x2="{cx:.1f}" y2="{Y(mx):.1f}" stroke="{color}"/>'
                         f'<rect x="{cx - bw / 2:.1f}" y="{Y(q3):.1f}" width="{bw:.1f}" '
                         f'height="{max(Y(q1) - Y(q3), 1):.1f}" fill="{color}" fill-opacity="0.3" stroke="{color}"/>'
                         f'<line x1="{cx - bw / 2:.1f}" y1="{Y(med):.1f}" x2="{cx + bw / 2:.1f}" y2="{Y(med):.1f}" '
                         f'stroke="{color}" stroke-width="2"/>')
            for v in d:
                parts.append(f'<circle cx="{cx:.1f}" cy="{Y(v):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<text x="{cx:.1f}" y="{T + ph + 14}" text-anchor="middle" font-size="10">'
                     f'{escape(r.run_id)}</text><text x="{cx:.1f}" y="{T + ph + 27}" text-anchor="middle" '
                     f'font-size="10">{escape((r.model + "/" + r.strategy)[:30])}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# --- PNG (matplotlib) -------------------------------------------------------------------------

def write_pngs(lb: Leaderboard, stem: str | Path) -> list[Path]:
    """``<stem>_fastp.png`` and ``<stem>_speedups.png``: one panel per reference set."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    groups = lb.groups or []
    n = max(len(groups), 1)
    paths = [Path(f"{stem}_fastp.png"), Path(f"{stem}_speedups.png")]

    fig, axes = plt.subplots(n, 1, figsize=(8, 4 * n), squeeze=False)
    for ax, g in zip(axes[:, 0], groups):
        for i, r in enumerate(g.runs):
            ps, fs = zip(*mt.curve(r.outcomes))
            ax.plot(ps, fs, label=run_label(r), color=PALETTE[i % len(PALETTE)], linewidth=2)
        ax.set_title(f"fast_p: {g.title}")
        ax.set_xlabel("p (speedup over eager threshold)")
        ax.set_ylabel("fraction of tasks correct & speedup > p")
        ax.set_xlim(0, 4)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no runs", ha="center")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(n, 1, figsize=(8, 4 * n), squeeze=False)
    for ax, g in zip(axes[:, 0], groups):
        data = [mt.speedups(r.outcomes) or [float("nan")] for r in g.runs]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data, 1):
            ax.scatter([i] * len(d), d, s=12, color=PALETTE[(i - 1) % len(PALETTE)], zorder=3)
        ax.set_xticks(range(1, len(g.runs) + 1), [f"{r.run_id}\n{r.model}/{r.strategy}" for r in g.runs], fontsize=8)
        ax.set_yscale("log", base=2)
        ax.axhline(1.0, color="#888", linewidth=1)
        ax.set_title(f"winning speedups over eager: {g.title}")
        ax.set_ylabel("speedup over eager (log2)")
        ax.grid(alpha=0.3, axis="y")
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no runs", ha="center")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths
