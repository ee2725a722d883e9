"""Rendering an EvalResult for people (rich) — machine output is `to_dict()` as JSON."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kernelsmith.results import EvalResult, TimingStats, Verdict

COLORS = {Verdict.CORRECT: "green", Verdict.INCORRECT: "red", Verdict.REJECTED: "magenta",
          Verdict.TIMEOUT: "yellow", Verdict.COMPILE_ERROR: "red", Verdict.RUNTIME_ERROR: "red",
          Verdict.INVALID_TASK: "yellow"}


def _ms(s: TimingStats | None) -> str:
    if s is None:
        return "-"
    return f"{s.median_ms:.4f} ms  [{s.ci_low_ms:.4f}, {s.ci_high_ms:.4f}]  cv {s.cv:.1%}  n={len(s.samples_ms)}"


def _stage_rows(r: EvalResult) -> list[tuple[str, str, str]]:
    rows = []
    if r.static:
        rows.append(("static", "ok" if r.static.ok else "FAIL", r.static.message or "; ".join(r.static.warnings)))
    if r.compile:
        c = r.compile
        note = "cache hit" if c.cached else f"{c.seconds:.2f} s"
        rows.append(("compile", ("ok" if c.ok else "FAIL") + f" ({c.backend or '-'})", c.message or note))
    if r.check:
        k = r.check
        share = f"; {k.own_kernel_share:.0%} of GPU time in its own kernels" if k.own_kernel_share is not None else ""
        rows.append(("check", f"{k.trials_passed}/{k.trials} trials" + share,
                     k.detail or f"max abs err {k.max_abs_error:.3g}, rel err {k.rel_error:.3g} "
                                 f"(atol {k.atol:g}, rtol {k.rtol:g})" if k.max_abs_error is not None else k.detail))
    if r.timing:
        rows.append(("time", "ok" if r.timing.ok else "FAIL", r.timing.message or
                     f"{r.timing.rechecked_outputs} timed outputs re-checked"))
    return rows


def render(r: EvalResult, console: Console | None = None) -> None:
    console = console or Console()
    color = COLORS.get(r.verdict, "white")
    head = Text.assemble(("verdict: ", "bold"), (r.verdict.value.upper(), f"bold {color}"))
    if r.error.value != "none":
        head.append(f"  ({r.error.value})", style=color)
    if r.cached:
        head.append("  [cached result]", style="dim")
    parts: list = [head]
    if r.message:
        parts.append(Text(r.message))
    stages = Table(show_header=True, header_style="bold", box=None)
    for col in ("stage", "outcome", "detail"):
        stages.add_column(col)
    for row in _stage_rows(r):
        stages.add_row(*row)
    parts.append(stages)
    if r.compile and r.compile.log:
        parts.append(Panel(r.compile.log, title="compiler log (trimmed)", border_style="red"))
    t = r.timing
    if t and t.candidate:
        tt = Table(show_header=False, box=None)
        tt.add_row("candidate", _ms(t.candidate))
        tt.add_row("eager", _ms(t.eager))
        if t.compiled_ms:
            tt.add_row("torch.compile", f"{t.compiled_ms:.4f} ms (cached baseline)")
        if t.speedup_eager:
            ci = f"  95% CI [{t.speedup_eager_ci[0]:.3f}, {t.speedup_eager_ci[1]:.3f}]" if t.speedup_eager_ci else ""
            tt.add_row("speedup vs eager", f"[bold]{t.speedup_eager:.3f}x[/]{ci}")
        if t.other_session_speedup:
            tt.add_row("second session", f"{t.other_session_speedup:.3f}x (of two independent evaluations, the "
                                         "lower speedup is shown; the CI covers both)")
        if t.speedup_compile:
            tt.add_row("speedup vs compile", f"{t.speedup_compile:.3f}x")
        if t.candidate_launch_ms is not None:
            host_bound = t.candidate.median_ms and t.candidate_launch_ms > t.candidate.median_ms
            tt.add_row("host launch", f"{t.candidate_launch_ms:.4f} ms of host time to launch one call (eager "
                                      f"{t.eager_launch_ms or 0.0:.4f} ms)" + (
                                          "; [yellow]host-bound[/]: the launch outlasts the kernel, so calls in a "
                                          "row run at the host's pace, not the GPU's" if host_bound else ""))
        b2b = t.speedup_back_to_back
        if b2b is not None and t.speedup_eager and abs(b2b / t.speedup_eager - 1) > 0.01:
            tt.add_row("back to back", f"{b2b:.3f}x when calls run back to back (each side's time per call: the "
                                       "larger of its GPU time and its host launch time)")
        if t.bound:
            b = t.bound
            tt.add_row("physical floor", f"{b.floor_ms:.4f} ms ({b.flops / 1e9:.2f} GFLOP, {b.bytes / 1e6:.1f} MB); "
                                         f"candidate reaches {b.fraction:.1%} of it")
        parts.append(Panel(tt, title="timing (median, 95% CI)"))
    s = r.system
    parts.append(Text(f"{s.gpu or 'no GPU'} (sm {s.compute_capability or '-'}), driver {s.driver or '-'}, "
                      f"torch {s.torch or '-'} (CUDA {s.cuda or '-'}), CuPy {s.cupy or '-'}, "
                      f"Python {s.python or '-'}, sandbox {s.sandbox or '-'}, harness {s.harness or '-'}",
                      style="dim"))
    if r.wall:
        parts.append(Text("wall: " + ", ".join(f"{k} {v:.2f} s" for k, v in r.wall.items()), style="dim"))
    if r.output and r.verdict is not Verdict.CORRECT:
        parts.append(Panel(r.output[-1500:], title="candidate output (tail)", border_style="dim"))
    console.print(Panel(Group(*parts), title="kernelsmith eval", border_style=color))
