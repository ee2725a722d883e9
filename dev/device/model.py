"""Whole-model mode and kernelsmith.optimize on a GPU with scripted generations (issue 18).

For each example model (examples/models/tiny_transformer.py, small_convnet.py):
`kernelsmith model` profiles it, extracts its fused groups as tasks, searches each with the
hand-written CuPy kernels of examples/models/*_generations.jsonl (one per group; groups
without one are skipped), installs the verified winners as torch.library ops, checks the
whole model against the original and times both (the harness's discipline), and exports the
winners as a package; the package is then pip-installed into a throwaway target and its
tests re-check every kernel on this GPU. Last, examples/optimize_api.py runs
kernelsmith.optimize on a module. Budget: about 240 s on an H200 (compute-sanitizer off:
`--no-sanitize`; the confirming second evaluation of each new best stays on).

Usage: [KS_MODELS=small_convnet] python3 dev/device/model.py [OUT_DIR]     (needs CuPy, sqlalchemy, alembic, openai importable)
Prints one `E2E <model>: ...` line per model and `PKG <model>: ...` per exported package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = tuple(os.environ.get("KS_MODELS", "tiny_transformer,small_convnet").split(","))  # KS_MODELS: a subset
DEADLINE_S = 235.0


def env() -> dict:
    e = dict(os.environ)
    e.setdefault("KERNELSMITH_HOME", "/tmp/ks")
    e.setdefault("KERNELSMITH_COMPILE_BASELINE", "0")  # torch.compile costs 10-30 s per task
    e.setdefault("KERNELSMITH_MAX_TIMING_SECONDS", "1")
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONUNBUFFERED"] = "1"
    Path(e["KERNELSMITH_HOME"]).mkdir(parents=True, exist_ok=True)
    os.chmod(e["KERNELSMITH_HOME"], 0o755)
    return e


def run(cmd: list[str], e: dict, limit: float) -> int:
    print("$ " + " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, cwd=ROOT, env=e, timeout=max(10.0, limit)).returncode
    except subprocess.TimeoutExpired:
        print(f"timed out after {limit:.0f} s", flush=True)
        return 124


def e2e_line(model: str, out: Path) -> str:
    p = out / model / "report.json"
    if not p.is_file():
        return f"E2E {model}: no report"
    r = json.loads(p.read_text())
    installed = [g["key"] for g in r["groups"] if g["installed"]]
    tasks = ", ".join(f"{g['key']} {g['result']['speedup']:.2f}x" for g in r["groups"]
                      if g.get("result") and g["result"].get("speedup"))
    e = r.get("e2e") or {}
    if not e.get("speedup"):
        return f"E2E {model}: not measured ({r.get('note', '')}); task speedups: {tasks or 'none'}"
    ci = e.get("speedup_ci") or (0, 0)
    return (f"E2E {model}: {e['speedup']:.3f}x end to end (95% CI {ci[0]:.3f}-{ci[1]:.3f}), eager "
            f"{e['eager_ms']:.3f} ms -> {e['optimized_ms']:.3f} ms, {e['samples']} paired samples, outputs within "
            f"tolerance on {e['trials']} fresh input sets (max abs err {e['max_abs_error']:.1e}); installed "
            f"{len(installed)}: {', '.join(installed)}; task speedups: {tasks}")


def main() -> None:
    t0 = time.monotonic()
    out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ks-model-"))
    out.mkdir(parents=True, exist_ok=True)
    e = env()
    e.setdefault("KERNELSMITH_DB", f"sqlite:///{out / 'runs.db'}")
    py = sys.executable
    lines = []
    for model in MODELS:
        left = DEADLINE_S - (time.monotonic() - t0)
        rc = run([py, "-m", "kernelsmith.cli", "model", f"examples/models/{model}.py",
                  "--generations", f"examples/models/{model}_generations.jsonl", "--kinds", "fused", "--top", "8",
                  "--no-sanitize", "--out", str(out / model), "--export", str(out / f"{model}_pkg")],
                 e, min(105.0, left - 25))
        lines.append(e2e_line(model, out) + f" [rc {rc}, {time.monotonic() - t0:.0f} s]")
        print(lines[-1], flush=True)
        pkg = out / f"{model}_pkg"
        if (pkg / "pyproject.toml").is_file() and DEADLINE_S - (time.monotonic() - t0) > 40:
            target = out / f"{model}_site"
            rc = run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                      "--target", str(target), str(pkg)], e, 40)
            # the package alone (and the wheels carried in): kernelsmith's checkout is not on the path
            te = dict(e, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH", "")])))
            try:
                res = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
                                     cwd=out, env=te, capture_output=True, text=True, timeout=45)
                tail = (res.stdout.strip().splitlines() or ["no output"])[-1]
                print(res.stdout[-1500:] + res.stderr[-800:], flush=True)
                lines.append(f"PKG {model}: pip install rc {rc}; re-check on install: {tail} (rc {res.returncode})")
            except subprocess.TimeoutExpired:
                lines.append(f"PKG {model}: pip install rc {rc}; re-check timed out after 45 s")
            print(lines[-1], flush=True)
    left = DEADLINE_S - (time.monotonic() - t0)
    if left > 30:
        rc = run([py, "examples/optimize_api.py", "--out", str(out / "api")], e, left - 5)
        lines.append(f"API examples/optimize_api.py: rc {rc}")
    print("\n== summary ==")
    print("\n".join(lines))
    print(f"total {time.monotonic() - t0:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
