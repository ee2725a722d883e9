"""Nsight Compute summaries and compute-sanitizer checks of one candidate (GPU jobs).

Both tools wrap `python -m kernelsmith.harness.runner`, which runs the candidate's forward
a couple of times. Where a tool is missing or cannot read the hardware counters (no
permission, an unsupported virtual machine), the result says so in `note` and
`available` is False: callers show the note instead of numbers.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys

# What the optimize prompt shows: throughput against the chip's peaks, occupancy, spills,
# and the main reasons warps stall (cycles per issued instruction).
NCU_METRICS = {
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "DRAM throughput % of peak",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "SM throughput % of peak",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "achieved occupancy %",
    "launch__registers_per_thread": "registers/thread",
    "smsp__sass_inst_executed_op_local_ld.sum": "local (spill) loads",
    "smsp__sass_inst_executed_op_local_st.sum": "local (spill) stores",
    "gpu__time_duration.sum": "duration (ns)",
}
STALLS = {
    "smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio": "long scoreboard (memory)",
    "smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio": "barrier",
    "smsp__average_warps_issue_stalled_mio_throttle_per_issue_active.ratio": "MIO throttle",
    "smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio": "math pipe throttle",
    "smsp__average_warps_issue_stalled_short_scoreboard_per_issue_active.ratio": "short scoreboard",
    "smsp__average_warps_issue_stalled_wait_per_issue_active.ratio": "fixed-latency wait",
}
TOOL_TIMEOUT = 300


def _tool(name: str) -> str | None:
    for base in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if base and os.path.exists(os.path.join(base, "bin", name)):
            return os.path.join(base, "bin", name)
    return shutil.which(name)


def _runner(args: dict) -> list[str]:
    return [sys.executable, "-m", "kernelsmith.harness.runner", args["task_path"], args["candidate_path"],
            args["build_dir"], str(args.get("calls", 2))]


def parse_ncu_csv(text: str) -> list[dict]:
    """Rows of `ncu --csv --page raw`: one dict per profiled kernel launch (numbers as floats
    where they parse). Lines before the header (==PROF== messages, program output) and the
    units row after it are skipped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return []
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
    out = []
    for row in rows:
        if not (row.get("ID") or "").strip().isdigit():  # the units row
            continue
        rec: dict = {}
        for k, v in row.items():
            v = (v or "").replace(",", "")
            try:
                rec[k] = float(v)
            except ValueError:
                rec[k] = v
        out.append(rec)
    return out


def summarize_ncu(rows: list[dict]) -> str:
    """A few lines an LLM can act on: per kernel (launches merged), the main figures and the
    top stall reasons."""
    by_kernel: dict[str, list[dict]] = {}
    for r in rows:
        by_kernel.setdefault(str(r.get("Kernel Name", "?")), []).append(r)
    lines = []
    for name, rs in by_kernel.items():
        def avg(metric):
            vals = [r[metric] for r in rs if isinstance(r.get(metric), float)]
            return sum(vals) / len(vals) if vals else None

        figures = [f"{label} {avg(m):.4g}" for m, label in NCU_METRICS.items() if avg(m) is not None]
        stalls = sorted(((avg(m), label) for m, label in STALLS.items() if avg(m) is not None), reverse=True)[:3]
        stall_text = ", ".join(f"{label} {v:.2f}" for v, label in stalls)
        lines.append(f"{name[:80]} ({len(rs)} launches): " + "; ".join(figures)
                     + (f"; top stalls (cycles/issue): {stall_text}" if stall_text else ""))
    return "\n".join(lines)


def profile(args: dict) -> dict:
    ncu = _tool("ncu")
    if ncu is None:
        return {"available": False, "note": "Nsight Compute (ncu) is not installed here: no profile"}
    names = args.get("kernels") or []
    cmd = [ncu, "--clock-control", "none", "--target-processes", "all", "--csv", "--page", "raw",
           "--metrics", ",".join(list(NCU_METRICS) + list(STALLS)), "--launch-count", str(args.get("launches", 8))]
    if names:
        cmd += ["--kernel-name", "regex:" + "|".join(re.escape(n) for n in names)]
    try:
        proc = subprocess.run(cmd + _runner(args), capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"available": False, "note": f"ncu ran past {TOOL_TIMEOUT} s: no profile"}
    text = proc.stdout + proc.stderr
    rows = parse_ncu_csv(proc.stdout)
    if not rows:
        reason = "permission to read GPU counters denied" if "ERR_NVGPUCTRPERM" in text else \
            (text.strip().splitlines() or ["no kernel was profiled"])[-1][:300]
        return {"available": False, "note": f"the hardware counters could not be read: {reason}"}
    return {"available": True, "note": "", "rows": rows, "summary": summarize_ncu(rows)}


_SUMMARY = re.compile(r"ERROR SUMMARY:\s*(\d+)\s+error")
# racecheck ends differently: "RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)"
_RACE_SUMMARY = re.compile(r"RACECHECK SUMMARY:\s*\d+\s+hazards?\s+displayed\s*\((\d+)\s+errors?,\s*(\d+)\s+warnings?\)")
_APP_FAILED = "Target application returned an error"


def parse_sanitizer(text: str) -> tuple[int | None, str]:
    """(number of errors, the first reported error) from compute-sanitizer's output;
    None errors when it gave no verdict (it did not run, or the program itself failed)."""
    m, race = _SUMMARY.search(text), _RACE_SUMMARY.search(text)
    found = [line.strip("= ").strip() for line in text.splitlines()
             if line.startswith("=========") and ("Invalid" in line or "hazard" in line.lower()
                                                 or "Error" in line) and "SUMMARY" not in line
             and "process didn't terminate" not in line and _APP_FAILED not in line]
    # a finding, not racecheck's "Warning: Maximum number of hazards reached" (seen on the H200)
    first = next((f for f in found if not f.startswith("Warning")), found[0] if found else "")
    if _APP_FAILED in text and not first:
        return None, ""  # the program failed on its own: no verdict on the kernels
    if race:
        return int(race.group(1)) + int(race.group(2)), first[:300]
    return (int(m.group(1)) if m else None), first[:300]


def _program_output(text: str) -> str:
    """The wrapped program's own last lines (its traceback), without the tool's."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("=========")]
    return "\n".join(lines[-6:])[-400:]


def sanitize(args: dict) -> dict:
    tool = _tool("compute-sanitizer")
    if tool is None:
        return {"available": False, "note": "compute-sanitizer is not installed here: not checked"}
    out: dict = {"available": True, "note": ""}
    for name in args.get("tools", ("memcheck", "racecheck")):
        try:
            proc = subprocess.run([tool, "--tool", name, "--print-limit", "5", *_runner(args)],
                                  capture_output=True, text=True, timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            out[name] = {"errors": None, "first": f"ran past {TOOL_TIMEOUT} s"}
            continue
        text = proc.stdout + proc.stderr
        errors, first = parse_sanitizer(text)
        if errors is None:
            out["available"] = False
            why = (f"the program failed under {name}: {_program_output(text) or 'no output'}" if _APP_FAILED in text
                   else text.strip()[-300:] or "no summary from compute-sanitizer")
            out["note"] = "; ".join(x for x in (out["note"], why) if x)
        out[name] = {"errors": errors, "first": first}
    return out
