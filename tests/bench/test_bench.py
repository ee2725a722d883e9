"""run_bench and run_generations end to end on the CPU: a scripted model, fake evaluators on
two fake GPUs, and a real SQLite runs.db."""

from __future__ import annotations

import json
import re

from kernelsmith.agent import OptimizeRequest
from kernelsmith.bench import generations_kind, run_bench, run_generations, run_task_list, summarize
from kernelsmith.evaluate.executors.local import EvaluatorPool
from kernelsmith.bench.kernelbench import BenchTask, Skipped
from kernelsmith.results import ErrorClass, EvalResult, Verdict
from kernelsmith.search.base import Budget
from kernelsmith.store.runs import RunStore
from kernelsmith.task import Task
from tests.agent.common import speed_of
from tests.bench.common import BAD_SRC, fake_checkout, ref_src
from tests.search.search_fakes import FakeEvaluator, FakeLLM, correct, kernel, reply, tag_of

MARK = re.compile(r"BENCHTASK-(\d+)")


def bench_tasks(n: int, broken_runtime: int | None = None) -> list[BenchTask]:
    out = []
    for i in range(n):
        marker = f"BENCHTASK-{i}" + (" BROKEN_RUNTIME" if i == broken_runtime else "")
        t = Task.from_source(ref_src(marker), f"level{1 + i % 2}/{i + 1}_t{i}.py")
        out.append(BenchTask(t, 1 + i % 2, i + 1, f"t{i}", f"kernelbench:L{1 + i % 2}/P{i + 1}"))
    return out


def replies(messages, s):
    return reply(f"fast{11 + s % 9}-{s}")


class TaskAwareEvaluator(FakeEvaluator):
    """Correct at fastNN/10 x; a reference marked BROKEN_RUNTIME fails like a crashing reference."""

    def __init__(self, name):
        super().__init__(default=lambda tag: correct(speed_of(tag)))
        self.name = name
        self.tasks: list[str] = []

    def evaluate_many(self, items, on_result=None):
        items = list(items)
        self.tasks += [t.hash for t, _ in items]
        if any("BROKEN_RUNTIME" in t.source for t, _ in items):
            out = [EvalResult(Verdict.INVALID_TASK, t.hash, "c", error=ErrorClass.CRASH,
                              message="the reference failed: RuntimeError: boom") for t, _ in items]
            for i, r in enumerate(out):
                if on_result:
                    on_result(i, r)
            return out
        return super().evaluate_many(items, on_result)


class InterruptingLLM(FakeLLM):
    """Ctrl-C (as KeyboardInterrupt) from the model call numbered `at` on."""

    def __init__(self, *a, at: int, **kw):
        super().__init__(*a, **kw)
        self.at = at

    def complete(self, messages, n=1, sampling=None):
        with self._lock:
            i = self.count
        if i >= self.at:
            raise KeyboardInterrupt
        return super().complete(messages, n, sampling)


def request(budget=2) -> OptimizeRequest:
    return OptimizeRequest("", "fake", strategy="best-of-n", budget=Budget(max_candidates=budget),
                           strategy_options={"n": budget}, llm_concurrency=1)


def two_gpus():
    evs = [TaskAwareEvaluator("a"), TaskAwareEvaluator("b")]
    return evs, EvaluatorPool(evaluators=evs)


def tasks_in_prompts(llm: FakeLLM) -> set[int]:
    return {int(m) for p in llm.prompts for m in MARK.findall(p)}


