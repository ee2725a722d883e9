"""Build latency of inline-CUDA candidates: plain torch load_inline against kernelsmith's
fast builds (kernelsmith/harness/build, docs/builds.md), and end to end through
`kernelsmith bench --generations`.

    python3 benchmarks/compile_latency.py --json OUT.json             # on a GPU machine (CUDA torch)
    python3 benchmarks/compile_latency.py --compile-only --limit 2    # here: CPU torch, plain nvcc

Candidates: tests/fixtures/solutions/*/correct_inline.py (the way LLMs and KernelBench write
them: torch/extension.h in the CUDA source) and tests/fixtures/inline/*.py (the light layout
the prompts ask for). Each build runs in a fresh Python process (the time is the
candidate's import, i.e. its load_inline calls; not Python's or torch's start-up):

  plain_cold   torch's load_inline into an empty build directory (what a candidate pays today)
  plain_reload the same again in a new process (the up-to-date check the GPU stage pays)
  ks_nohdr     kernelsmith's layout with a cold header cache (no precompiled header)
  ks_cold      kernelsmith's layout into an empty build directory, warm header cache
  ks_reload    the same again in a new process
  layout       what kernelsmith built: light / split / pch (/ heavy = fallback); "/ops": functions
               bound as torch operators (KERNELSMITH_OPS_BINDING=1, harness/build/binding.py);
               split: an LLM-style CUDA source cut in two (KERNELSMITH_SPLIT_SOURCES=1, split.py)

Plain, no-header and kernelsmith's builds of the LLM-style candidates take tens of seconds
each, so they run --jobs at a time (each build runs two compilers; the JSON's ks_at_once
says how many ran at once); kernelsmith's builds of the light candidates run one at a time.
--limit (default 12) takes both kinds alternately; --budget (default 390 s) bounds the
end-to-end part, which gets what is left. The precompiled header is built once first (its seconds are
printed; it is per torch/compiler/flags, not per candidate).

End to end: a stream of distinct inline candidates (each fixture with a per-run nonce
comment, so nothing is cached) through `kernelsmith bench --generations`, with the
torch.compile baseline off; seconds per candidate are (wall(N rows) - wall(1 row)) / (N - 1)
and wall(N)/N; the GPU idle fraction comes from the run's config in runs.db.

--compile-only (automatic with a CPU torch): "plain" is the same sources compiled the way
load_inline would (heavy layout) with plain nvcc/c++, nothing is linked or loaded, and the
end-to-end part runs `bench --generations --dry-run` (static screen + compile).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOL = ROOT / "tests" / "fixtures" / "solutions"
LIGHT = ROOT / "tests" / "fixtures" / "inline"


def candidates() -> list[dict]:
    """[{name, path, task, kind}] of every inline fixture, heavy ones first."""
    manifest = json.loads((SOL / "manifest.json").read_text())
    out = []
    for stem, entry in sorted(manifest.items()):
        if "correct_inline.py" in entry["solutions"] and (SOL / stem / "correct_inline.py").exists():
            out.append({"name": f"{stem}/inline", "path": str(SOL / stem / "correct_inline.py"),
                        "task": str(ROOT / entry["task"]), "kind": "llm-style"})
    for p in sorted(LIGHT.glob("level*_*.py")):
        parts = p.stem.split("_", 1)  # level1_005_relu -> tasks/level1/005_relu.py
        task = ROOT / "tasks" / parts[0] / f"{parts[1]}.py"
        out.append({"name": f"{p.stem}/light", "path": str(p), "task": str(task), "kind": "light"})
    return out


# -- the child: one import of one candidate -------------------------------------------------
def child(mode: str, cand: str, build_dir: str, pch_root: str, arch: str, compile_only: bool) -> dict:
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    sys.path.insert(0, str(ROOT))
    import torch.utils.cpp_extension as cpp

    from kernelsmith.harness.build.inline import BuildLog
    from kernelsmith.harness.compile import nvcc_builder
    from kernelsmith.harness.loader import Capture, load_module, patch_load_inline

    log = BuildLog()
    builder = nvcc_builder(arch, 900) if compile_only else None
    if mode == "plain" and not compile_only:
        real = cpp.load_inline

        def plain(name, *args, **kwargs):
            kwargs["build_directory"] = os.path.join(build_dir, name)
            kwargs["verbose"] = False
            os.makedirs(kwargs["build_directory"], exist_ok=True)
            return real(name, *args, **kwargs)

        cpp.load_inline = plain
    else:
        patch_load_inline(build_dir, Capture(), builder=builder, pch_root=pch_root if mode == "ks" else None,
                          build_log=log, fast=False if mode == "plain" else None)
    t0 = time.perf_counter()
    try:
        load_module(cand, "ks_bench_candidate")
        ok, err = True, ""
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        ok, err = False, f"{type(exc).__name__}: {str(exc)[-800:]}"
    secs = time.perf_counter() - t0
    layouts = sorted({c["layout"] + ("/ops" if c.get("binding") == "ops" else "") for c in log.calls})
    return {"ok": ok, "seconds": round(secs, 3), "layout": "+".join(layouts) or ("plain" if mode == "plain" else "?"),
            "fell_back": any(c.get("fell_back") for c in log.calls), "error": err}


def run_child(mode: str, cand: dict, build_dir: Path, pch_root: str, arch: str, compile_only: bool,
              timeout: float) -> dict:
    build_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--child", mode, cand["path"], str(build_dir), pch_root, arch]
    if compile_only:
        cmd.append("--compile-only")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "seconds": round(time.perf_counter() - t0, 3), "error": "timeout", "layout": "?"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"ok": False, "seconds": None, "layout": "?", "error": (proc.stdout + proc.stderr)[-800:]}


# -- end to end --------------------------------------------------------------------------------
def e2e(cands: list[dict], work: Path, compile_only: bool, timeout: float) -> dict:
    """`kernelsmith bench --generations` on N distinct candidates and on 1."""
    nonce = uuid.uuid4().hex[:12]

    def rows(items, tag):
        return [{"level": 1, "problem_id": i + 1, "name": Path(c["task"]).stem, "task_path": c["task"],
                 "code": Path(c["path"]).read_text() + f"\n# compile_latency {tag} {nonce} {i}\n"}
                for i, c in enumerate(items)]

    env = dict(os.environ, KERNELSMITH_COMPILE_BASELINE="0",
               KERNELSMITH_MAX_TIMING_SECONDS=os.environ.get("KERNELSMITH_MAX_TIMING_SECONDS", "1"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    db = work / "runs.db"
    out: dict = {}
    for tag, items in (("n", cands), ("one", cands[:1])):
        path = work / f"gen_{tag}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows(items, tag)))
        cmd = [sys.executable, "-m", "kernelsmith.cli", "bench", "--generations", str(path), "--label",
               f"compile_latency_{tag}", "--db", str(db)]
        if compile_only:
            cmd.append("--dry-run")
        t0 = time.perf_counter()
        rc, text, phases = _run_group(cmd, env, timeout * 0.75 if tag == "n" else max(60.0, timeout * 0.25))
        out[tag] = {"rows": len(items), "wall_s": round(time.perf_counter() - t0, 2), "rc": rc,
                    "phases": phases, "tail": text[-2500:]}
    n, one = out["n"], out["one"]
    if n["rows"] > 1:
        out["per_candidate_marginal_s"] = round((n["wall_s"] - one["wall_s"]) / (n["rows"] - 1), 2)
    out["per_candidate_total_s"] = round(n["wall_s"] / n["rows"], 2)
    out["gpu_idle"] = None if compile_only else _gpu_idle(db)  # a dry run keeps no run record
    if not compile_only:
        out["verdicts"] = _verdicts(db)
    return out


def _run_group(cmd: list[str], env: dict, timeout: float) -> tuple[int, str, dict]:
    """Run `cmd` in its own process group; past `timeout`, kill that group (the bench's
    sandbox servers with it) and return 124. Also where the wall time went: to the first
    output line (start-up), to the last one, to the process's exit, and to the end of its
    output (a child still holding the pipe keeps communicate waiting)."""
    import signal
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(ROOT), start_new_session=True)
    lines: list[tuple[float, str]] = []

    def read():
        for line in proc.stdout:
            lines.append((time.perf_counter() - t0, line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rc = 124
    try:
        rc = proc.wait(timeout=timeout)
        exited = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        exited = None
    if exited is None:
        os.killpg(proc.pid, signal.SIGKILL)
    reader.join(max(1.0, timeout - (time.perf_counter() - t0)))
    if reader.is_alive():  # the process exited, a child of it holds the pipe
        os.killpg(proc.pid, signal.SIGKILL)
        reader.join(10)
    eof = time.perf_counter() - t0
    phases = {"first_line_s": round(lines[0][0], 2) if lines else None,
              "last_line_s": round(lines[-1][0], 2) if lines else None,
              "exit_s": None if exited is None else round(exited, 2), "eof_s": round(eof, 2)}
    text = "".join(f"[{t:7.2f}] {ln}" for t, ln in lines)
    if exited is None:
        text += f"\n[killed after {timeout:.0f} s]"
    return rc, text, phases


def _verdicts(db: Path) -> dict:
    """{verdict: count} of the N-row run, and the rows that were not correct (with why)."""
    try:
        from kernelsmith.store.runs import RunStore

        store = RunStore(str(db))
        runs = store.list_runs(label="compile_latency_n")
        if not runs:
            return {"error": "no run"}
        counts: dict = {}
        wrong = []
        for c in store.candidates(runs[0].id):
            v = c.result.verdict.value if c.result else "not evaluated"
            counts[v] = counts.get(v, 0) + 1
            if v != "correct":
                wrong.append({"name": (c.strategy_info or {}).get("name"), "verdict": v,
                              "message": (c.result.message if c.result else "")[:300]})
        store.close()
        return {"counts": counts, "not_correct": wrong}
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)[:300]}


def _gpu_idle(db: Path) -> dict | None:
    """The GPU idle figures the CLI stored in the N-row run's config (None if absent)."""
    try:
        import sqlite3

        con = sqlite3.connect(str(db))
        rows = con.execute("select config_json from runs where label = 'compile_latency_n' "
                           "order by created_at desc limit 1").fetchall()  # the store's runs table
        con.close()
        if rows:
            cfg = json.loads(rows[0][0]) if isinstance(rows[0][0], str) else rows[0][0]
            return cfg.get("gpu_idle")
    except Exception as exc:  # noqa: BLE001 - a figure we could not read is reported as such
        return {"error": str(exc)[:200]}
    return None


