"""Every fixture solution of the task suite gets its verdict on a real GPU."""

from __future__ import annotations

import pytest

from kernelsmith.task import Task
from tests.gpu.conftest import ROOT, load_manifest

MANIFEST = ROOT / "tests" / "fixtures" / "solutions" / "manifest.json"
CASES = [(stem, sol, verdict) for stem, entry in load_manifest(MANIFEST).items()
         for sol, verdict in entry["solutions"].items()]


@pytest.fixture(scope="module")
def results(evaluator):
    manifest = load_manifest(MANIFEST)
    items, keys = [], []
    for stem, sol, _ in CASES:
        task = Task.load(ROOT / manifest[stem]["task"])
        items.append((task, (MANIFEST.parent / stem / sol).read_text()))
        keys.append((stem, sol))
    return dict(zip(keys, evaluator.evaluate_many(items)))


@pytest.mark.gpu
@pytest.mark.parametrize("stem,solution,verdict", CASES, ids=[f"{s}/{f}" for s, f, _ in CASES])
def test_fixture_verdict(results, stem, solution, verdict):
    r = results[(stem, solution)]
    assert r.verdict.value == verdict, f"{r.verdict.value} ({r.error.value}): {r.message}\n{r.output[-800:]}"
    if verdict == "correct":
        t = r.timing
        assert t is not None and t.candidate is not None and t.speedup_eager and t.speedup_eager > 0
        assert t.rechecked_outputs >= len(t.candidate.samples_ms)
        assert r.check.trials_passed == r.check.trials == 5
        assert t.bound is not None and 0 < t.bound.fraction
