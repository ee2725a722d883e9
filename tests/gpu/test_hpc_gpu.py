"""The HPC suite on a real GPU: every recorded generation (benchmarks/hpc/generations.jsonl:
CuPy fixtures correct and wrong, CUDA C++ candidates, Triton candidates) gets its expected
verdict. Triton rows are skipped unless the harness runs Triton candidates (the static screen
passes them)."""

from __future__ import annotations

import json

import pytest

from kernelsmith.evaluate import static
from kernelsmith.task import Task
from tests.gpu.conftest import ROOT

ROWS = [json.loads(line) for line in (ROOT / "benchmarks" / "hpc" / "generations.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def results(evaluator):
    items = [(Task.load(ROOT / r["task_path"]), r["code"]) for r in ROWS]
    return dict(zip((r["fixture"] for r in ROWS), evaluator.evaluate_many(items)))


@pytest.mark.gpu
@pytest.mark.parametrize("row", ROWS, ids=[r["fixture"] for r in ROWS])
def test_hpc_generation_verdict(results, row):
    if row.get("needs") == "triton" and not static.screen(row["code"]).ok:
        pytest.skip("this harness does not run Triton candidates yet (the languages work)")
    r = results[row["fixture"]]
    assert r.verdict.value == row["expect"], f"{r.verdict.value} ({r.error.value}): {r.message}\n{r.output[-800:]}"
    if row["expect"] == "correct":
        assert r.check.trials_passed == r.check.trials == 5
        assert r.timing is not None and r.timing.speedup_eager and r.timing.speedup_eager > 0
