"""The CLI on a machine without a GPU: clear errors and non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "tasks" / "level1" / "001_leaky_relu_scale.py"
CAND = ROOT / "tests" / "fixtures" / "solutions" / "level1_001_leaky_relu_scale" / "correct_cupy.py"


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kernelsmith.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)


def test_help_lists_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("eval", "doctor", "compile"):
        assert cmd in out.stdout


def test_eval_without_gpu_fails_clearly(tmp_path):
    import os

    env = dict(os.environ, KERNELSMITH_HOME=str(tmp_path), KERNELSMITH_SANDBOX="process")
    out = run("eval", str(TASK), str(CAND), env=env)
    assert out.returncode == 2
    assert "no CUDA GPU" in out.stderr and "kernelsmith compile" in out.stderr


def test_eval_rejects_malformed_task(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nclass Model: pass\n")
    out = run("eval", str(bad), str(CAND))
    assert out.returncode == 2
    assert "lacks function get_inputs" in out.stderr


def test_eval_missing_candidate(tmp_path):
    out = run("eval", str(TASK), str(tmp_path / "none.py"))
    assert out.returncode == 2 and "candidate file not found" in out.stderr


def test_doctor_json_reports_no_gpu():
    out = run("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["gpus"] == [] and report["can_evaluate"] is False
    assert report["sandbox"]["name"] in ("process", "docker")
    assert report["can_compile"] is True  # nvcc is installed here and in CI


def test_compile_command_json(tmp_path):
    import os

    env = dict(os.environ, KERNELSMITH_HOME=str(tmp_path), KERNELSMITH_SANDBOX="process")
    out = run("compile", str(TASK), str(CAND), "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True
