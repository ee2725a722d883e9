"""Many writers at once, and a writer killed with SIGKILL: nothing committed is lost and
the database stays sound. On SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from kernelsmith.search.types import Candidate
from kernelsmith.store import RunStore
from store_helpers import code, correct_result, make_task, write_evaluated

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run(store: RunStore):
    task = make_task()
    store.upsert_task(task)
    return store.create_run("optimize", "gpt-test", "evolve", {}, {}), task


def test_threads_and_processes_lose_nothing(store, db_url):
    """4 threads on one shared store and 2 processes with their own: 200 candidates and
    200 evaluations, with readers running alongside."""
    rid, task = _run(store)
    ctx = mp.get_context("spawn")  # a fresh interpreter: nothing inherited from this one
    procs = [ctx.Process(target=write_evaluated, args=(db_url, rid, task.hash, f"proc{i}", 50)) for i in range(2)]
    for p in procs:
        p.start()
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn, *args):
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader():
        while not stop.is_set():
            store.candidates(rid)
            store.totals(rid)
            store.best(rid)
            time.sleep(0.01)

    writers = [threading.Thread(target=guarded, args=(write_evaluated, db_url, rid, task.hash, f"thr{i}", 25, store))
               for i in range(4)]
    readers = [threading.Thread(target=guarded, args=(reader,))]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    for p in procs:
        p.join(120)
    stop.set()
    for t in readers:
        t.join(30)
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0]

    cands = store.candidates(rid)
    assert len(cands) == 200 and all(c.result is not None and c.result.correct for c in cands)
    written = sorted((c.strategy_info["writer"], c.strategy_info["i"]) for c in cands)
    expected = sorted([(f"proc{p}", i) for p in range(2) for i in range(50)] +
                      [(f"thr{t}", i) for t in range(4) for i in range(25)])
    assert written == expected
    assert all(c.completion is not None and c.completion.text == c.code for c in cands)
    with store.engine.connect() as conn:
        seqs = sorted(conn.execute(text("SELECT seq FROM candidates")).scalars())
    assert seqs == list(range(1, 201))  # one per candidate, none skipped, none repeated
    t = store.totals(rid)
    assert (t["candidates"], t["evaluations"], t["llm_calls"], t["by_verdict"]) == (200, 200, 200, {"correct": 200})
    top = max(cands, key=lambda c: c.result.speedup)
    assert store.get_run(rid).best_candidate_id == top.id == store.best(rid).id
    assert store.integrity_check() == "ok"


def test_sigkill_loses_only_what_was_in_flight(store, db_url):
    rid, task = _run(store)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from store_helpers import kill_writer; kill_writer(*sys.argv[1:])",
         db_url, rid, task.hash], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(lines) < 60 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    lines += out.splitlines(keepends=True)  # printed before the kill: committed too
    assert child.returncode == -signal.SIGKILL, err
    assert len(lines) >= 60, f"the writer wrote too little before the deadline: {err[-2000:]}"

    after = RunStore(db_url)  # opens (and checks the schema) after the crash
    try:
        assert after.integrity_check() == "ok"
        stored = {c.id: c for c in after.candidates(rid)}
        evaluated = {}
        for line in lines:
            cid, eid, i = line.split()
            assert cid in stored, f"committed candidate {cid} is gone"
            assert stored[cid].code == code(int(i)) and stored[cid].strategy_info == {"i": int(i)}
            if eid != "-":
                evaluated[cid] = int(i)
                assert stored[cid].result is not None and stored[cid].result.speedup == 1 + int(i) / 1000
        # at most one candidate beyond what was reported, and at most one without a result
        assert len(stored) - len({ln.split()[0] for ln in lines}) <= 1
        unfinished = [c.id for c in after.pending_candidates(rid)]
        assert len(unfinished) <= 1 and set(unfinished).isdisjoint(evaluated)
        best = max((c for c in stored.values() if c.result), key=lambda c: c.result.speedup)
        assert after.get_run(rid).best_candidate_id == best.id and evaluated[best.id] >= max(evaluated.values())
        # the database takes writes again at once: no lock was left behind
        t0 = time.monotonic()
        cid = after.add_candidate(rid, task.hash, Candidate(code=code("after")))
        after.add_evaluation(cid, correct_result(task, 9.0))
        assert time.monotonic() - t0 < 5 and after.best(rid).id == cid
    finally:
        after.close()


def test_forked_child_uses_its_own_connections(store):
    """A store opened before os.fork works in the child and, afterwards, in the parent."""
    rid, task = _run(store)
    store.candidates(rid)  # the pool now holds a connection the child must not share
    ctx = mp.get_context("fork")
    p = ctx.Process(target=write_evaluated, args=(store.url, rid, task.hash, "forked", 5, store))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    write_evaluated(store.url, rid, task.hash, "parent", 5, store)
    assert len(store.candidates(rid)) == 10 and store.integrity_check() == "ok"
