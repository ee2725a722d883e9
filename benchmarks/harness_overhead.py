"""Seconds per candidate through the evaluator: this tree's harness against another
tree's (an earlier commit), on the same candidates, in one sitting on one GPU.

Not a test: it prints medians and their ratio. Each side runs in its own process (its
own copy of kernelsmith on sys.path), builds first (not measured: the build stage is
the same code on both sides), then evaluates every candidate once, uncached; the sides
alternate A B A B so drift over the sitting falls on both.

    git archive <commit> | tar -x -C .old-harness      # the tree to compare against
    python benchmarks/harness_overhead.py --old .old-harness [--n 24] [--rounds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def items(n: int) -> list[dict]:
    """CuPy fixtures (correct and wrong alternating) and the corpus's controls: NVRTC builds
    are seconds, so the sitting measures evaluations, not nvcc."""
    sol = ROOT / "tests" / "fixtures" / "solutions"
    manifest = json.loads((sol / "manifest.json").read_text())
    out = []
    for stem, entry in manifest.items():
        for name in entry["solutions"]:
            if name.endswith("_cupy.py"):
                out.append({"name": f"{stem}/{name}", "task": str(ROOT / entry["task"]),
                            "code": (sol / stem / name).read_text()})
    return out[:n]


def worker(root: Path, spec: Path, cache: Path) -> None:
    sys.path.insert(0, str(root))
    from kernelsmith.config import HARNESS_VERSION, EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.task import Task

    todo = json.loads(spec.read_text())
    cfg = EvalConfig(cache_dir=cache, use_cache=False, compile_baseline=False, eval_timeout=120)
    pairs = [(Task.load(Path(x["task"])), x["code"]) for x in todo]
    rows = []
    with Evaluator(cfg, sandbox=LocalSandbox()) as ev:
        ev.probe()
        ev.precompile(pairs)
        for x, (task, code) in zip(todo, pairs):
            t0 = time.perf_counter()
            r = ev.evaluate(task, code)
            rows.append({"name": x["name"], "seconds": time.perf_counter() - t0, "verdict": r.verdict.value,
                         "wall": r.wall})
    print(json.dumps({"harness": HARNESS_VERSION, "rows": rows}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", type=Path, help="root of the tree to compare against")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ks-overhead"))
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.spec, args.cache)
    if not args.old or not (args.old / "kernelsmith").is_dir():
        sys.exit("--old must name a kernelsmith source tree (e.g. git archive <commit> | tar -x -C DIR)")
    args.cache.mkdir(parents=True, exist_ok=True)
    args.cache.chmod(0o755)
    spec = args.cache / "items.json"
    spec.write_text(json.dumps(items(args.n)))
    sides = {"old": args.old.resolve(), "new": ROOT}
    runs: dict[str, list] = {"old": [], "new": []}
    for rnd in range(args.rounds):
        for side in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sides[side])] + [
                p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT])}
            proc = subprocess.run([sys.executable, __file__, "--worker", str(sides[side]), "--spec", str(spec),
                                   "--cache", str(args.cache)], capture_output=True, text=True, env=env, cwd=sides[side])
            if proc.returncode != 0:
                sys.exit(f"{side} worker failed:\n{proc.stderr[-3000:]}")
            runs[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {"n": args.n, "rounds": args.rounds, "runs": runs}
    for side, rs in runs.items():
        secs = [row["seconds"] for r in rs for row in r["rows"]]
        report[side] = {"harness": rs[0]["harness"], "median_s": statistics.median(secs),
                        "mean_s": statistics.fmean(secs),
                        "verdicts": sorted({row["verdict"] for r in rs for row in r["rows"]})}
        print(f"{side} (harness {rs[0]['harness']}): {len(secs)} evaluations, median {report[side]['median_s']:.3f} s, "
              f"mean {report[side]['mean_s']:.3f} s per candidate")
    ratio = report["new"]["median_s"] / report["old"]["median_s"]
    report["ratio_median"] = ratio
    report["ratio_mean"] = report["new"]["mean_s"] / report["old"]["mean_s"]
    print(f"new / old seconds per candidate: median {ratio:.3f}, mean {report['ratio_mean']:.3f}")
    differ = [(a["name"], a["verdict"], b["verdict"]) for a, b in zip(runs["old"][0]["rows"], runs["new"][0]["rows"])
              if a["verdict"] != b["verdict"]]
    for name, a, b in differ:
        print(f"verdict differs: {name}: old {a}, new {b}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
