"""The Ray executor on a local CPU-only cluster with two logical GPUs (no real GPU)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: the Ray executor cannot be tested")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "search"))

import fake_factory  # noqa: E402
from search_fakes import kernel, task  # noqa: E402

from kernelsmith.config import EvalConfig  # noqa: E402
from kernelsmith.evaluate.evaluator import OK_MARKER, NoGPU  # noqa: E402
from kernelsmith.evaluate.executors.local import EvaluatorPool  # noqa: E402
from kernelsmith.evaluate.executors.ray import install_tree, make_ray_pool, pack_dir, ray_available  # noqa: E402
from kernelsmith.results import ErrorClass, Verdict  # noqa: E402

FAKE = "fake_factory:make"
COMPILING = "fake_factory:make_compiling"


@pytest.fixture(scope="module", autouse=True)
def cluster():
    path = os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def cfg(tmp_path) -> EvalConfig:
    return EvalConfig(cache_dir=tmp_path / "cache", compile_workers=1, sandbox="process")


def items(tags):
    t = task()
    return [(t, kernel(tag)) for tag in tags]


def test_ray_available():
    ok, why = ray_available()
    assert ok and why.startswith("ray ")


def test_placement_and_batches_split_in_order(tmp_path):
    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, remote_compile=False) as pool:
        assert isinstance(pool, EvaluatorPool) and len(pool) == 2
        facts = pool.probe()
        cvds = {f["cuda_visible_devices"] for f in facts}
        assert len(cvds) == 2 and None not in cvds  # one logical GPU each
        assert {tuple(f["gpu_ids"]) for f in facts} == {(c,) for c in cvds}
        assert all(f["gpu"] == 0 for f in facts)  # Ray's CUDA_VISIBLE_DEVICES: gpu 0 inside
        assert len({f["pid"] for f in facts}) == 2

        tags = [f"k{i}" for i in range(7)]
        seen = []
        res = pool.evaluate_many(items(tags), on_result=lambda i, r: seen.append(i))
        assert [r.candidate_hash for r in res] == tags  # input order
        assert sorted(seen) == list(range(7))
        assert all(r.verdict is Verdict.CORRECT for r in res)
        pids = {r.message.split()[0] for r in res}
        assert len(pids) == 2  # both actors took a share
        batches = [ev.attr("batches") for ev in pool.evaluators]
        assert sorted(t for b in batches for bt in b for t in bt) == sorted(tags)


def test_map_tasks_leases_one_actor_per_task(tmp_path):
    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, remote_compile=False) as pool:
        lock = threading.Lock()
        active: set[int] = set()
        clash = []
        used = []

        def fn(name, ev):
            with lock:
                if id(ev) in active:
                    clash.append(name)
                active.add(id(ev))
                used.append(id(ev))
            try:
                r = ev.evaluate_many(items([name]))[0]
                time.sleep(0.3)
                return r.candidate_hash, ev.probe()["cuda_visible_devices"]
            finally:
                with lock:
                    active.discard(id(ev))

        out = pool.map_tasks(fn, [f"t{i}" for i in range(4)])
        assert [o[0] for o in out] == [f"t{i}" for i in range(4)]
        assert not clash and len(set(used)) == 2
        assert len({o[1] for o in out}) == 2


def test_worker_death_retried_once(tmp_path):
    flag = tmp_path / "died_once"
    tags = ["a0", "a1", f"die_once:{flag}", "a3", "a4", "a5"]
    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, remote_compile=False) as pool:
        res = pool.evaluate_many(items(tags))
        assert flag.exists()  # it did die
        assert [r.verdict for r in res] == [Verdict.CORRECT] * 6
        assert [r.candidate_hash for r in res] == tags
        assert sum(ev.restarts for ev in pool.evaluators) == 1
        assert pool.evaluate_many(items(["after"]))[0].verdict is Verdict.CORRECT  # the new actor works


def test_worker_that_always_dies_fails_only_its_items(tmp_path):
    tags = ["b0", "b1", "die_always", "b3", "b4", "b5", "b6"]
    got = {}
    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, remote_compile=False) as pool:
        res = pool.evaluate_many(items(tags), on_result=lambda i, r: got.setdefault(i, r))
        bad = res[2]
        assert bad.verdict is Verdict.RUNTIME_ERROR and bad.error is ErrorClass.SANDBOX
        assert "the GPU worker died twice" in bad.message
        assert all(r.verdict is Verdict.CORRECT for k, r in enumerate(res) if k != 2)
        assert [r.candidate_hash for k, r in enumerate(res) if k != 2] == [t for t in tags if t != "die_always"]
        assert sorted(got) == list(range(7))
        assert pool.evaluate_many(items(["c0", "c1"]))[1].verdict is Verdict.CORRECT


def test_remote_compile_ships_the_build(tmp_path):
    config = cfg(tmp_path)
    with make_ray_pool(config, evaluator_factory=COMPILING, build_root="temp", num_actors=1) as pool:
        res = pool.evaluate_many(items(["good1", "bad", "good2"]))
        ev = pool.evaluators[0]
        assert ev.attr("seen") == ["good1", "good2"]  # the compile failure never went to the GPU
        bad = res[1]
        assert bad.verdict is Verdict.COMPILE_ERROR and bad.error is ErrorClass.COMPILE
        assert "expected ';'" in bad.compile.log and bad.system.gpu == "FakeGPU"
        cache = (tmp_path / "cache").resolve()
        for r in (res[0], res[2]):
            assert r.verdict is Verdict.CORRECT and r.message.startswith("prebuilt by"), r.message
            compiled_root = r.message.split()[3]
            assert Path(compiled_root).resolve() != cache  # built elsewhere, arrived as tar bytes
        # the marker sits exactly where an Evaluator with the actor's facts looks
        local = fake_factory.make_compiling(config)
        local.probe()
        t = task()
        for tag in ("good1", "good2"):
            build = local._paths(t, kernel(tag))[2]
            assert (build / OK_MARKER).read_text() == "load_inline"
            assert (build / "ext" / "ext.so").read_bytes().startswith(b"\x7fELF")
        assert not local._paths(t, kernel("bad"))[2].exists()
        local.close()


def test_remote_compile_same_node_builds_in_place(tmp_path):
    config = cfg(tmp_path)
    with make_ray_pool(config, evaluator_factory=COMPILING, num_actors=1) as pool:
        res = pool.evaluate_many(items(["p1", "p2"]))
        cache = (tmp_path / "cache").resolve()
        for r in res:
            assert r.message.startswith("prebuilt by"), r.message
            assert Path(r.message.split()[3]).resolve() == cache


def test_tar_round_trip_and_safety(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.so").write_bytes(b"abc")
    (src / OK_MARKER).write_text("cupy")
    data = pack_dir(src)
    root = tmp_path / "root"
    assert install_tree(root, "build/k1", data)
    assert (root / "build" / "k1" / "sub" / "a.so").read_bytes() == b"abc"
    assert not install_tree(root, "build/k1", data)  # already there
    with pytest.raises(ValueError):
        install_tree(root, "../evil", data)
    (src / OK_MARKER).unlink()
    with pytest.raises(ValueError):
        install_tree(root, "build/k2", pack_dir(src))
    assert not (root / "build" / "k2").exists()


def test_no_gpu_and_too_many_actors(tmp_path):
    with pytest.raises(NoGPU, match="more than"):
        make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, num_actors=3)
    with pytest.raises(NoGPU, match="no GPU actor"):
        make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, num_actors=0)


def test_remote_compile_off_for_evaluators_without_build_keys(tmp_path):
    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, num_actors=1) as pool:
        res = pool.evaluate_many(items(["x0", "x1"]))
        assert [r.candidate_hash for r in res] == ["x0", "x1"]
        assert pool.evaluators[0].remote_compile is False


def test_cluster_without_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(NoGPU, match="no GPU to evaluate on"):
        make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE)


def test_serve_and_bench_use_one_actor_per_cluster_gpu(monkeypatch, tmp_path):
    """`serve --executor ray` puts one Ray actor behind each of the service's queues."""
    import kernelsmith.evaluate.executors.ray as rp
    from kernelsmith.cli import serve as cli_serve

    real = rp.make_ray_pool
    monkeypatch.setattr(rp, "make_ray_pool", lambda config, address=None: real(
        cfg(tmp_path), address=address, evaluator_factory=FAKE, remote_compile=False))
    factory, gpus = cli_serve._ray_factory("process", None)
    assert gpus == [0, 1]
    first, second = factory(0), factory(1)
    assert first is not second
    seen = {first.probe()["cuda_visible_devices"], second.probe()["cuda_visible_devices"]}
    assert len(seen) == 2  # two different GPUs
    results = first.evaluate_many(items(["fast15"]))
    assert results[0].verdict is Verdict.CORRECT
    first.close()
    second.close()


