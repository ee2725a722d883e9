from __future__ import annotations

import threading
import time

import pytest

from kernelsmith.evaluate.executors.local import EvaluatorPool, parse_gpus, visible_gpus
from kernelsmith.sandbox.base import physical_gpu
from tests.search.search_fakes import correct, kernel, tag_of, task


class GPU:
    """A fake GPU evaluator: records the tags it saw and checks it never runs two batches at once."""

    def __init__(self, name: str, delay: float = 0.02):
        self.name, self.delay = name, delay
        self.seen: list[str] = []
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def evaluate_many(self, items, on_result=None):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            out = []
            for i, (_, code) in enumerate(items):
                time.sleep(self.delay)
                self.seen.append(tag_of(code))
                r = correct(1.0)
                r.message = f"{self.name}:{tag_of(code)}"
                out.append(r)
                if on_result:
                    on_result(i, r)
            return out
        finally:
            with self.lock:
                self.active -= 1


def test_evaluate_many_splits_and_keeps_order():
    a, b = GPU("a"), GPU("b")
    pool = EvaluatorPool(evaluators=[a, b])
    t = task()
    items = [(t, kernel(f"k{i}")) for i in range(7)]
    got_cb: dict[int, str] = {}
    results = pool.evaluate_many(items, on_result=lambda i, r: got_cb.__setitem__(i, r.message))
    assert [r.message.split(":")[1] for r in results] == [f"k{i}" for i in range(7)]
    assert a.seen and b.seen and sorted(a.seen + b.seen) == sorted(f"k{i}" for i in range(7))
    assert got_cb == {i: results[i].message for i in range(7)}
    # two concurrent batches never overlap on one GPU
    threads = [threading.Thread(target=pool.evaluate_many, args=(items,)) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert a.peak == 1 and b.peak == 1
    assert pool.evaluate_many([]) == []


def test_map_tasks_leases_one_gpu_per_task():
    gpus = [GPU("a"), GPU("b")]
    pool = EvaluatorPool(evaluators=gpus, gpus=[3, 5])
    busy: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}
    running = [0]
    most = [0]
    lock = threading.Lock()

    def fn(n, ev):
        with lock:
            busy[ev.name] += 1
            running[0] += 1
            peak[ev.name] = max(peak[ev.name], busy[ev.name])
            most[0] = max(most[0], running[0])
        time.sleep(0.03)
        ev.evaluate_many([(task(), kernel(f"t{n}"))])
        with lock:
            busy[ev.name] -= 1
            running[0] -= 1
        return (n, ev.name, pool.evaluator_gpu(ev))

    out = pool.map_tasks(fn, list(range(6)))
    assert [o[0] for o in out] == list(range(6))
    assert {o[1] for o in out} == {"a", "b"}
    assert {o[2] for o in out} == {3, 5}
    assert peak == {"a": 1, "b": 1} and most[0] == 2


def test_map_tasks_stops_on_an_exception():
    pool = EvaluatorPool(evaluators=[GPU("a")])
    started = []

    def fn(n, ev):
        started.append(n)
        if n == 1:
            raise KeyboardInterrupt
        return n

    stop = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        pool.map_tasks(fn, [0, 1, 2, 3], stop=stop)
    assert started == [0, 1] and stop.is_set()


def test_gpu_discovery(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == [0, 1]  # indices within the visible set, as torch counts them
    assert [physical_gpu(i) for i in visible_gpus()] == ["2", "3"]  # what the sandboxed jobs get
    with pytest.raises(ValueError, match="not visible"):
        physical_gpu(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,0")
    assert visible_gpus() == [0] and physical_gpu(0) == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert physical_gpu(3) == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaa,GPU-bbb")
    assert visible_gpus() == [0, 1]
    assert parse_gpus("0,1") == [0, 1] and parse_gpus(None) is None and parse_gpus("all") is None
    with pytest.raises(ValueError, match="--gpus"):
        parse_gpus("0,x")
    with pytest.raises(ValueError, match="--gpus"):
        parse_gpus("1,1")


def test_no_gpu_is_a_clear_error(monkeypatch):
    from kernelsmith.evaluate.evaluator import NoGPU

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(NoGPU, match="no CUDA GPU"):
        EvaluatorPool()


def test_sandboxed_job_gets_the_physical_gpu(monkeypatch):
    # A Ray actor holding GPU 1 sees CUDA_VISIBLE_DEVICES=1 and evaluates on its index 0:
    # its jobs must run on device 1, not on device 0 next to another actor's timings.
    from kernelsmith.sandbox.base import ServerSpec, child_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    env = child_env(ServerSpec(role="gpu", gpu=0), home="/tmp/ks-x", source_root="/tmp")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert child_env(ServerSpec(role="cpu"), home="/tmp/ks-x", source_root="/tmp")["CUDA_VISIBLE_DEVICES"] == ""
