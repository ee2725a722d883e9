"""Seconds to the first inline builds in a fresh cache: waiting for the precompiled header
against building without it while it is built (docs/builds.md, "Precompiled header").

Each policy gets its own empty cache directory and compiles the same light fixtures one
after the other through the evaluator's compile stage (process sandbox), as a search's
first candidates would. Prints the seconds from the start to each build being done.

    python3 benchmarks/first_compile.py                 # 3 light fixtures, both policies
    python3 benchmarks/first_compile.py --n 1 --json out.json

On a CPU torch the compile stage only compiles (nothing is linked or loaded)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIGHT = ROOT / "tests" / "fixtures" / "inline"


def fixtures(n: int) -> list[tuple[Path, Path]]:
    """(task, candidate) of the first n light fixtures."""
    out = []
    for p in sorted(LIGHT.glob("level*_*.py"))[:n]:
        level, rest = p.stem.split("_", 1)  # level1_005_relu -> tasks/level1/005_relu.py
        out.append((ROOT / "tasks" / level / f"{rest}.py", p))
    return out


def run(policy: str, items, work: Path) -> dict:
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.task import Task

    cache = work / policy
    t0 = time.perf_counter()
    done = []
    with Evaluator(EvalConfig(cache_dir=cache, arch="9.0", compile_workers=1), sandbox=LocalSandbox()) as ev:
        ev.headers.variants = ev.headers.variants[:1]  # the one the first builds would use
        if policy == "wait":
            ev.headers.wait()  # what the evaluator did before: the first build waits for the header
        for task, cand in items:
            res = ev.compile(Task.load(task), cand.read_text())
            done.append({"fixture": cand.stem, "ok": res.ok, "at_s": round(time.perf_counter() - t0, 2)})
        ev.headers.wait()  # its compiler must not run on into the next policy's builds
        header = list(ev.headers.report)
    return {"policy": policy, "builds": done, "headers": header}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3, help="light fixtures to build, one after the other")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    items = fixtures(a.n)
    out = []
    with tempfile.TemporaryDirectory(prefix="ks-first-") as d:
        for policy in ("nowait", "wait"):
            r = run(policy, items, Path(d))
            out.append(r)
            print(f"{policy:7}: " + ", ".join(f"{b['fixture']} {'ok' if b['ok'] else 'FAILED'} at {b['at_s']} s"
                                              for b in r["builds"]), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0 if all(b["ok"] for r in out for b in r["builds"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
