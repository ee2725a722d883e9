"""The reward server end to end on loopback, evaluators faked (no GPU)."""

from __future__ import annotations

import math
import threading

import pytest

from kernelsmith.cli.serve import build_server
from serve_fakes import TOKEN, Fakes, correct, kernel, poll, reply, request, write_tasks

from search_fakes import compile_error


@pytest.fixture
def make(tmp_path):
    made = []

    def _make(table=None, delay=0.0, raise_at=None, gpus=(0, 1), **kw):
        fakes = Fakes(table, delay, raise_at)
        kw.setdefault("token", TOKEN)
        service, server = build_server([write_tasks(tmp_path / f"s{len(made)}")], port=0, gpus=list(gpus),
                                       evaluator_factory=fakes.factory, **kw)
        server.serve_in_thread()
        made.append((service, server))
        return server.url, service, fakes

    yield _make
    for service, server in made:
        server.shutdown()
        server.server_close()
        service.close()


TABLE = {"fast": correct(2.0), "slow": correct(0.5), "broken": compile_error()}


def score(url, items, **extra):
    return request(url, "POST", "/v1/score", {"items": items, **extra})


def test_health_needs_no_token(make):
    url, _, _ = make()
    status, body = request(url, "GET", "/healthz", token=None)
    assert status == 200 and body["ok"] is True and body["gpus"] == [0, 1] and body["version"]
    assert body["tasks"] == 2


