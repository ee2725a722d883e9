"""The evaluator's compile stage through both sandboxes: candidate files, build
directories and the cache live in the evaluator's cache dir, which the Docker sandbox
mounts at the same path; nvcc runs inside the sandbox."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import Evaluator
from kernelsmith.results import ErrorClass
from kernelsmith.task import Task
from tests.sandbox.conftest import make_sandbox

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tasks" / "level1" / "005_relu.py"
GOOD = (ROOT / "tests" / "fixtures" / "solutions" / "level1_005_relu" / "correct_cupy.py").read_text()
pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


@pytest.mark.parametrize("kind", ["process", "docker"])
def test_compile_stage_in_sandbox(kind, shared_dir):
    cache = Path(tempfile.mkdtemp(prefix=f"ks-ev-{kind}-", dir="/tmp"))
    os.chmod(cache, 0o755)
    try:
        sandbox = make_sandbox(kind, shared_dir)
        with Evaluator(EvalConfig(cache_dir=cache, arch="9.0", compile_workers=1), sandbox=sandbox) as ev:
            task = Task.load(TASK)
            ok = ev.compile(task, GOOD)
            assert ok.ok and ok.backend == "cupy", (ok.message, ok.log)
            assert ev.compile(task, GOOD).cached  # the marker the sandboxed job wrote is visible here
            broken = ev.compile(task, GOOD.replace("__global__", "__global__ int nope = ;", 1))
            assert not broken.ok and broken.error is ErrorClass.COMPILE and "error" in broken.log
    finally:
        shutil.rmtree(cache, ignore_errors=True)
