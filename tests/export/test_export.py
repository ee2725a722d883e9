"""`kernelsmith export`: rows, filters, rewards, both formats read back by Hugging Face datasets, CLI errors."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

import rewards
from kernelsmith.dataset import COLUMNS, ExportError, ExportOptions, collect, export_runs
from kernelsmith.store.runs import RunStore



def _datasets():
    """Hugging Face datasets (and pyarrow): pinned in the project's extras; the tests that read back skip without."""
    pytest.importorskip("pyarrow")
    return pytest.importorskip("datasets")


@pytest.fixture
def store(data):
    s = RunStore(data.url)
    yield s
    s.close()


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    _datasets()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return str(tmp_path / "hf-cache")


def _runs(data):
    return [data.optimize_run, data.manual_run]


def _by_id(rows):
    return {r["candidate_id"]: r for r in rows}


def test_rows_one_per_candidate_with_prompt_completion_and_outcome(data, store):
    rows, skipped = collect(store, _runs(data), ExportOptions(include_code_only=True))
    n_manual = len(store.candidates(data.manual_run))
    assert len(rows) == data.n_optimize + n_manual and skipped == 0
    assert list(rows[0]) == list(COLUMNS)
    assert [r["run_id"] for r in rows] == [data.optimize_run] * data.n_optimize + [data.manual_run] * n_manual
    stored = {c.id: c for rid in _runs(data) for c in store.candidates(rid)}
    for r in rows:
        c = stored[r["candidate_id"]]
        assert r["parent_ids"] == c.parents
        assert r["code"] == (c.code or None)
        if c.completion is not None:
            assert r["completion"] == c.completion.text
            assert r["prompt"] == c.prompt and r["prompt"][-1]["role"] == "user"
            assert r["messages"] == c.prompt + [{"role": "assistant", "content": c.completion.text}]
        if c.result is not None:
            assert r["verdict"] == c.result.verdict.value and r["correct"] == c.result.correct
            assert r["speedup_eager"] == c.result.speedup
        assert r["task"] == r["task_name"]
    opt = [r for r in rows if r["run_id"] == data.optimize_run]
    assert all(r["model"] == "fake-model" and r["strategy"] == "refine" and r["prompt"] for r in opt)
    assert {r["verdict"] for r in opt} >= {"compile_error", "incorrect", "correct"}
    assert max(r["speedup_eager"] or 0 for r in opt) == pytest.approx(2.3)
    man = [r for r in rows if r["run_id"] == data.manual_run]
    sig = [r for r in man if r["task_hash"] == data.sigmoid.hash]
    assert all(r["level"] == 1 and r["problem_id"] == 21 for r in sig)
    fmt = next(r for r in man if r["verdict"] == "format_error")
    assert fmt["code"] is None and fmt["completion"] == "I cannot write this kernel." and fmt["error_class"] == "format"
    assert fmt["message"] == "no code block" and fmt["correct"] is False
    pending = [r for r in man if r["verdict"] is None]
    assert len(pending) == 1 and pending[0]["hardware"] is None
    assert all(v is None for v in pending[0]["rewards"].values())
    code_only = next(r for r in man if r["completion"] is None)
    assert code_only["prompt"] is None and code_only["messages"] is None and code_only["speedup_eager"] == 9.0
    assert json.loads(code_only["strategy_info"]) == {"row": "gen:1"}
    first = man[0]
    assert first["replayed"] is True and first["hardware"] == {"gpu": "NVIDIA H200", "driver": "580.1",
                                                                 "torch": "2.9.0"}
    assert first["speedup_eager_ci_low"] is None and first["candidate_ms"] == pytest.approx(1 / 3)
    s15 = next(r for r in sig if r["speedup_eager"] == 1.5)
    s12 = next(r for r in sig if r["speedup_eager"] == 1.2)
    assert s15["parent_ids"] == [s12["candidate_id"]]


def test_code_only_left_out_by_default(data, store):
    rows, skipped = collect(store, _runs(data))
    assert skipped == 1 and all(r["completion"] is not None for r in rows)


def test_correct_only_count(data, store):
    rows, _ = collect(store, _runs(data), ExportOptions(correct_only=True))
    expected = sum(1 for rid in _runs(data) for c in store.candidates(rid)
                   if c.result is not None and c.result.correct and c.completion is not None)
    assert len(rows) == expected and expected >= 4
    assert all(r["correct"] and r["verdict"] == "correct" for r in rows)
    rows, _ = collect(store, _runs(data), ExportOptions(correct_only=True, include_code_only=True))
    assert len(rows) == expected + 1


