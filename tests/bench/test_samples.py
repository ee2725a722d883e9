"""`bench --samples N`: N independent samples per task, all stored as the run's candidates."""

from __future__ import annotations

import pytest

from kernelsmith.agent import OptimizeRequest
from kernelsmith.bench import run_bench, sample_request
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from tests.bench.test_bench import bench_tasks, replies, two_gpus
from tests.bench.test_cli_bench import run
from tests.search.search_fakes import FakeLLM


def test_sample_request_is_best_of_n_with_budget_n():
    req = OptimizeRequest("", "m", "refine", Budget(max_candidates=16), strategy_options={"x": "1"})
    out = sample_request(req, 5)
    assert (out.strategy, out.budget.max_candidates, out.strategy_options) == ("best-of-n", 5, {"x": "1", "n": 5})
    assert req.strategy == "refine" and req.budget.max_candidates == 16  # the template is not changed
    with pytest.raises(ValueError, match="at least 1"):
        sample_request(req, 0)
    with pytest.raises(ValueError, match="evolve"):
        sample_request(OptimizeRequest("", "m", "evolve"), 3)


def test_bench_with_samples_stores_n_candidates_per_task(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    tasks = bench_tasks(3)
    _, pool = two_gpus()
    req = sample_request(OptimizeRequest("", "fake", llm_concurrency=1), 4)
    out = run_bench(tasks, req, FakeLLM(replies), pool, store)
    assert out.status == "finished"
    assert [len(store.candidates(out.run_id, t.task.hash)) for t in tasks] == [4, 4, 4]
    assert store.get_run(out.run_id).strategy == "best-of-n"


def test_cli_rejects_samples_where_they_cannot_apply(tmp_path):
    db = str(tmp_path / "runs.db")
    r = run("--suite", "tasks", "--samples", "3", "--strategy", "evolve", "--db", db, "--model", "x")
    assert r.exit_code == 2 and "--samples" in r.output and "evolve" in r.output
    r = run("--suite", "tasks", "--samples", "0", "--db", db)
    assert r.exit_code == 2 and "at least 1" in r.output
    r = run("--generations", str(tmp_path / "g.jsonl"), "--samples", "3", "--db", db)
    assert r.exit_code == 2 and "--samples" in r.output
