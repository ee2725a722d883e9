from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from kernelsmith.cli import bench as cli_bench
from tests.bench.common import fake_checkout, ref_src
from tests.search.search_fakes import kernel


def app() -> typer.Typer:
    a = typer.Typer()
    cli_bench.register(a)

    @a.command()
    def _other() -> None:  # a second command keeps typer in multi-command mode
        pass

    return a


def run(*args, env=None):
    return CliRunner().invoke(app(), ["bench", *args], env=env)


def test_bad_inputs_are_clear_errors(tmp_path):
    db = str(tmp_path / "runs.db")
    r = run("--kernelbench", str(tmp_path / "missing"), "--db", db)
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output
    r = run("--suite", "tasks", "--kernelbench", str(tmp_path), "--db", db)
    assert r.exit_code == 2 and "exactly one" in r.output
    root = fake_checkout(tmp_path / "kb")
    r = run("--kernelbench", str(root), "--tasks", "50-60", "--db", db)
    assert r.exit_code == 2 and "no tasks selected" in r.output
    r = run("--kernelbench", str(root), "--tasks", "9-1", "--db", db)
    assert r.exit_code == 2 and "backwards" in r.output
    r = run("--generations", str(tmp_path / "nope.jsonl"), "--db", db)
    assert r.exit_code == 2 and "not found" in r.output
    r = run("--suite", "tasks", "--gpus", "0,x", "--db", db)
    assert r.exit_code == 2 and "--gpus" in r.output
    r = run("--resume", "r-nope", "--db", db)
    assert r.exit_code == 2 and "no run" in r.output


def test_no_gpu_is_a_clear_error(tmp_path):
    rows = tmp_path / "g.jsonl"
    rows.write_text(json.dumps({"level": 1, "problem_id": 1, "code": kernel("a"), "reference": ref_src("x")}) + "\n")
    r = run("--generations", str(rows), "--db", str(tmp_path / "runs.db"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and "Traceback" not in r.output
