"""One place owns a result's final verdict: a would-be best that the compute-sanitizer or the
confirming second evaluation disqualifies reads back the same verdict from the evaluator's
result cache as from runs.db (issue 13). The real Evaluator runs over a fake sandbox whose
jobs answer by the kernel's tag, so the cache path is the real one."""

from __future__ import annotations

import re
from concurrent.futures import Future
from pathlib import Path

from kernelsmith.agent import OptimizeRequest, optimize
from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import OK_MARKER, Evaluator
from kernelsmith.sandbox.base import JobOutcome
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task
from tests.agent.common import TASK_SRC, kernel_reply
from tests.search.search_fakes import FakeLLM

TAG = re.compile(r"# kernel: (\S+)")


def _stats(ms: float) -> dict:
    return {"samples_ms": [ms] * 5, "median_ms": ms, "ci_low_ms": ms, "ci_high_ms": ms, "mean_ms": ms,
            "stdev_ms": 0.0}


class FakeServer:
    """Answers jobs by tag: fastNN is correct at NN/10 x; racyNN has a racecheck finding;
    flakyNN passes its first evaluation and fails every later one."""

    def __init__(self, seen: dict):
        self.seen = seen

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def submit(self, job: str, args: dict, timeout=None, writable=None) -> Future:
        fut: Future = Future()
        fut.set_result(self._run(job, args))
        return fut

    def _run(self, job: str, args: dict) -> JobOutcome:
        if job == "probe":
            return JobOutcome("ok", {"cuda_available": True, "ceilings": {},
                                     "system": {"gpu": "Fake GPU", "driver": "1", "torch": "2.13",
                                                "compute_capability": "9.0"}})
        tag = TAG.search(Path(args.get("candidate_path", "/dev/null")).read_text() or "").group(1)
        if job == "compile":
            (Path(args["build_dir"]) / OK_MARKER).write_text("cupy")
            return JobOutcome("ok", {"ok": True, "backend": "cupy"})
        if job == "sanitize":
            n = 3 if tag.startswith("racy") else 0
            return JobOutcome("ok", {"memcheck": {"errors": 0}, "racecheck": {"errors": n, "first": "Race"}})
        assert job == "evaluate", job
        self.seen[tag] = self.seen.get(tag, 0) + 1
        speed = int(re.sub(r"\D", "", tag)) / 10
        if tag.startswith("flaky") and self.seen[tag] > 1:
            return JobOutcome("ok", {"verdict": "incorrect", "error": "mismatch", "message": "trial 2 differs",
                                     "check": {"trials": 5, "trials_passed": 3}})
        return JobOutcome("ok", {"verdict": "correct", "check": {"trials": 5, "trials_passed": 5},
                                 "timing": {"speedup_eager": speed, "candidate": _stats(1 / speed),
                                            "eager": _stats(1.0)}})


class FakeSandbox:
    name = "fake"

    def __init__(self):
        self.seen: dict = {}

    def start(self, spec):
        return FakeServer(self.seen)


def _evaluator(tmp_path) -> Evaluator:
    cfg = EvalConfig.from_env(cache_dir=tmp_path / "cache", compile_baseline=False, use_cache=True)
    return Evaluator(cfg, sandbox=FakeSandbox())


def _run(tmp_path, tags: list[str], **req_kw):
    task_file = tmp_path / "relu.py"
    task_file.write_text(TASK_SRC)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    llm = FakeLLM([kernel_reply(t) for t in tags])
    req = OptimizeRequest(str(task_file), "fake-model", "refine", Budget(max_candidates=len(tags)),
                          strategy_options={"chains": 1}, llm_concurrency=1, **req_kw)
    with _evaluator(tmp_path) as ev:
        run_id, out = optimize(req, llm, ev, store, {"system": {"gpu": "Fake GPU"}})
    task = Task.load(task_file)
    stored = {TAG.search(c.code).group(1): c.result for c in store.candidates(run_id, task.hash)}
    return task, stored, out