def test_optimize_uses_one_ray_actor(monkeypatch, tmp_path):
    """`optimize --executor ray`: the search's evaluator is one actor, closed with its pool."""
    import kernelsmith.evaluate.executors.ray as rp
    from kernelsmith.cli import search as cli_search

    real = rp.make_ray_pool
    monkeypatch.setattr(rp, "make_ray_pool", lambda config, address=None, num_actors=None: real(
        cfg(tmp_path), address=address, num_actors=num_actors, evaluator_factory=FAKE, remote_compile=False))
    ctx = cli_search._evaluator(cfg(tmp_path), "ray", None)
    with ctx as ev:
        assert len(ctx.pool) == 1
        assert ev.evaluate_many(items(["fast20"]))[0].verdict is Verdict.CORRECT


def test_sanitizer_and_second_evaluation_run_on_the_actors_gpu(tmp_path):
    """The default checks of new bests work through the Ray executor too: compute-sanitizer
    and the second evaluation run in the actor that owns the GPU; a tool the evaluator
    lacks gives a note."""
    from kernelsmith.agent import ToolingEvaluator

    with make_ray_pool(cfg(tmp_path), evaluator_factory=FAKE, remote_compile=False) as pool:
        ev = pool.evaluators[0]
        facts = ev.probe()
        text = ev.sanitize(task(), kernel("fast15"))
        assert text.startswith("memcheck: 0 error(s)") and f"pid={facts['pid']}" in text
        assert f"cvd={facts['cuda_visible_devices']}" in text
        assert ev.profile(task(), kernel("fast15")) == "not run: this evaluator has no profile job"
        res = ToolingEvaluator(ev, sanitize=True).evaluate_many([(task(), kernel("fast15"))])
        assert res[0].verdict is Verdict.CORRECT and "[fast15 pid=" in res[0].sanitizer
        again = ev.retime(task(), kernel("fast15"))  # the second, independent evaluation
        assert again.correct and again.message.startswith(f"retimed pid={facts['pid']}")

