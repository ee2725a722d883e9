"""GPU tests: skipped unless a CUDA GPU is visible (CI has none; run them on the device).

They share one Evaluator per session (process sandbox, a private KERNELSMITH cache), so
the fork servers start once.
"""

from __future__ import annotations

import faulthandler
import json
import signal
import tempfile
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A step cut by its time limit (timeout sends SIGTERM) shows where every thread was.
faulthandler.register(signal.SIGTERM, chain=True)


def gpu_visible() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "GPU" in out.stdout


def pytest_collection_modifyitems(config, items):
    if gpu_visible():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU visible (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def evaluator(tmp_path_factory):
    from kernelsmith.config import EvalConfig
    from kernelsmith.evaluate.evaluator import Evaluator
    from kernelsmith.sandbox.local import LocalSandbox

    cache = Path(tempfile.mkdtemp(prefix="ks-gpu-test-", dir="/tmp"))  # jobs may run as nobody
    cache.chmod(0o755)
    # No torch.compile baseline: these tests check verdicts and eager speedups, and compiling
    # each task's reference costs 10-30 s (the 117 fixtures ran past 530 s with it on).
    cfg = EvalConfig(cache_dir=cache, use_cache=False, timing={"max_seconds": 1.5}, eval_timeout=90,
                     compile_timeout=300, compile_baseline=False)
    ev = Evaluator(cfg, sandbox=LocalSandbox())
    yield ev
    ev.close()


def load_manifest(path: Path):
    return json.loads(path.read_text())
