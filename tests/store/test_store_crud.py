"""Run store round trips with real EvalResults: runs, tasks, LLM calls, candidates,
evaluations, best / lineage / totals / pending, baselines. Each test runs on SQLite and
PostgreSQL (see conftest)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from kernelsmith.results import ErrorClass, SystemInfo, Verdict
from kernelsmith.search.types import Candidate
from kernelsmith.store import NotFound, RunStore
from store_helpers import SYSTEM, code, completions, correct_result, failed_result, make_task


def _run(store: RunStore, **kw) -> str:
    args = dict(kind="optimize", model="gpt-test", strategy="refine", config={"trials": 5, "arch": None},
                budget={"max_candidates": 8, "usd": 1.5})
    args.update(kw)
    return store.create_run(**args)


def _setup(store: RunStore, k: int = 2):
    task = make_task(k)
    store.upsert_task(task, level=1, problem_id=k, origin=f"kernelbench:L1/P{k}")
    return _run(store), task


def _rows(store: RunStore, sql: str, **params):
    with store.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_run_round_trip(store):
    rid = _run(store, label="replay")
    assert rid.startswith("r-") and len(rid) == 10
    info = store.get_run(rid)
    assert (info.kind, info.status, info.model, info.strategy, info.label) == \
        ("optimize", "running", "gpt-test", "refine", "replay")
    assert info.config == {"trials": 5, "arch": None} and info.budget == {"max_candidates": 8, "usd": 1.5}
    assert info.created_at.tzinfo is not None and info.best_candidate_id is None
    assert store.get_run(rid[:6]).id == rid  # a unique prefix is enough

    store.set_run_status(rid, "interrupted", notes="SIGINT")
    info2 = store.get_run(rid)
    assert info2.status == "interrupted" and info2.notes == "SIGINT" and info2.updated_at >= info.updated_at
    with pytest.raises(ValueError, match="unknown run status"):
        store.set_run_status(rid, "paused")
    with pytest.raises(ValueError, match="unknown run kind"):
        _run(store, kind="train")
    with pytest.raises(NotFound):
        store.get_run("r-00000000")
    with pytest.raises(NotFound):
        store.set_run_status("r-00000000", "failed")

    bench = _run(store, kind="bench")
    assert [r.id for r in store.list_runs()] == [bench, rid]
    assert [r.id for r in store.list_runs(kind="bench")] == [bench]
    assert [r.id for r in store.list_runs(label="replay")] == [rid]
    assert len(store.list_runs(limit=1)) == 1


def test_tasks_and_run_tasks(store):
    rid = _run(store, kind="bench")
    t1, t2 = make_task(2), make_task(3)
    store.upsert_task(t1)
    store.upsert_task(t1, level=1, problem_id=7, origin="kernelbench:L1/P7")  # fills in, no duplicate
    store.upsert_task(t2, origin="tasks/level1/scale_3.py")
    row = _rows(store, "SELECT name, level, problem_id, origin, source FROM tasks WHERE hash = :h", h=t1.hash)
    assert row == [("scale_2", 1, 7, "kernelbench:L1/P7", t1.source)]
    assert store.count("tasks") == 2

    store.set_run_task(rid, t2.hash, "pending")
    store.set_run_task(rid, t1.hash, "pending")
    store.set_run_task(rid, t2.hash, "running")
    cid = store.add_candidate(rid, t2.hash, Candidate(code=code(1)))
    store.set_run_task(rid, t2.hash, "done", best_candidate_id=cid)
    tasks = store.run_tasks(rid)
    assert [(t.task_hash, t.status, t.best_candidate_id, t.name) for t in tasks] == \
        [(t2.hash, "done", cid, "scale_3"), (t1.hash, "pending", None, "scale_2")]
    done = {t.task_hash for t in tasks if t.status == "done"}  # what a resumed bench skips
    assert done == {t2.hash}
    with pytest.raises(ValueError):
        store.set_run_task(rid, t1.hash, "skipped")


def test_llm_call_and_candidates_round_trip(store):
    rid, task = _setup(store)
    msgs = [{"role": "system", "content": "You write CUDA."}, {"role": "user", "content": "make it fast"}]
    comps = completions([code("a"), code("b"), "no code here"])
    comps[1].finish_reason = "length"
    call = store.add_llm_call(rid, "gpt-test", msgs, comps, task_hash=task.hash)
    assert isinstance(call, int)
    failed = store.add_llm_call(rid, "gpt-test", msgs, [], error="HTTP 429: rate limited")

    a = Candidate(code=code("a"), strategy_info={"chain": 0, "round": 1}, completion=comps[0], prompt=msgs)
    b = Candidate(code=code("b"), parents=[], strategy_info={"chain": 1}, completion=comps[1], prompt=msgs)
    bad = Candidate(code="", format_error="no ```cuda block in the reply", completion=comps[2])
    for c in (a, b, bad):
        returned = store.add_candidate(rid, task.hash, c, llm_call_id=call)
        assert returned == c.id and c.id.startswith("c-")
    child = Candidate(code=code("c"), parents=[b.id, a.id], strategy_info={"op": "crossover"})
    store.add_candidate(rid, task.hash, child)

    got = store.candidates(rid)
    assert [c.id for c in got] == [a.id, b.id, bad.id, child.id]  # insertion order
    ga, gb, gbad, gchild = got
    assert ga.code == a.code and ga.strategy_info == {"chain": 0, "round": 1} and ga.prompt == msgs
    assert ga.completion.text == code("a") and gb.completion.text == code("b")
    assert gb.completion.finish_reason == "length" and gb.completion.call_id == "resp_123"
    assert dataclasses.asdict(ga.completion.usage) == dataclasses.asdict(comps[0].usage)
    assert ga.completion.cost_usd == pytest.approx(0.01) and ga.completion.latency_s == pytest.approx(2.5)
    assert gbad.format_error.startswith("no ```cuda") and gbad.completion.text == "no code here"
    assert gchild.parents == [b.id, a.id] and gchild.completion is None and gchild.prompt == []
    assert all(c.result is None for c in got)
    assert store.candidate(child.id).parents == [b.id, a.id] and store.candidate("c-nope") is None

    status = dict(_rows(store, "SELECT id, status FROM candidates"))
    assert status == {a.id: "proposed", b.id: "proposed", bad.id: "format_error", child.id: "proposed"}
    assert _rows(store, "SELECT error, prompt_tokens FROM llm_calls WHERE id = :i", i=failed) == \
        [("HTTP 429: rate limited", 0)]


def test_evaluation_round_trip(store):
    rid, task = _setup(store)
    cand = Candidate(code=code(1))
    cid = store.add_candidate(rid, task.hash, cand)
    store.mark_evaluating(cid)
    assert _rows(store, "SELECT status FROM candidates") == [("evaluating",)]
    result = correct_result(task, 2.5)
    eid = store.add_evaluation(cid, result)

    back = store.candidates(rid)[0].result
    assert back == result  # the whole EvalResult, exactly
    assert back.timing.speedup_eager_ci == (2.5 * 0.95, 2.5 * 1.05)
    row = _rows(store, "SELECT verdict, error_class, speedup_eager, speedup_eager_ci_low, speedup_compile, "
                       "candidate_ms, eager_ms, compiled_ms, max_abs_error, compile_seconds, gpu_seconds, cached "
                       "FROM evaluations WHERE id = :i", i=eid)[0]
    assert row[:2] == ("correct", "none")
    assert list(row[2:11]) == pytest.approx([2.5, 2.375, 1.875, 0.8, 2.0, 1.5, 1e-6, 12.5, 4.8])  # GPU s: not the compile
    assert not row[11]
    stages = _rows(store, "SELECT stage, ok, seconds FROM evaluation_stages WHERE evaluation_id = :i "
                          "ORDER BY seconds", i=eid)
    assert [(s, bool(ok)) for s, ok, _ in stages] == \
        [("static", True), ("check", True), ("time", True), ("compile", True)]
    hw = _rows(store, "SELECT gpu, compute_capability, driver, torch, cuda, hostname, fingerprint FROM hardware")
    assert len(hw) == 1 and hw[0][:6] == ("NVIDIA H200", "9.0", "580.65", "2.13.0", "13.0", "node-1")
    assert store.get_run(rid).hardware_id is not None
    assert _rows(store, "SELECT status FROM candidates") == [("evaluated",)]

    # the same hardware again: one row; a failure with NaN stores NULL and round-trips as None
    cid2 = store.add_candidate(rid, task.hash, Candidate(code=code(2)))
    bad = failed_result(task)
    store.add_evaluation(cid2, bad)
    assert store.count("hardware") == 1
    back2 = store.candidate(cid2).result
    assert back2.verdict is Verdict.INCORRECT and back2.error is ErrorClass.MISMATCH
    assert back2.check.rel_error is None and back2.check.message == bad.check.message
    assert _rows(store, "SELECT rel_error, max_abs_error FROM evaluations WHERE candidate_id = :c", c=cid2) == \
        [(None, 0.5)]


def test_unstorable_values_are_made_storable(store):
    """NUL characters and infinities (PostgreSQL refuses both) are stored, not fatal."""
    rid, task = _setup(store)
    cid = store.add_candidate(rid, task.hash, Candidate(code="x = '\x00'", strategy_info={"nan": math.nan}))
    res = correct_result(task, math.inf)
    res.output = "garbage \x00\x01 from the kernel"
    store.add_evaluation(cid, res)
    back = store.candidate(cid)
    assert back.code == "x = '\ufffd'" and back.strategy_info == {"nan": None}
    assert back.result.output == "garbage \ufffd\x01 from the kernel" and back.result.timing.speedup_eager is None


def test_ids_and_references(store):
    rid, task = _setup(store)
    mine = Candidate(code=code(1), id="c-replayed-0001")
    assert store.add_candidate(rid, task.hash, mine) == "c-replayed-0001"
    with pytest.raises(IntegrityError):
        store.add_candidate(rid, task.hash, Candidate(code=code(2), id="c-replayed-0001"))
    with pytest.raises(IntegrityError):  # foreign keys are enforced (SQLite too)
        store.add_candidate(rid, "0" * 64, Candidate(code=code(3)))
    with pytest.raises(IntegrityError):
        store.add_candidate(rid, task.hash, Candidate(code=code(4), parents=["c-does-not-exist"]))
    with pytest.raises(NotFound):
        store.add_candidate("r-00000000", task.hash, Candidate(code=code(5)))
    with pytest.raises(NotFound):
        store.add_evaluation("c-nope", correct_result(task, 1.0))
    assert [c.id for c in store.candidates(rid)] == ["c-replayed-0001"]  # failed calls left nothing


def test_best_follows_latest_correct_evaluations(store):
    rid, t1 = _setup(store, 2)
    t2 = make_task(3)
    store.upsert_task(t2)
    store.set_run_task(rid, t1.hash, "running")
    ids = {}
    for name, task, res in [("slow", t1, correct_result(t1, 1.5)), ("fast", t1, correct_result(t1, 3.0)),
                            ("wrong", t1, failed_result(t1)), ("other", t2, correct_result(t2, 5.0))]:
        ids[name] = store.add_candidate(rid, task.hash, Candidate(code=code(name)))
        store.add_evaluation(ids[name], res)
    unevaluated = store.add_candidate(rid, t1.hash, Candidate(code=code("pending")))

    assert store.best(rid).id == ids["other"]
    assert store.best(rid, t1.hash).id == ids["fast"] and store.best(rid, t2.hash).id == ids["other"]
    assert store.best(rid, t1.hash).result.speedup == 3.0
    run = store.get_run(rid)
    assert run.best_candidate_id == ids["other"] and run.best_speedup == 5.0
    assert store.run_tasks(rid)[0].best_candidate_id == ids["fast"]

    # re-evaluated and now wrong: its latest result counts, the best moves on
    store.add_evaluation(ids["other"], failed_result(t2, Verdict.RUNTIME_ERROR, ErrorClass.CUDA_FAULT, "boom"))
    assert store.best(rid, t2.hash) is None
    assert store.get_run(rid).best_candidate_id == ids["fast"]
    assert store.best(rid).id == ids["fast"] and unevaluated != ids["fast"]

    other_run = _run(store)
    assert store.best(other_run) is None and store.get_run(other_run).best_speedup is None


def test_lineage_follows_first_parents(store):
    rid, task = _setup(store)
    root = store.add_candidate(rid, task.hash, Candidate(code=code("root")))
    side = store.add_candidate(rid, task.hash, Candidate(code=code("side")))
    mid = store.add_candidate(rid, task.hash, Candidate(code=code("mid"), parents=[root]))
    leaf = store.add_candidate(rid, task.hash, Candidate(code=code("leaf"), parents=[mid, side]))
    store.add_evaluation(mid, correct_result(task, 2.0))
    chain = store.lineage(leaf)
    assert [c.id for c in chain] == [mid, root]
    assert chain[0].result.speedup == 2.0 and chain[0].parents == [root]
    assert store.lineage(root) == [] and store.lineage("c-unknown") == []
    # ancestors may live in an earlier run (a search seeded from it)
    rid2 = _run(store)
    seeded = store.add_candidate(rid2, task.hash, Candidate(code=code("seeded"), parents=[leaf]))
    assert [c.id for c in store.lineage(seeded)] == [leaf, mid, root]


def test_totals(store):
    rid, task = _setup(store)
    comps = completions([code(1), code(2)], cost=0.02)
    call = store.add_llm_call(rid, "gpt-test", [{"role": "user", "content": "go"}], comps)
    store.add_llm_call(rid, "gpt-test", [{"role": "user", "content": "go"}], [], error="timeout")
    good = store.add_candidate(rid, task.hash, Candidate(code=code(1), completion=comps[0]), llm_call_id=call)
    store.add_evaluation(good, correct_result(task, 2.0))
    bad = store.add_candidate(rid, task.hash, Candidate(code=code(2), completion=comps[1]), llm_call_id=call)
    store.add_evaluation(bad, failed_result(task))
    again = store.add_candidate(rid, task.hash, Candidate(code=code(3)))
    store.add_evaluation(again, correct_result(task, 1.1, cached=True))
    store.add_candidate(rid, task.hash, Candidate(code="", format_error="no code"))
    store.add_candidate(rid, task.hash, Candidate(code=code(4)))

    t = store.totals(rid)
    assert t["llm_calls"] == 2 and t["llm_errors"] == 1
    assert t["tokens"] == {"prompt": 1000, "completion": 1000, "reasoning": 200, "cached": 100}
    assert t["cost_usd"] == pytest.approx(0.02)  # the call's cost once, not per completion
    assert t["candidates"] == 5
    assert t["by_verdict"] == {"correct": 2, "incorrect": 1, "format_error": 1, "pending": 1}
    assert t["evaluations"] == 3 and t["cached_evaluations"] == 1
    assert t["gpu_seconds"] == pytest.approx(4.8 + 0.5)  # cached results cost no GPU time; compiles are CPU
    assert store.totals(_run(store))["candidates"] == 0


def test_pending_candidates_survive_a_restart(store, db_url):
    rid, task = _setup(store)
    done = store.add_candidate(rid, task.hash, Candidate(code=code(1)))
    store.add_evaluation(done, correct_result(task, 1.2))
    proposed = store.add_candidate(rid, task.hash, Candidate(code=code(2), parents=[done]))
    in_flight = store.add_candidate(rid, task.hash, Candidate(code=code(3)))
    store.mark_evaluating(in_flight)
    store.add_candidate(rid, task.hash, Candidate(code="", format_error="no code"))  # finished: never pending
    store.close()

    reopened = RunStore(db_url)  # as `--resume` does, in a new process
    try:
        assert [c.id for c in reopened.pending_candidates(rid)] == [proposed, in_flight]
        assert reopened.pending_candidates(rid)[0].parents == [done]
        finished = [c for c in reopened.candidates(rid) if c.result is not None or c.format_error]
        assert [c.result.speedup if c.result else None for c in finished] == [1.2, None]
        reopened.add_evaluation(in_flight, correct_result(task, 1.9))
        assert [c.id for c in reopened.pending_candidates(rid)] == [proposed]
        assert reopened.best(rid).id == in_flight
    finally:
        reopened.close()


def test_baselines(store):
    task = make_task()
    data = {"eager": {"median_ms": 2.0, "samples_ms": [2.0, 2.1]}, "compiled": {"median_ms": 1.5},
            "ratio": 0.75, "error": "", "compile_seconds": 40.0}
    assert store.get_baseline(task.hash, SYSTEM) is None
    store.upsert_baseline(task, SYSTEM, data)  # stores the task too
    b = store.get_baseline(task.hash, SYSTEM)
    assert (b.eager_ms, b.compiled_ms, b.ratio, b.data) == (2.0, 1.5, 0.75, data)

    other_host = dataclasses.replace(SYSTEM, hostname="node-2", python="3.12")  # same fingerprint
    store.upsert_baseline(task.hash, other_host, {**data, "ratio": 0.8, "compiled": {"median_ms": 1.6}})
    assert store.get_baseline(task.hash, SYSTEM).ratio == 0.8 and store.count("baselines") == 1

    older_torch = dataclasses.replace(SYSTEM, torch="2.12.0")
    assert store.get_baseline(task.hash, older_torch) is None
    store.upsert_baseline(task.hash, older_torch, {"eager": {"median_ms": 2.2}, "compiled": None, "ratio": None})
    assert store.get_baseline(task.hash, older_torch).compiled_ms is None
    assert store.count("baselines") == 2 and store.count("hardware") == 2
    with pytest.raises(ValueError):
        store.upsert_baseline(task.hash, SystemInfo(), data)