def test_best_per_task_picks_the_max(data, store):
    rows, _ = collect(store, _runs(data), ExportOptions(best_per_task=True))
    got = {(r["run_id"], r["task_hash"]): r for r in rows}
    assert len(rows) == len(got) == 3  # (optimize, relu), (manual, relu), (manual, sigmoid)
    assert got[(data.optimize_run, data.relu.hash)]["candidate_id"] == store.best(data.optimize_run).id
    assert got[(data.optimize_run, data.relu.hash)]["speedup_eager"] == pytest.approx(2.3)
    assert got[(data.manual_run, data.relu.hash)]["speedup_eager"] == 3.0
    assert got[(data.manual_run, data.sigmoid.hash)]["speedup_eager"] == 1.5  # the 9x one has no completion
    rows, _ = collect(store, _runs(data), ExportOptions(best_per_task=True, include_code_only=True))
    best = {(r["run_id"], r["task_hash"]): r["speedup_eager"] for r in rows}
    assert best[(data.manual_run, data.sigmoid.hash)] == 9.0
    assert store.best(data.manual_run, data.sigmoid.hash).result.speedup == 9.0


def test_rewards_numeric_and_consistent_with_registry(data, store):
    names = ["log_speedup", "staged", "speedup", "penalized"]
    rows, _ = collect(store, _runs(data), ExportOptions(rewards=names, include_code_only=True))
    by_id = {c.id: c for rid in _runs(data) for c in store.candidates(rid)}
    for r in rows:
        assert list(r["rewards"]) == names
        c = by_id[r["candidate_id"]]
        if c.result is None and not c.format_error:
            assert all(v is None for v in r["rewards"].values())
            continue
        res = c.result.to_dict() if c.result is not None else None
        for name in names:
            want = rewards.get(name)([r["completion"]], [res])[0]
            got = r["rewards"][name]
            assert isinstance(got, float) and math.isfinite(got)
            assert got == pytest.approx(want), (name, r["verdict"])
    best = next(r for r in rows if r["speedup_eager"] == 3.0)
    assert best["rewards"]["log_speedup"] == pytest.approx(math.log(3.0)) and best["rewards"]["staged"] == 1.0
    fmt = next(r for r in rows if r["verdict"] == "format_error")
    assert fmt["rewards"]["log_speedup"] == -1.0 and fmt["rewards"]["staged"] == 0.0
    default, _ = collect(store, _runs(data))
    assert all(list(r["rewards"]) == ["log_speedup", "staged"] for r in default)


def test_contrastive_groups_by_run_and_task(data, store):
    rows, _ = collect(store, [data.manual_run], ExportOptions(rewards=["contrastive"], include_code_only=True))
    sig = [r for r in rows if r["task_hash"] == data.sigmoid.hash and r["correct"]]
    z = sorted(r["rewards"]["contrastive"] for r in sig)  # 1.2x, 1.5x, 9x within one group
    assert z[0] < 0 < z[-1] and sum(z) == pytest.approx(0.0, abs=1e-9)
    relu = [r for r in rows if r["task_hash"] == data.relu.hash]
    assert next(r for r in relu if r["correct"])["rewards"]["contrastive"] == 0.0  # alone in its group


def test_unknown_reward_is_an_error(data, store):
    with pytest.raises(ExportError) as exc:
        collect(store, _runs(data), ExportOptions(rewards=["nope"]))
    assert exc.value.code == 2 and "nope" in str(exc.value)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_both_formats_load_with_datasets(data, store, tmp_path, hf_offline, fmt):
    opts = ExportOptions(include_code_only=True, with_results=True)
    out = tmp_path / "new" / "dir" / f"data.{fmt}"
    summary = export_runs(store, _runs(data), out, fmt=fmt, opts=opts)
    rows, _ = collect(store, _runs(data), opts)
    assert out.is_file() and summary.path == out and summary.rows == len(rows)
    ds = _datasets().load_dataset("json" if fmt == "jsonl" else "parquet", data_files=str(out), split="train",
                               cache_dir=hf_offline)
    assert ds.num_rows == len(rows)
    assert ds.column_names == list(COLUMNS) + ["evaluation"]
    assert ds["candidate_id"] == [r["candidate_id"] for r in rows]
    assert ds["speedup_eager"] == [r["speedup_eager"] for r in rows]
    assert ds["correct"] == [r["correct"] for r in rows]
    assert ds["prompt"][0] == rows[0]["prompt"] and ds["messages"][0][-1]["role"] == "assistant"
    assert sum(p is None for p in ds["prompt"]) == 1
    assert [x["log_speedup"] for x in ds["rewards"]] == [r["rewards"]["log_speedup"] for r in rows]
    ev = [json.loads(e) if e else None for e in ds["evaluation"]]
    assert sum(e is not None for e in ev) == sum(r["verdict"] not in (None, "format_error") for r in rows)
    feats = ds.features
    assert feats["speedup_eager"].dtype == "float64" and feats["correct"].dtype == "bool"
    assert feats["rewards"]["staged"].dtype == "float64"