def test_bench_end_to_end(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    tasks = bench_tasks(4)
    evs, pool = two_gpus()
    llm = FakeLLM(replies)
    events = []
    out = run_bench(tasks, request(), llm, pool, store, on_event=lambda k, i: events.append((k, i)))
    assert out.status == "finished"
    assert [t.status for t in out.tasks] == ["done"] * 4
    assert all(t.speedup and t.speedup > 1 for t in out.tasks)
    info = store.get_run(out.run_id)
    assert info.kind == "bench" and info.status == "finished" and info.model == "fake"
    assert [c["hash"] for c in info.config["tasks"]] == [t.task.hash for t in tasks]
    assert {rt.status for rt in store.run_tasks(out.run_id)} == {"done"}
    assert all(len(store.candidates(out.run_id, t.task.hash)) == 2 for t in tasks)
    # each task searched on one GPU only; both GPUs were used
    per_task = {t.task.hash: {ev.name for ev in evs if t.task.hash in ev.tasks} for t in tasks}
    assert all(len(v) == 1 for v in per_task.values())
    assert evs[0].tasks and evs[1].tasks
    assert store.totals(out.run_id)["llm_calls"] == 8
    # summary: level 1 and 2 rows, then all
    assert [(r.level, r.count, r.correct) for r in out.summary] == [(1, 2, 2), (2, 2, 2), (None, 4, 4)]
    kinds = [k for k, _ in events]
    assert kinds[0] == "bench_start" and kinds[-1] == "bench_done" and kinds.count("task_done") == 4
    assert [t.task.hash for t in run_task_list(store, out.run_id)] == [t.task.hash for t in tasks]


def test_bench_interrupt_and_resume(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    tasks = bench_tasks(6)
    _, pool = two_gpus()
    first = InterruptingLLM(replies, at=6)
    out = run_bench(tasks, request(), first, pool, store)
    assert out.status == "interrupted"
    assert store.get_run(out.run_id).status == "interrupted"
    status = {rt.task_hash: rt.status for rt in store.run_tasks(out.run_id)}
    done = {h for h, s in status.items() if s == "done"}
    assert done and len(done) < len(tasks)
    kept = {h: [c.id for c in store.candidates(out.run_id, h)] for h in done}

    second = FakeLLM(replies, start=100)
    again = run_bench(run_task_list(store, out.run_id), request(), second, pool, store, run_id=out.run_id)
    assert again.status == "finished" and again.run_id == out.run_id
    assert {rt.status for rt in store.run_tasks(out.run_id)} == {"done"}
    skipped = {t.bench.task.hash for t in again.tasks if t.status == "skipped"}
    assert skipped == done
    for h, ids in kept.items():  # finished tasks were not redone
        assert [c.id for c in store.candidates(out.run_id, h)] == ids
    done_idx = {i for i, t in enumerate(tasks) if t.task.hash in done}
    assert not tasks_in_prompts(second) & done_idx
    assert tasks_in_prompts(second) <= set(range(6)) - done_idx  # unfinished ones continue (some only
    assert tasks_in_prompts(second)  # had candidates left to evaluate), the done ones are left alone
    for t in tasks:  # budgets hold across the two sessions
        assert len(store.candidates(out.run_id, t.task.hash)) == 2


def test_bench_broken_reference_fails_and_the_rest_goes_on(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    tasks = bench_tasks(3, broken_runtime=1)
    bad = Skipped("kernelbench:L1/P9", "level1/9_Bad.py is not a KernelBench-format task", 1, 9, "Bad", BAD_SRC)
    _, pool = two_gpus()
    llm = FakeLLM(replies)
    out = run_bench(tasks, request(budget=4), llm, pool, store, skipped=[bad])
    assert out.status == "finished"
    by = {t.bench.problem_id: t for t in out.tasks}
    assert by[2].status == "failed" and "boom" in by[2].reason
    assert by[1].status == "done" and by[3].status == "done"
    status = {rt.task_hash: rt.status for rt in store.run_tasks(out.run_id)}
    assert status[tasks[1].task.hash] == "failed"
    assert sum(1 for s in status.values() if s == "failed") == 2  # the runtime-broken one and the skipped one
    notes = store.get_run(out.run_id).notes
    assert "boom" in notes and "9_Bad" in notes
    # the broken task stopped early instead of spending its whole budget
    assert len(store.candidates(out.run_id, tasks[1].task.hash)) < 4
    # resuming does not spend anything on it again
    second = FakeLLM(replies)
    again = run_bench(run_task_list(store, out.run_id), request(budget=4), second, pool, store, run_id=out.run_id)
    assert not second.calls
    assert {t.status for t in again.tasks} == {"skipped", "failed"}


def test_generations_check_against_each_rows_reference(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    root = fake_checkout(tmp_path / "kb")
    ref_a, ref_b = ref_src("row reference A"), ref_src("row reference B", "torch.relu(x) * 1.0")
    rows = [
        {"level": 1, "problem_id": 1, "name": "1_Relu", "code": kernel("fast20"), "reference": ref_a},
        {"level": 1, "problem_id": 1, "name": "1_Relu", "code": kernel("fast05"), "reference": ref_b},
        {"level": 1, "problem_id": 3, "name": "3_Tanh", "code": "Here:\n```python\n" + kernel("plain") + "```\n"},
        {"level": 1, "problem_id": 2, "name": "2_Broken", "code": kernel("x")},
        {"level": 9, "problem_id": 9, "code": kernel("y")},
        {"level": 1, "problem_id": 1, "name": "no code"},
        {"level": 1, "problem_id": 1, "code": kernel("z"), "reference": BAD_SRC},
    ]
    path = tmp_path / "gens.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    evs, pool = two_gpus()
    out = run_generations(path, pool, store, reference_root=root, label="cuda-l1-release")
    info = store.get_run(out.run_id)
    assert info.kind == generations_kind() and info.label == "cuda-l1-release" and info.model == "cuda-l1-release"
    assert info.status == "finished"
    ha, hb = Task.from_source(ref_a).hash, Task.from_source(ref_b).hash
    h3 = Task.load(root / "KernelBench" / "level1" / "3_Tanh.py").hash
    assert ha != hb
    assert [r.task_hash for r in out.rows] == [ha, hb, h3]
    assert [tag_of(c.code) for c in store.candidates(out.run_id, ha)] == ["fast20"]
    assert [tag_of(c.code) for c in store.candidates(out.run_id, hb)] == ["fast05"]
    assert [tag_of(c.code) for c in store.candidates(out.run_id, h3)] == ["plain"]
    assert {rt.task_hash: rt.status for rt in store.run_tasks(out.run_id)} == {ha: "done", hb: "done", h3: "done"}
    assert all(c.result is not None and c.result.verdict is Verdict.CORRECT
               for h in (ha, hb, h3) for c in store.candidates(out.run_id, h))
    assert evs[0].seen and evs[1].seen
    reasons = [r.reason for r in out.skipped]
    assert len(reasons) == 4
    assert any("get_inputs" in r for r in reasons)  # the checkout's broken reference and the row's own
    assert any("no reference for level 9" in r for r in reasons)
    assert any("no kernel" in r for r in reasons)
    [lv1] = out.summary
    assert (lv1.level, lv1.count, lv1.correct, lv1.fast_1) == (1, 3, 3, 1)
    assert abs(lv1.geomean_speedup - (2.0 * 0.5 * 1.0) ** (1 / 3)) < 1e-9


def test_summary_rates():
    rows = summarize([(1, True, 2.0), (1, False, None), (2, True, 0.5), (2, True, 8.0)])
    assert [(r.level, r.count, r.correct, r.fast_1) for r in rows] == [(1, 2, 1, 1), (2, 2, 2, 1), (None, 4, 3, 2)]
    assert rows[0].correct_rate == 0.5 and abs(rows[1].geomean_speedup - 2.0) < 1e-9
