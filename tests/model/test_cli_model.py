"""`kernelsmith model` from the command line on the CPU: --extract-only, --dry-run, and the
errors of bad invocations (one line on stderr, exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args, tmp_path):
    env = {"PYTHONPATH": str(ROOT), "KERNELSMITH_HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", ""),
           "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "kernelsmith.cli", "model", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=600)


def test_extract_only_writes_tasks_and_a_report(tmp_path):
    r = run(str(ROOT / "examples/models/small_convnet.py"), "--extract-only", "--top", "2", "--kinds", "fused",
            "--out", "out", "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    tasks = [g for g in rep["groups"] if g["task"]]
    assert len(tasks) == 2 and all(g["kind"] == "fused" for g in tasks)
    assert all((tmp_path / g["task"]).is_file() for g in tasks)
    assert (tmp_path / "out" / "report.md").is_file()
    assert any(p.name.startswith("ks_weights_") for p in (tmp_path / "out" / "tasks").iterdir())


def test_dry_run_screens_and_compiles_the_generations(tmp_path):
    gen = ROOT / "examples/models/small_convnet_generations.jsonl"
    r = run(str(ROOT / "examples/models/small_convnet.py"), "--dry-run", "--generations", str(gen),
            "--only", "bn+relu", "--out", "out", "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    g = next(g for g in json.loads(r.stdout)["groups"] if g["key"] == "bn+relu")
    assert g["result"]["candidates"] == 1 and g["note"].startswith("dry run: ")
    assert not g["installed"]


def test_bad_invocations(tmp_path):
    model = str(ROOT / "examples/models/tiny_transformer.py")
    cases = [
        ((model,), "give --model M (an LLM), --generations FILE"),
        ((model, "--model", "x", "--generations", "y"), "give --model or --generations, not both"),
        ((model, "--extract-only", "--kinds", "gemm"), "--kinds takes fused, heavy and/or other"),
        ((str(tmp_path / "nope.py"), "--extract-only"), "model file not found"),
        ((model, "--model", "scripted:x.json"), "none is visible"),
    ]
    for args, msg in cases:
        r = run(*args, tmp_path=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error: ") and msg in r.stderr, (args, r.stderr)