def _cached(tmp_path, task: Task, tag: str):
    with _evaluator(tmp_path) as ev:  # a fresh evaluator over the same cache: a later run, bench or serve
        code = kernel_reply(tag).split("```python\n")[1].split("```")[0]
        return ev.evaluate(task, code)


def test_a_sanitizer_finding_is_the_verdict_in_cache_and_store(tmp_path):
    task, stored, out = _run(tmp_path, ["fast15", "racy30"], confirm=False)
    assert stored["racy30"].verdict.value == "incorrect" and "racecheck: 3 error(s)" in stored["racy30"].message
    hit = _cached(tmp_path, task, "racy30")
    assert hit.cached, "the second read must come from the cache"
    assert hit.verdict is stored["racy30"].verdict and hit.message == stored["racy30"].message
    assert abs(out.speedup - 1.5) < 1e-9


def test_a_failed_second_evaluation_is_the_verdict_in_cache_and_store(tmp_path):
    task, stored, out = _run(tmp_path, ["fast15", "flaky30"], sanitize=False)
    assert stored["flaky30"].verdict.value == "incorrect"
    assert "failed a second, independent evaluation" in stored["flaky30"].message
    hit = _cached(tmp_path, task, "flaky30")
    assert hit.cached and hit.verdict is stored["flaky30"].verdict and hit.message == stored["flaky30"].message


def test_a_confirmed_best_is_cached_as_confirmed(tmp_path):
    task, stored, _ = _run(tmp_path, ["fast15"], sanitize=True)
    hit = _cached(tmp_path, task, "fast15")
    assert hit.cached and hit.correct and hit.sanitizer == stored["fast15"].sanitizer != ""
    assert hit.timing.other_session_speedup == stored["fast15"].timing.other_session_speedup is not None


def test_each_candidate_is_screened_once_on_its_way_through_the_evaluator(tmp_path, monkeypatch):
    """Issue 17: the static screen runs once per candidate (evaluate, a retime and the
    compile-only path reuse its verdict), and its verdict is the one the result reports."""
    from kernelsmith.evaluate import evaluator as evmod

    calls = []
    real = evmod.static.screen
    monkeypatch.setattr(evmod.static, "screen", lambda code, src: calls.append(code) or real(code, src))
    task_file = tmp_path / "relu.py"
    task_file.write_text(TASK_SRC)
    task = Task.load(task_file)
    codes = [kernel_reply(t).split("```python\n")[1].split("```")[0] for t in ("fast15", "fast20")]
    with _evaluator(tmp_path) as ev:
        first = ev.evaluate_many([(task, c) for c in codes])
        again = ev.retime(task, codes[0])
        ev.compile(task, codes[1])
    assert [r.verdict.value for r in first + [again]] == ["correct"] * 3
    assert sorted(calls) == sorted(codes), f"screened {len(calls)} times for {len(codes)} candidates"
    assert all(r.static is not None and r.static.ok for r in first + [again])


def test_a_screen_swapped_in_is_not_answered_from_the_memo(tmp_path, monkeypatch):
    """The corpus's runtime-only pass swaps the screen on a live evaluator: the memo must
    not hand it the old screen's verdicts (seen on the H200: 23 runtime verdicts read the
    ordinary pass's static rejections)."""
    from kernelsmith.evaluate import evaluator as evmod
    from kernelsmith.results import ErrorClass, StaticResult

    task_file = tmp_path / "relu.py"
    task_file.write_text(TASK_SRC)
    task = Task.load(task_file)
    code = kernel_reply("fast15").split("```python\n")[1].split("```")[0]
    with _evaluator(tmp_path) as ev:
        assert ev.evaluate(task, code).verdict.value == "correct"
        monkeypatch.setattr(evmod.static, "screen", lambda c, src=None: StaticResult(
            False, 0.0, error=ErrorClass.STATIC_RULE, message="swapped"))
        assert ev.evaluate(task, code).message == "swapped"
