"""Resilience of the whole program (issue 5), on the CPU: the real openai client against the
loopback fake server, a recorded-results evaluator, a real SQLite runs.db, and the CLI's own
error handling (tests/resilience/cli_child.py runs `kernelsmith optimize` in a child)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kernelsmith.agent import OptimizeRequest, optimize
from kernelsmith.llm.client import OpenAIModel
from kernelsmith.results import Verdict
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from tests.agent.common import TASK_SRC, evaluator_for, kernel_reply, speed_of
from tests.llm.fake_server import Drop, FakeOpenAIServer, Garbage, Reply, Status
from tests.search.search_fakes import tag_of

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "resilience" / "cli_child.py"


@pytest.fixture
def task_file(tmp_path):
    p = tmp_path / "relu.py"
    p.write_text(TASK_SRC)
    return p


def counting(prefix: str = "fast"):
    """A responder numbering its replies: fast11, fast12, ... (each a distinct, correct kernel)."""
    lock, n = threading.Lock(), [10]

    def responder(body):
        with lock:
            n[0] += 1
            return Reply(texts=kernel_reply(f"{prefix}{n[0]}"))
    return responder


def run_cli(args: list[str], tmp_path, timeout: float = 60, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200", **{k: str(v) for k, v in env.items()})
    e.pop("KERNELSMITH_DB", None)
    return subprocess.run([sys.executable, str(CHILD), *args], env=e, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def assert_intact(store: RunStore, run_id: str) -> None:
    """Every stored candidate is whole: its code parses to a tag, and any result matches it."""
    for c in store.candidates(run_id):
        if c.format_error:
            continue
        tag = tag_of(c.code)
        assert tag, c.code[:200]
        if c.result is not None:
            assert c.result.verdict is Verdict.CORRECT
            assert abs(c.result.speedup - speed_of(tag)) < 1e-9


# --- 1. the disk fills up mid-run -----------------------------------------------------------

def test_full_disk_mid_run_fails_cleanly_without_corruption(tmp_path, task_file):
    db_path = tmp_path / "runs.db"
    db = f"sqlite:///{db_path}"
    RunStore(db).close()  # the schema exists; the child's writes are the run's alone
    limit = db_path.stat().st_size + 96 * 1024
    with FakeOpenAIServer(responder=counting()) as srv:
        p = run_cli([str(task_file), "--model", "fake-model", "--base-url", srv.base_url, "--db", db,
                     "--strategy", "best-of-n", "--budget", "200", "-o", "n=200",
                     "--out", str(tmp_path / "best.py")], tmp_path, KS_FSIZE=limit, OPENAI_API_KEY="sk-test")
    err = p.stderr.strip()
    assert p.returncode in (1, 2), (p.returncode, p.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    message = " ".join(err[err.rindex("error:"):].split())  # one message (rich may wrap it)
    assert "database" in message and "disk" in message and "--resume" in message, err[-3000:]
    # without the limit the database opens, is sound, and holds what was written before
    assert sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = RunStore(db)
    assert store.integrity_check() == "ok"
    run = store.list_runs()[0]
    tot = store.totals(run.id)
    assert 1 <= tot["candidates"] < 200, tot  # the disk filled mid-run: some rows, not all
    assert tot["evaluations"] >= 1, tot
    assert_intact(store, run.id)
    assert run.status != "finished"


# --- 2. the model endpoint goes away mid-run --------------------------------------------------

def answers_then_drops(n: int):
    """A server responder: `n` kernels, then every connection dropped (the endpoint is gone)."""
    answer = counting()
    served = [0]

    def responder(body):
        served[0] += 1
        return answer(body) if served[0] <= n else Drop()

    return responder


def test_lost_endpoint_stops_resumably_and_resume_reaches_the_budget(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    responder = answers_then_drops(3)

    req = OptimizeRequest(str(task_file), "fake-model", "best-of-n", Budget(max_candidates=8),
                          strategy_options={"n": 8}, llm_concurrency=1)
    with FakeOpenAIServer(responder=responder) as srv:
        url = srv.base_url
        store = RunStore(db)
        llm = OpenAIModel("fake-model", base_url=url, api_key="sk-test", backoff_s=0.01, max_retries=2)
        run_id, out = optimize(req, llm, evaluator_for(), store, {})
    assert out.stop_reason.startswith("llm:"), out.stop_reason
    assert store.get_run(run_id).status == "interrupted"  # resumable, not "finished"
    tot = store.totals(run_id)
    assert tot["evaluations"] == 3 and tot["by_verdict"].get("pending", 0) == 0, tot
    assert tot["llm_errors"] >= 1
    # the endpoint is gone for good now (connection refused) ...
    llm = OpenAIModel("fake-model", base_url=url, api_key="sk-test", backoff_s=0.01, max_retries=1,
                      timeout_s=2)
    run_id2, out = optimize(req, llm, evaluator_for(), store, {}, run_id=run_id)
    assert run_id2 == run_id and out.stop_reason.startswith("llm:")
    assert store.totals(run_id)["evaluations"] == 3
    assert store.get_run(run_id).status == "interrupted"
    # ... and back: --resume continues to the budget
    with FakeOpenAIServer(responder=counting("fast3")) as srv:
        llm = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test", backoff_s=0.01)
        _, out = optimize(req, llm, evaluator_for(), store, {}, run_id=run_id)
    tot = store.totals(run_id)
    assert tot["evaluations"] == 8 and tot["candidates"] == 8, (out.stop_reason, tot)
    assert store.get_run(run_id).status == "finished"
    assert_intact(store, run_id)


def test_lost_endpoint_cli_says_so_and_exits_nonzero(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    responder = answers_then_drops(3)

    with FakeOpenAIServer(responder=responder) as srv:
        p = run_cli([str(task_file), "--model", "fake-model", "--base-url", srv.base_url, "--db", db,
                     "--strategy", "best-of-n", "--budget", "8", "-o", "n=8", "--out", str(tmp_path / "best.py")],
                    tmp_path, OPENAI_API_KEY="sk-test")
    assert p.returncode == 2, (p.stdout[-2000:], p.stderr[-2000:])
    assert "--resume" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert (tmp_path / "best.py").exists()  # the best so far is still written
    store = RunStore(db)
    assert store.list_runs()[0].status == "interrupted"


# --- 3. rate limits and a bad key ------------------------------------------------------------

def test_rate_limited_every_other_call_still_completes_the_budget(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    answer = counting()
    served = [0]
    lock = threading.Lock()

    def responder(body):
        with lock:
            served[0] += 1
            k = served[0]
        return Status(429, "Rate limit reached", retry_after=0.02) if k % 2 else answer(body)

    with FakeOpenAIServer(responder=responder) as srv:
        p = run_cli([str(task_file), "--model", "fake-model", "--base-url", srv.base_url, "--db", db,
                     "--strategy", "best-of-n", "--budget", "6", "-o", "n=6", "--out", str(tmp_path / "best.py")],
                    tmp_path, OPENAI_API_KEY="sk-test", KS_MAX_RETRIES=12)
        n_requests = len(srv.chat_requests)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    store = RunStore(db)
    run = store.list_runs()[0]
    tot = store.totals(run.id)
    assert tot["evaluations"] == 6 and run.status == "finished", tot
    assert n_requests >= 12 and served[0] == n_requests  # six answers, and (at least) six 429s before them


def test_invalid_key_stops_at_once_with_exit_2(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with FakeOpenAIServer(api_key="sk-right", responder=counting()) as srv:
        p = run_cli([str(task_file), "--model", "fake-model", "--base-url", srv.base_url, "--db", db,
                     "--strategy", "best-of-n", "--budget", "8", "-o", "n=8", "--out", str(tmp_path / "best.py")],
                    tmp_path, OPENAI_API_KEY="sk-wrong", KS_MAX_RETRIES=5)
        n_requests = len(srv.chat_requests)
    assert p.returncode == 2, (p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    assert "key" in p.stderr.lower() and "401" in p.stderr, p.stderr[-2000:]
    # no retries: at most one request per call the loop had in flight (4 by default), none retried
    assert 1 <= n_requests <= 4, n_requests
    store = RunStore(db)
    run = store.list_runs()[0]
    assert store.totals(run.id)["candidates"] == 0 and run.status != "finished"


# --- 4. odd completions mid-run ---------------------------------------------------------------

def test_huge_and_garbage_completions_are_format_errors_and_the_run_goes_on(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    huge = "Let me think. " * 80_000  # ~1.1 MB, no code
    huge_with_code = "x" * 1_000_000 + "\n" + kernel_reply("fast40")
    with FakeOpenAIServer(responder=counting()) as srv:
        srv.push(Reply(texts=kernel_reply("fast11")), Reply(texts=huge),
                 Garbage(),  # a malformed HTTP body: retried by the client
                 Reply(texts="\x00\ufffd<<<<<<< SEARCH\n```pyth\n}}}{{{ ```` \udcff"[:-1]),
                 Reply(texts=huge_with_code))
        store = RunStore(db)
        llm = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test", backoff_s=0.01)
        req = OptimizeRequest(str(task_file), "fake-model", "refine", Budget(max_candidates=7),
                              strategy_options={"chains": 1, "rounds": 7}, llm_concurrency=1)
        run_id, out = optimize(req, llm, evaluator_for(), store, {})
    assert not out.stop_reason.startswith("llm"), out.stop_reason
    tot = store.totals(run_id)
    assert tot["candidates"] == 7, (out.stop_reason, tot, [c.format_error for c in store.candidates(run_id)])
    cands = store.candidates(run_id)
    assert sum(1 for c in cands if c.format_error) == 2, [c.format_error for c in cands]
    assert any(tag_of(c.code) == "fast40" for c in cands)  # code found after a megabyte of noise
    assert abs(out.speedup - 4.0) < 1e-9
    assert store.get_run(run_id).status == "finished"
    assert store.integrity_check() == "ok"


# --- 5. a task whose reference is broken ------------------------------------------------------

def _invalid_task_run(tmp_path, task_file):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    log = tmp_path / "evals.log"
    with FakeOpenAIServer(responder=counting()) as srv:
        p = run_cli([str(task_file), "--model", "fake-model", "--base-url", srv.base_url, "--db", db,
                     "--strategy", "best-of-n", "--budget", "40", "-o", "n=40", "--out", str(tmp_path / "best.py")],
                    tmp_path, OPENAI_API_KEY="sk-test", KS_INVALID_TASK=1, KS_EVAL_LOG=log)
        n_requests = len(srv.chat_requests)
    return p, n_requests, len(log.read_text().splitlines()), RunStore(db)


def test_invalid_task_fails_with_a_clear_message(tmp_path, task_file):
    p, _, _, store = _invalid_task_run(tmp_path, task_file)
    assert p.returncode == 2, (p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    message = " ".join(p.stderr[p.stderr.rindex("error:"):].split())
    assert "invalid task" in message and "get_inputs exploded" in message, p.stderr[-2000:]
    assert store.list_runs()[0].status == "failed"


def test_invalid_task_stops_promptly(tmp_path, task_file):
    p, n_requests, evaluated, store = _invalid_task_run(tmp_path, task_file)
    # one batch (at most the 4 requests in flight) shows the reference is broken: no more spending
    assert n_requests <= 8 and evaluated <= 8, (n_requests, evaluated)