def test_score_one_of_each(make):
    url, _, fakes = make(TABLE)
    status, body = score(url, [
        {"task": "relu", "completion": reply("fast")},
        {"task": "relu", "completion": reply("slow")},
        {"task": "relu", "completion": reply("broken")},
        {"task": "relu", "completion": "I cannot write this kernel."},
        {"task": "gelu", "code": kernel("fast")},
        {"task": "relu", "completion": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": reply("fast")}]},
    ])
    assert status == 200, body
    assert body["job_id"] and body["status"] == "done"
    r = body["results"]
    assert r[0]["reward"] == pytest.approx(math.log(2)) and r[0]["correct"] and r[0]["compiled"]
    assert r[0]["speedup"] == 2.0 and r[0]["verdict"] == "correct" and r[0]["noise"] == 0.0
    assert len(r[0]["code_hash"]) == 64 and r[0]["cached"] is False
    assert r[1]["reward"] == pytest.approx(math.log(0.5))
    assert r[2]["reward"] == -1.0 and r[2]["verdict"] == "compile_error" and not r[2]["compiled"]
    assert r[2]["error_class"] == "compile"
    assert r[3]["verdict"] == "none" and r[3]["error_class"] == "format" and r[3]["reward"] == -1.0
    assert "ModelNew" in r[3]["message"] and r[3]["code_hash"] is None
    assert r[4]["task"] == "gelu" and r[4]["correct"]
    assert r[5]["cached"] is True  # same code, same task as item 0: evaluated once
    assert sorted(fakes.seen) == ["broken", "fast", "fast", "slow"]  # relu/fast, relu/slow, relu/broken, gelu/fast
    assert fakes.violations == []


def test_named_reward_and_task_by_hash(make):
    url, service, _ = make(TABLE)
    h = service.tasks.resolve("relu").hash
    status, body = score(url, [{"task": h, "completion": reply("fast")}], reward="staged")
    assert status == 200 and body["results"][0]["reward"] == pytest.approx(1.0)
    status, body = score(url, [{"task": h[:16], "completion": reply("fast")}], reward="speedup")
    assert status == 200 and body["results"][0]["reward"] == 2.0 and body["results"][0]["cached"]


def test_bad_requests(make):
    url, _, _ = make(TABLE, max_request_mb=0.01, max_items=4)
    status, body = request(url, "POST", "/v1/score", raw=b"x" * 20_000)
    assert status == 413 and "limit" in body["error"]
    status, body = request(url, "POST", "/v1/score", raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = request(url, "POST", "/v1/score", raw=b"[1, 2]")
    assert status == 400 and "object" in body["error"]
    status, body = score(url, [{"task": "relu", "completion": "x"}] * 5)
    assert status == 400 and "limit is 4" in body["error"]
    status, body = score(url, [])
    assert status == 400 and "non-empty" in body["error"]
    status, body = score(url, [{"task": "conv9", "completion": "x"}])
    assert status == 400 and "unknown task 'conv9'" in body["error"] and "gelu, relu" in body["error"]
    status, body = score(url, [{"task": "relu", "completion": "x"}], reward="nope")
    assert status == 400 and "unknown reward 'nope'" in body["error"] and "log_speedup" in body["error"]
    status, body = score(url, [{"task": "relu", "completion": 5}])
    assert status == 400 and "completion" in body["error"]
    status, body = score(url, [{"task": "relu", "completion": "x"}], wait="yes")
    assert status == 400 and "wait" in body["error"]
    status, body = request(url, "GET", "/v1/jobs/deadbeef")
    assert status == 404
    status, body = request(url, "GET", "/nope")
    assert status == 404 and "/v1/score" in body["error"]
    status, body = request(url, "GET", "/v1/score")
    assert status == 405
    # the server still serves after all that
    status, body = score(url, [{"task": "relu", "completion": reply("fast")}])
    assert status == 200 and body["results"][0]["correct"]


def test_tokens(make):
    url, _, fakes = make(TABLE)
    item = [{"task": "relu", "completion": reply("fast")}]
    for token in (None, "wrong-token-but-long-enough"):
        status, body = request(url, "POST", "/v1/score", {"items": item}, token=token)
        assert status == 401 and "token" in body["error"]
        status, _ = request(url, "GET", "/v1/queue", token=token)
        assert status == 401
    status, _ = request(url, "POST", f"/v1/score?token={TOKEN}", {"items": item}, token=None)
    assert status == 401  # query tokens only for OpenRLHF's /get_reward
    status, body = request(url, "POST", "/v1/score", {"items": item},
                           headers={"Authorization": f"bearer {TOKEN}"}, token=None)
    assert status == 200
    assert fakes.seen == ["fast"]


def test_no_auth_server(make):
    url, _, _ = make(TABLE, token=None)
    status, body = score(url, [{"task": "relu", "completion": reply("fast")}])
    assert status == 200 and body["results"][0]["correct"]


def test_duplicates_evaluate_once(make):
    url, service, fakes = make(TABLE)
    items = [{"task": "relu", "completion": reply("fast")}] * 3
    _, first = score(url, items)
    _, second = score(url, items)
    assert [r["cached"] for r in first["results"]] == [False, True, True]
    assert all(r["cached"] for r in second["results"])
    assert fakes.seen == ["fast"] and service.evaluations == 1
    # different prose around the same code is the same candidate
    _, third = score(url, [{"task": "relu", "completion": "Sure!\n" + reply("fast") + "\nDone."}])
    assert third["results"][0]["cached"] and fakes.seen == ["fast"]


def test_concurrent_duplicates_evaluate_once(make):
    url, service, fakes = make(TABLE, delay=0.3)
    out, barrier = [], threading.Barrier(8)

    def client():
        barrier.wait()
        out.append(score(url, [{"task": "relu", "completion": reply("fast")}]))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 8 and all(s == 200 for s, _ in out)
    assert all(b["results"][0]["reward"] == pytest.approx(math.log(2)) for _, b in out)
    assert fakes.seen == ["fast"] and service.evaluations == 1
    assert sum(not b["results"][0]["cached"] for _, b in out) == 1


def test_concurrent_clients_and_gpu_isolation(make):
    table = {f"k{i}": correct(1.0 + i / 10) for i in range(32)}
    url, service, fakes = make(table, delay=0.02, gpus=(0, 1))
    out: dict[int, tuple] = {}

    def client(c):
        items = [{"task": "relu", "completion": reply(f"k{c * 4 + j}")} for j in range(4)]
        out[c] = score(url, items)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(out) == list(range(8))
    for c, (status, body) in out.items():
        assert status == 200
        got = [r["speedup"] for r in body["results"]]
        assert got == pytest.approx([1.0 + (c * 4 + j) / 10 for j in range(4)])  # answers in request order
    assert sorted(fakes.seen) == sorted(table) and service.evaluations == 32
    assert fakes.violations == []  # no GPU's evaluator ever entered twice at once
    assert set(fakes.by_gpu) == {0, 1} and all(ev.seen for ev in fakes.by_gpu.values())  # both GPUs worked
    _, q = request(url, "GET", "/v1/queue")
    assert q["cache_size"] == 32 and q["jobs"]["done"] == 8 and q["evaluations"] == 32
    assert q["gpus"] == {"0": {"queued": 0, "running": 0}, "1": {"queued": 0, "running": 0}}


def test_async_job_then_poll(make):
    url, _, _ = make(TABLE, delay=0.3, gpus=(0,))
    status, body = score(url, [{"task": "relu", "completion": reply("fast")},
                               {"task": "relu", "completion": reply("slow")}], wait=False)
    assert status == 202 and body["status"] in ("queued", "running") and body["job_id"]
    _, q = request(url, "GET", "/v1/queue")
    assert q["gpus"]["0"]["queued"] + q["gpus"]["0"]["running"] == 2 and q["in_flight"] == 2
    assert q["jobs"]["queued"] + q["jobs"]["running"] == 1
    views = poll(url, body["job_id"])
    assert views[0]["status"] in ("queued", "running") and "results" not in views[0]
    done = views[-1]
    assert done["status"] == "done" and [r["speedup"] for r in done["results"]] == [2.0, 0.5]
    status, again = request(url, "GET", f"/v1/jobs/{body['job_id']}")
    assert status == 200 and again["results"] == done["results"]


def test_queue_depth_per_gpu(make):
    table = {f"k{i}": correct(1.0) for i in range(6)}
    url, _, fakes = make(table, delay=0.2, gpus=(0, 1), batch_size=1)
    # each GPU takes at most one batch at a time; batch_size=1 makes queue depth visible
    jobs = [score(url, [{"task": "relu", "completion": reply(f"k{i}")}], wait=False)[1]["job_id"]
            for i in range(6)]
    _, q = request(url, "GET", "/v1/queue")
    assert sum(g["queued"] + g["running"] for g in q["gpus"].values()) >= 4
    assert abs((q["gpus"]["0"]["queued"] + q["gpus"]["0"]["running"])
               - (q["gpus"]["1"]["queued"] + q["gpus"]["1"]["running"])) <= 1  # balanced
    for j in jobs:
        assert poll(url, j)[-1]["status"] == "done"
    assert fakes.violations == []


def test_evaluator_failure_is_not_cached(make):
    url, service, fakes = make(TABLE, raise_at=0, gpus=(0,))
    status, body = score(url, [{"task": "relu", "completion": reply("fast")}])
    r = body["results"][0]
    assert status == 200 and r["reward"] is None and r["verdict"] == "error" and "evaluator broke" in r["message"]
    assert service.cache == {}
    fakes.by_gpu[0].raise_at = None
    status, body = score(url, [{"task": "relu", "completion": reply("fast")}])
    assert body["results"][0]["correct"] and body["results"][0]["cached"] is False


def test_results_persist_in_db(make, tmp_path):
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    url, _, fakes = make(TABLE, db=db)
    score(url, [{"task": "relu", "completion": reply("fast")}])
    assert fakes.seen == ["fast"]
    url2, service2, fakes2 = make(TABLE, db=db)  # a restarted server
    _, body = score(url2, [{"task": "relu", "completion": reply("fast")}])
    assert body["results"][0]["cached"] and body["results"][0]["speedup"] == 2.0
    assert fakes2.seen == [] and service2.evaluations == 0


def test_tasks_endpoint(make):
    url, service, _ = make()
    status, body = request(url, "GET", "/v1/tasks")
    assert status == 200 and [t["name"] for t in body["tasks"]] == ["gelu", "relu"]
    assert body["tasks"][1]["hash"] == service.tasks.resolve("relu").hash
