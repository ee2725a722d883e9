"""The harness's GPU stage run on the CPU: CUDA events, synchronize and the profiler are
replaced by host-side stand-ins, everything else (prepare, surface, checks, the timing
loop and its per-call checks) is the real code. Candidates here compute with torch ops;
the static screen is not involved, so what is tested is the runtime alone."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

TASK = '''
import torch
import torch.nn as nn

N = 4096


class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.tanh(x) * self.scale + x


def get_inputs():
    return [torch.randn(64, N)]


def get_init_inputs():
    return [1.5]
'''

HONEST = '''
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return torch.tanh(x) * self.scale + x
'''


def _args(workdir: Path, candidate: str, task: str) -> dict:
    (workdir / "task.py").write_text(task)
    (workdir / "cand.py").write_text(textwrap.dedent(candidate))
    build = workdir / "build"
    build.mkdir(exist_ok=True)
    timing = {"min_samples": 15, "max_samples": 40, "max_seconds": 3.0, "target_ci": 0.5,
              "warmup_ms": 1.0, "warm_ms": 0.0, "hide_launch": False}
    return {"task_path": str(workdir / "task.py"), "candidate_path": str(workdir / "cand.py"),
            "build_dir": str(build), "device": "cpu", "trials": 3, "timing": timing,
            # CPU time on a shared 2-core machine drifts by 2x between the reference's
            # pristine timing and the paired session (seen in CI-like runs): the bound the
            # GPU suite holds (1.25x) would fail honest candidates here
            "limits": {"reference_slower": 4.0}}


class _Event:
    def __init__(self, enable_timing=True):
        self.t = 0.0

    def record(self, stream=None):
        self.t = time.perf_counter()


def install(monkeypatch) -> None:
    """Point the GPU-only seams at the CPU (before the surface is captured). `monkeypatch`
    is pytest's, or anything with its setattr(obj, name, value) (a sandboxed job's)."""
    import torch

    from kernelsmith.harness import evaluate, prepare, provenance, timing

    monkeypatch.setattr(timing, "_Event", _Event)
    monkeypatch.setattr(timing, "_record", _Event.record)
    monkeypatch.setattr(timing, "_elapsed", lambda s, e: (e.t - s.t) * 1e3)
    for mod in (timing, evaluate, prepare):
        monkeypatch.setattr(mod, "_sync", lambda: None)
    from torch.profiler import ProfilerActivity, profile

    monkeypatch.setattr(provenance, "profiler", lambda: profile(activities=[ProfilerActivity.CPU]))
    # CPU candidates have no __global__ kernels; the provenance rule is the GPU suite's
    monkeypatch.setattr(provenance, "kernel_names", lambda capture: {"cpu_stand_in"})
    torch.set_num_threads(1)


class Setter:
    """monkeypatch.setattr for a process that dies after the job (a sandbox's child)."""

    @staticmethod
    def setattr(obj, name, value):
        setattr(obj, name, value)


def evaluate_here(workdir: Path, candidate: str, task: str = TASK) -> dict:
    """One evaluation in this process (a sandboxed job: the job's process is thrown away)."""
    from kernelsmith.harness import evaluate as ev

    return ev.run(_args(workdir, candidate, task))


def evaluate(tmp_path: Path, candidate: str, task: str = TASK, **args) -> dict:
    """One evaluation in a forked child (as the fork server runs them): what a hostile
    candidate changes in the interpreter dies with the child."""
    from kernelsmith.harness import evaluate as ev

    full = {**_args(tmp_path, candidate, task), **args}
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: evaluate, report through the pipe, never return
        code = 0
        try:
            os.close(rfd)
            payload = json.dumps(ev.run(full), default=str).encode()
        except BaseException as exc:  # noqa: BLE001
            payload, code = json.dumps({"harness_error": repr(exc)}).encode(), 3
        with os.fdopen(wfd, "wb") as w:
            w.write(payload)
        os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    out = json.loads(data or b"{}")
    assert "harness_error" not in out, out
    return out