def test_sft_and_grpo_views(data, store, tmp_path, hf_offline):
    out = tmp_path / "sft.parquet"
    export_runs(store, _runs(data), out, fmt="parquet", opts=ExportOptions(correct_only=True))
    ds = _datasets().load_dataset("parquet", data_files=str(out), split="train", cache_dir=hf_offline)
    sft = ds.select_columns(["messages"])
    assert all(m[-1]["role"] == "assistant" and "```" in m[-1]["content"] for m in sft["messages"])
    grpo = ds.select_columns(["prompt", "task"])
    assert all(p[-1]["role"] == "user" for p in grpo["prompt"]) and set(grpo["task"]) <= {"relu", "sigmoid"}


def test_export_into_a_folder_and_empty_parquet_columns_typed(data, store, tmp_path, hf_offline):
    folder = tmp_path / "outdir"
    folder.mkdir()
    summary = export_runs(store, [data.manual_run[:6]], folder, fmt="parquet",
                          opts=ExportOptions(best_per_task=True))
    assert summary.path == folder / "kernelsmith-export.parquet" and summary.runs == [data.manual_run]
    ds = _datasets().load_dataset("parquet", data_files=str(summary.path), split="train", cache_dir=hf_offline)
    assert ds.num_rows == 2 and ds.features["speedup_eager_ci_low"].dtype == "float64"  # all null, still typed


# --- CLI -------------------------------------------------------------------------------------

def _app():
    import typer

    from kernelsmith.cli.export import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command, so `export` stays a named subcommand
        pass
    return app


def _cli(*args):
    return CliRunner().invoke(_app(), ["export", *args])


def test_cli_exports(data, tmp_path):
    out = tmp_path / "a" / "b" / "x.jsonl"
    res = _cli(*_runs(data), "--format", "jsonl", "--out", str(out), "--db", data.url, "--correct-only",
               "--reward", "speedup", "--reward", "log_speedup")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines and all(x["correct"] for x in lines) and all(list(x["rewards"]) == ["speedup", "log_speedup"]
                                                              for x in lines)
    assert "evaluation" not in lines[0]
    assert f"wrote {len(lines)} rows" in res.output


def test_cli_unknown_run_exits_2(data, tmp_path):
    res = _cli(data.optimize_run, "r-doesnotexist", "--out", str(tmp_path / "x.jsonl"), "--db", data.url)
    assert res.exit_code == 2 and "r-doesnotexist" in res.output
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_empty_selection_exits_1(data, tmp_path):
    store = RunStore(data.url)
    empty = store.create_run("bench", "m", "generations", {}, {})
    store.close()
    res = _cli(empty, "--out", str(tmp_path / "x.jsonl"), "--db", data.url)
    assert res.exit_code == 1 and "nothing to export" in res.output
    assert not (tmp_path / "x.jsonl").exists()


def test_cli_bad_format_and_reward_exit_2(data, tmp_path):
    res = _cli(data.manual_run, "--format", "csv", "--out", str(tmp_path / "x.csv"), "--db", data.url)
    assert res.exit_code == 2 and "csv" in res.output
    res = _cli(data.manual_run, "--reward", "nope", "--out", str(tmp_path / "x.jsonl"), "--db", data.url)
    assert res.exit_code == 2 and "nope" in res.output


def test_cli_code_only_run_hints_the_flag(data, tmp_path):
    from kernelsmith.search.types import Candidate
    from tests.search.search_fakes import correct, kernel

    store = RunStore(data.url)
    run = store.create_run("bench", "generations", "generations", {}, {})
    cid = store.add_candidate(run, data.relu.hash, Candidate(code=kernel("g1")))
    store.add_evaluation(cid, correct(1.1))
    store.close()
    res = _cli(run, "--out", str(tmp_path / "g.jsonl"), "--db", data.url)
    assert res.exit_code == 1 and "--include-code-only" in res.output
    res = _cli(run, "--out", str(tmp_path / "g.jsonl"), "--db", data.url, "--include-code-only")
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "g.jsonl").read_text())
    assert row["prompt"] is None and row["completion"] is None and row["code"] and row["correct"] is True
