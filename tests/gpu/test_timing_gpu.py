"""Timing reproduces: a second session's speedup falls within the first's stated CI."""

from __future__ import annotations

import pytest

from kernelsmith.task import Task
from tests.gpu.conftest import ROOT

SOL = ROOT / "tests" / "fixtures" / "solutions"


@pytest.mark.gpu
@pytest.mark.parametrize("stem,task", [("level1_002_row_softmax", "tasks/level1/002_row_softmax.py"),
                                       ("level1_004_matmul", "tasks/level1/004_matmul.py")])
def test_speedup_reproduces(evaluator, stem, task):
    t = Task.load(ROOT / task)
    code = (SOL / stem / "correct_cupy.py").read_text()
    first, second = evaluator.evaluate(t, code), evaluator.evaluate(t, code)
    for r in (first, second):
        assert r.correct, r.message
        assert r.timing.candidate.median_ms > 0.05, "this test needs kernels over 50 us"
    lo1, hi1 = first.timing.speedup_eager_ci
    lo2, hi2 = second.timing.speedup_eager_ci
    assert lo1 <= hi2 and lo2 <= hi1, (f"first {first.speedup:.4f} [{lo1:.4f}, {hi1:.4f}] vs "
                                       f"second {second.speedup:.4f} [{lo2:.4f}, {hi2:.4f}]")
