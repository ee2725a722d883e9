from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelsmith.bench.kernelbench import (
    BenchInputError, load_any, load_dataset, load_kernelbench, load_suite, parse_task_spec,
)
from tests.bench.common import BAD_SRC, fake_checkout, ref_src

REPO = Path(__file__).resolve().parents[2]


def test_task_spec():
    assert parse_task_spec("1-3,7") == {1, 2, 3, 7}
    assert parse_task_spec(" 5 , 2-2 ") == {2, 5}
    assert parse_task_spec(None) is None and parse_task_spec("") is None and parse_task_spec("all") is None
    for bad in ("3-1", "x", "1-", ",,"):
        with pytest.raises(BenchInputError, match="--tasks"):
            parse_task_spec(bad)


def test_kernelbench_checkout(tmp_path):
    root = fake_checkout(tmp_path)
    got = load_kernelbench(root)
    assert [(b.level, b.problem_id, b.name) for b in got] == [(1, 1, "Relu"), (1, 3, "Tanh"), (2, 1, "Sum")]
    assert got.tasks[0].origin == "kernelbench:L1/P1"
    assert got.tasks[0].task.source == ref_src("L1P1")
    [bad] = got.skipped
    assert bad.level == 1 and bad.problem_id == 2 and "get_inputs" in bad.reason and "2_Broken.py" in bad.reason
    # the KernelBench/ folder itself works too; level and --tasks select
    same = load_kernelbench(root / "KernelBench")
    assert [b.task.hash for b in same] == [b.task.hash for b in got]
    sel = load_kernelbench(root, levels=1, tasks="1-2")
    assert [(b.level, b.problem_id) for b in sel] == [(1, 1)] and len(sel.skipped) == 1
    assert [b.problem_id for b in load_kernelbench(root, levels=[2])] == [1]


def test_kernelbench_bad_roots(tmp_path):
    with pytest.raises(BenchInputError, match="not found"):
        load_kernelbench(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchInputError, match="not a KernelBench checkout"):
        load_kernelbench(tmp_path / "empty")
    with pytest.raises(BenchInputError, match="exactly one"):
        load_any(suite=tmp_path, kernelbench=tmp_path)


def test_dataset_jsonl(tmp_path):
    rows = [
        {"level": 1, "problem_id": 2, "name": "2_Tanh", "code": ref_src("d2", "torch.tanh(x)")},
        {"level": 1, "problem_id": 1, "name": "1_Relu", "code": ref_src("d1")},
        {"level": "two", "problem_id": 1, "name": "bad level", "code": ref_src("d3")},
        {"level": 2, "problem_id": 1, "name": "Broken", "code": BAD_SRC},
        {"level": 2, "problem_id": 4, "name": "Empty", "code": ""},
    ]
    p = tmp_path / "kb.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    got = load_dataset(p)
    assert [(b.level, b.problem_id) for b in got] == [(1, 1), (1, 2)]
    assert got.tasks[1].task.name == "2_Tanh" and got.tasks[1].origin == "kernelbench:L1/P2"
    reasons = " | ".join(s.reason for s in got.skipped)
    assert len(got.skipped) == 4
    for fragment in ("line 3", "integer level", "line 4", "get_inputs", "line 5", "no reference code",
                     "line 6", "invalid JSON"):
        assert fragment in reasons
    assert [b.problem_id for b in load_dataset(p, levels=1, tasks="2")] == [2]
    with pytest.raises(BenchInputError, match="not found"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(BenchInputError, match="parquet or .jsonl"):
        load_dataset(tmp_path / "x.csv")


def test_dataset_parquet(tmp_path):
    p = tmp_path / "kb.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        p.write_bytes(b"PAR1")
        with pytest.raises(BenchInputError, match="pip install pyarrow"):
            load_dataset(p)
        pytest.skip("pyarrow is not installed: checked the clear error only")
    pq.write_table(pa.Table.from_pylist([{"level": 1, "problem_id": 1, "name": "1_Relu", "code": ref_src("p1")},
                                         {"level": 3, "problem_id": 9, "name": "9_X", "code": ref_src("p9")}]), p)
    got = load_dataset(p)
    assert [(b.level, b.problem_id) for b in got] == [(1, 1), (3, 9)]


def test_suite_of_the_repo():
    got = load_suite(REPO / "tasks")
    assert not got.skipped
    assert len(got) >= 6
    assert {b.level for b in got} >= {1, 2, 3}
    first = got.tasks[0]
    assert (first.level, first.problem_id, first.name) == (1, 1, "leaky_relu_scale")
    assert first.origin.endswith("tasks/level1/001_leaky_relu_scale.py")
    assert [b.problem_id for b in load_suite(REPO / "tasks", levels=1, tasks="2-3")] == [2, 3]
    with pytest.raises(BenchInputError, match="no task suite"):
        load_suite(REPO / "no-such-tasks")
