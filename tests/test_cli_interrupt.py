"""Ctrl-C at any point of a command leaves no process behind (sandbox servers included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "tasks" / "level1" / "001_leaky_relu_scale.py"
REPLIES = ROOT / "examples" / "leaky_relu_replies.json"


def interrupt_after(delay: float, args: list[str], cwd: Path, home: Path) -> tuple[int, list[psutil.Process], str]:
    env = dict(os.environ, KERNELSMITH_HOME=str(home), KERNELSMITH_SANDBOX="process",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "kernelsmith.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    seen: list[psutil.Process] = []
    try:
        seen = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running 60 s after Ctrl-C: {args}")
    time.sleep(0.5)
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in left:  # ours: started by the command under test
        p.kill()
    return proc.returncode, left, err


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 2.5])
@pytest.mark.parametrize("kind", ["optimize", "optimize-dry-run", "serve"])
def test_no_process_outlives_ctrl_c(kind, delay, tmp_path):
    args = {"optimize": ["optimize", str(TASK), "--model", f"scripted:{REPLIES}"],
            "optimize-dry-run": ["optimize", str(TASK), "--model", f"scripted:{REPLIES}", "-o", "chains=1",
                                 "--budget", "6", "--dry-run"],
            "serve": ["serve", "--suite", str(ROOT / "tasks" / "level1"), "--no-auth", "--gpus", "0", "--port", "0"],
            }[kind]
    rc, left, err = interrupt_after(delay, args, tmp_path, tmp_path / "home")
    assert left == [], f"left behind: {[(p.pid, p.name()) for p in left]}"
    assert rc in (0, 1, 2, 130), err
    assert "Traceback" not in err
    assert not (tmp_path / "runs.db").exists() or kind == "optimize"