# -- main --------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--compile-only", action="store_true", help="CPU torch: nvcc/c++ compiles only (automatic)")
    ap.add_argument("--limit", type=int, default=12, help="at most this many candidates, both kinds alternating (0: all)")
    ap.add_argument("--budget", type=float, default=390, help="seconds for the whole run (the end-to-end part gets the rest)")
    ap.add_argument("--plain-limit", type=int, default=12, help="plain load_inline on this many (0: all)")
    ap.add_argument("--nohdr-limit", type=int, default=6, help="ks without a header cache on this many (0: all)")
    ap.add_argument("--jobs", type=int, default=0, help="slow builds at once (0: cores // 2, at least 1)")
    ap.add_argument("--e2e-rows", type=int, default=0, help="candidates in the end-to-end stream (0: all)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the bench --generations part")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for one build")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed)")
    ap.add_argument("--child", nargs=5, metavar=("MODE", "CAND", "BUILD", "PCH", "ARCH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(*a.child, compile_only=a.compile_only)))
        return 0

    sys.path.insert(0, str(ROOT))
    import torch

    compile_only = a.compile_only or torch.version.cuda is None or not torch.cuda.is_available()
    arch = "9.0"
    if not compile_only:
        major, minor = torch.cuda.get_device_capability(0)
        arch = f"{major}.{minor}"
    cores = os.cpu_count() or 2
    jobs = a.jobs or max(1, cores // 2)
    cands = candidates()
    if a.limit:
        # keep both kinds: alternate llm-style and light
        heavy = [c for c in cands if c["kind"] != "light"]
        light = [c for c in cands if c["kind"] == "light"]
        mixed = [x for pair in zip(light, heavy) for x in pair] + light[len(heavy):] + heavy[len(light):]
        cands = mixed[:a.limit]
    work = a.work or Path(tempfile.mkdtemp(prefix="ks_compile_latency_"))
    work.mkdir(parents=True, exist_ok=True)
    from kernelsmith import config as ksconfig

    pch_root = str(Path(os.environ.get("KERNELSMITH_BENCH_PCH", ksconfig.home() / "cache" / "pch")))
    report: dict = {"compile_only": compile_only, "arch": arch, "torch": torch.__version__, "cores": cores,
                    "jobs": jobs, "candidates": [], "pch_root": pch_root}
    t_all = time.perf_counter()
    print(f"torch {torch.__version__}, {'compile-only' if compile_only else 'CUDA'} mode, arch {arch}, "
          f"{cores} cores, {len(cands)} candidates, {jobs} slow builds at once", flush=True)

    # 1. the header cache (what the evaluator does before the first inline compile)
    from kernelsmith.evaluate.fastbuild import default_variants
    from kernelsmith.harness.build import pch

    VARIANTS = default_variants()  # noqa: N806 - with KERNELSMITH_OPS_BINDING=1, the operator header too
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(VARIANTS)) as pool:
        built = list(pool.map(lambda f: _safe_build(pch_root, f), VARIANTS))
    report["pch"] = {"seconds": round(time.perf_counter() - t0, 2), "variants": built}
    print(f"precompiled headers: {report['pch']['seconds']:.1f} s (" + ", ".join(_pch_line(b) for b in built) + ")",
          flush=True)

    rows = {c["name"]: {"name": c["name"], "kind": c["kind"]} for c in cands}

    def go(mode: str, c: dict, tag: str, sub: str) -> None:
        r = run_child(mode, c, work / sub / c["name"].replace("/", "__"), pch_root, arch, compile_only, a.timeout)
        rows[c["name"]][tag] = r["seconds"] if r.get("ok") else None
        if mode == "ks" and tag == "ks_cold":
            rows[c["name"]]["layout"] = r.get("layout") + (" (fell back)" if r.get("fell_back") else "")
        if not r.get("ok"):
            rows[c["name"]].setdefault("errors", {})[tag] = r.get("error", "")[-600:]

    def ks(c: dict) -> None:
        go("ks", c, "ks_cold", "ks")
        if not compile_only:  # compile-only builds have no up-to-date check: a reload is a rebuild
            go("ks", c, "ks_reload", "ks")
        print(f"  ks {c['name']}: {rows[c['name']].get('ks_cold')} s cold, {rows[c['name']].get('ks_reload')} s reload "
              f"[{rows[c['name']].get('layout')}]", flush=True)

    # 2. kernelsmith on the light candidates, warm header cache: one at a time (then the reload)
    for c in cands:
        if c["kind"] == "light":
            ks(c)
        rows[c["name"]]["ks_at_once"] = 1 if c["kind"] == "light" else jobs
    # 3. the slow ones, `jobs` at a time: plain load_inline (cold, reload), kernelsmith on the
    #    LLM-style candidates (torch headers in the CUDA source), and without a header cache
    plain = cands[:a.plain_limit] if a.plain_limit else cands
    nohdr = [c for c in cands if c["kind"] == "light"][: a.nohdr_limit or None]

    def slow(item):
        mode, c = item
        if mode == "ks":
            return ks(c)
        if mode == "plain":
            go("plain", c, "plain_cold", "plain")
            if not compile_only:
                go("plain", c, "plain_reload", "plain")
        else:
            go("ks-nohdr", c, "ks_nohdr", "nohdr")
        print(f"  {mode} {c['name']}: {rows[c['name']].get('plain_cold' if mode == 'plain' else 'ks_nohdr')} s",
              flush=True)

    t0 = time.perf_counter()
    work_items = ([("ks", c) for c in cands if c["kind"] != "light"] + [("plain", c) for c in plain]
                  + [("nohdr", c) for c in nohdr])
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(slow, work_items))
    report["slow_phase_s"] = round(time.perf_counter() - t0, 1)

    # 4. end to end, in what is left of the budget
    if not a.no_e2e:
        stream = cands[: a.e2e_rows] if a.e2e_rows else cands
        left = a.budget - (time.perf_counter() - t_all)
        report["e2e"] = e2e(stream, work, compile_only, timeout=max(90.0, left - 20))
    report["candidates"] = list(rows.values())
    report["wall_s"] = round(time.perf_counter() - t_all, 1)
    _print(report)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _pch_line(b: dict) -> str:
    what = "error" if "error" in b else ("cached" if not b.get("built") else f"{b.get('seconds', 0):.1f} s")
    return f"{b['kind']} {' '.join(b['flags']) or 'default flags'}: {what}"


def _safe_build(root: str, variant) -> dict:
    from kernelsmith.harness.build import pch

    kind, flags = variant
    try:
        return {"kind": kind, "flags": list(flags), **pch.build(root, flags, kind=kind)}
    except Exception as exc:  # noqa: BLE001
        return {"kind": kind, "flags": list(flags), "error": str(exc)[-500:]}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _print(r: dict) -> None:
    cols = ("plain_cold", "plain_reload", "ks_nohdr", "ks_cold", "ks_reload")
    head = f"{'candidate':44} {'kind':9} " + " ".join(f"{c:>12}" for c in cols) + f" {'speedup':>8}  layout"
    print(f"\nbuild seconds (plain, no-header and llm-style ks builds {r['jobs']} at a time; light ks builds one at a time)")
    print(head)
    ratios = []
    for row in r["candidates"]:
        sp = None
        if row.get("plain_cold") and row.get("ks_cold"):
            sp = row["plain_cold"] / row["ks_cold"]
            ratios.append(sp)
        print(f"{row['name'][:44]:44} {row['kind']:9} " + " ".join(f"{_fmt(row.get(c)):>12}" for c in cols)
              + f" {(f'{sp:.1f}x' if sp else '-'):>8}  {row.get('layout', '')}")
    import statistics

    def med(key, kind=None):
        vals = [x[key] for x in r["candidates"] if x.get(key) is not None and (kind is None or x["kind"] == kind)]
        return statistics.median(vals) if vals else None

    r["medians"] = {k: {"all": med(k), "light": med(k, "light"), "llm-style": med(k, "llm-style")} for k in cols}
    r["median_speedup"] = statistics.median(ratios) if ratios else None
    for k in cols:
        m = r["medians"][k]
        print(f"median {k:12}: all {_fmt(m['all'])} s, light {_fmt(m['light'])} s, llm-style {_fmt(m['llm-style'])} s")
    if r["median_speedup"]:
        print(f"median speedup plain_cold / ks_cold: {r['median_speedup']:.1f}x")
    e = r.get("e2e")
    if e:
        print(f"end to end ({'bench --generations --dry-run' if r['compile_only'] else 'bench --generations'}): "
              f"{e['n']['rows']} rows in {e['n']['wall_s']} s (rc {e['n']['rc']}), 1 row in {e['one']['wall_s']} s; "
              f"per candidate {e.get('per_candidate_marginal_s', '-')} s marginal, {e['per_candidate_total_s']} s "
              f"with start-up; GPU idle {e.get('gpu_idle')}; verdicts {(e.get('verdicts') or {}).get('counts')}")
        for tag in ("n", "one"):  # where each run's wall time went (start-up, its own work, exit)
            print(f"  {tag}: {e[tag]['phases']}")
        print("bench output, N rows (tail, seconds since start):\n" + "\n".join(e["n"]["tail"].splitlines()[-14:]))
    print(f"whole benchmark: {r['wall_s']} s")


if __name__ == "__main__":
    sys.exit(main())
