"""The whole optimize loop on the CPU: the real openai client against a loopback server
scripted with kernels, a recorded-results evaluator, and a real SQLite runs.db."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernelsmith.agent import OptimizeRequest, optimize, write_best
from kernelsmith.llm.client import OpenAIModel
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from tests.agent.common import TASK_SRC, evaluator_for, kernel_reply
from tests.llm.fake_server import FakeOpenAIServer, Reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def task_file(tmp_path):
    p = tmp_path / "relu.py"
    p.write_text(TASK_SRC)
    return p


def _db_url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url = os.environ.get("KERNELSMITH_TEST_PG_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide PostgreSQL: KERNELSMITH_TEST_PG_URL is unset (.ci/postgres.sh)")
        pytest.skip("set KERNELSMITH_TEST_PG_URL (eval \"$(bash .ci/postgres.sh)\") to run on PostgreSQL")
    return url


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_refine_feeds_back_and_writes_the_best(tmp_path, task_file, db):
    """The same run on SQLite and on PostgreSQL."""
    replies = [kernel_reply(t) for t in ("broken1", "wrong1", "fast15", "fast23")]
    with FakeOpenAIServer(default=Reply(texts=kernel_reply("fast11"))) as srv:
        srv.push(*[Reply(texts=r) for r in replies])
        store = RunStore(_db_url(db, tmp_path))
        llm = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test", backoff_s=0.01)
        req = OptimizeRequest(str(task_file), "fake-model", "refine", Budget(max_candidates=6),
                              strategy_options={"chains": 1}, llm_concurrency=1)
        run_id, out = optimize(req, llm, evaluator_for(), store, {"system": {"gpu": "NVIDIA H200"}})
        prompts = [r.body["messages"][-1]["content"] for r in srv.chat_requests]
    assert out.best is not None and abs(out.speedup - 2.3) < 1e-9
    # the compile error of round 1 reaches the prompt of round 2, the mismatch that of round 3
    assert 'identifier "blockIdx_x" is undefined' in prompts[1]
    assert "outside atol=1e-4" in prompts[2]
    tot = store.totals(run_id)
    assert tot["candidates"] == len(out.candidates) == tot["llm_calls"], (out.stop_reason, tot)
    assert len(out.candidates) >= 5
    assert tot["by_verdict"]["compile_error"] == 1 and tot["by_verdict"]["incorrect"] == 1
    assert store.get_run(run_id).status == "finished"
    out_file = write_best(store, run_id, tmp_path / "best.py")
    text = out_file.read_text()
    assert "# kernel: fast23" in text and "2.300x" in text
    assert "class ModelNew" in text
    compile(text, "best.py", "exec")  # a runnable Python file
    report = out_file.with_suffix(".md").read_text()
    assert "Lineage" in report and store.best(run_id).id in report


def test_no_endpoint_answering_stops_cleanly(tmp_path, task_file):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    llm = OpenAIModel("fake-model", base_url="http://127.0.0.1:9/v1", api_key="sk-test", backoff_s=0.01,
                      max_retries=1, timeout_s=2)
    req = OptimizeRequest(str(task_file), "fake-model", "best-of-n", Budget(max_candidates=4))
    run_id, out = optimize(req, llm, evaluator_for(), store, {})
    assert out.stop_reason.startswith("llm")
    assert out.best is None
    assert store.totals(run_id)["llm_errors"] >= 1  # the failed call is on record


def test_killed_run_resumes_losing_only_what_was_in_flight(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with FakeOpenAIServer(responder=lambda body: Reply(texts=kernel_reply(f"fast{12 + len(body['messages'][-1]['content']) % 7}"))) as srv:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "agent" / "optimize_child.py"), db,
                                  srv.base_url, str(task_file), "new", "0.5"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        store = RunStore(db)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until a few candidates are evaluated
            runs = store.list_runs()
            if runs and store.totals(runs[0].id)["evaluations"] >= 3:
                break
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert store.integrity_check() == "ok"
        run_id = store.list_runs()[0].id
        before = store.totals(run_id)
        assert before["evaluations"] >= 3 and before["evaluations"] < 40
        assert store.get_run(run_id).status == "running"  # killed: nobody marked it
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "agent" / "optimize_child.py"), db,
                               srv.base_url, str(task_file), run_id, "0"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    after = store.totals(run_id)
    assert after["evaluations"] >= before["evaluations"]  # nothing recorded was lost
    assert after["by_verdict"].get("pending", 0) == 0  # in-flight candidates were evaluated on resume
    assert after["candidates"] >= 40
    assert store.get_run(run_id).status == "finished"


def test_the_sanitizer_runs_by_default_and_disqualifies_a_racy_best(tmp_path, task_file):
    """compute-sanitizer on every new best is on unless asked off: a faster kernel with a
    race (racecheck finds it) does not become the run's best; the clean one stays."""
    ev = evaluator_for()
    checked = []

    def sanitize(task, code):
        checked.append(code)
        return ("memcheck: 0 error(s); racecheck: 3 error(s) - first: Error: Race reported" if "fast30" in code
                else "memcheck: 0 error(s); racecheck: 0 error(s)")

    ev.sanitize = sanitize
    replies = [kernel_reply(t) for t in ("fast15", "fast30", "fast12")]
    with FakeOpenAIServer(default=Reply(texts=kernel_reply("fast11"))) as srv:
        srv.push(*[Reply(texts=r) for r in replies])
        store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
        llm = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test", backoff_s=0.01)
        req = OptimizeRequest(str(task_file), "fake-model", "refine", Budget(max_candidates=3),
                              strategy_options={"chains": 1}, llm_concurrency=1)
        assert req.sanitize  # the default
        run_id, out = optimize(req, llm, ev, store, {"system": {"gpu": "NVIDIA H200"}})
    assert len(checked) == 2  # fast15 (first best) and fast30 (would-be best); not fast12
    assert abs(out.speedup - 1.5) < 1e-9
    from kernelsmith.task import Task

    racy = [c for c in store.candidates(run_id, Task.load(task_file).hash) if "fast30" in c.code][0]
    assert racy.result.verdict.value == "incorrect" and "racecheck: 3 error(s)" in racy.result.message
    off = OptimizeRequest(str(task_file), "fake-model", sanitize=False)
    assert not off.sanitize
