"""`kernelsmith serve` refuses unsafe or broken setups with clear messages (no server started)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from kernelsmith.cli import serve as cli_serve
from kernelsmith.serve.service import RequestError, TaskIndex
from kernelsmith.task import Task
from serve_fakes import GELU_SRC, TASK_SRC, TOKEN, write_tasks


def app():
    a = typer.Typer()
    cli_serve.register(a)

    @a.command()
    def other():  # two commands, so typer keeps the `serve` subcommand name
        pass

    return a


def run(args, env=None):
    return CliRunner().invoke(app(), ["serve", *args], env=env)


def test_refuses_without_token(tmp_path, monkeypatch):
    monkeypatch.delenv("KERNELSMITH_SERVE_TOKEN", raising=False)
    r = run(["--tasks", str(write_tasks(tmp_path))])
    assert r.exit_code == 2 and "KERNELSMITH_SERVE_TOKEN" in r.output and "--no-auth" in r.output


def test_no_auth_only_on_loopback(tmp_path):
    r = run(["--tasks", str(write_tasks(tmp_path)), "--no-auth", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "only allowed with --host 127.0.0.1" in r.output


def test_bad_flags(tmp_path):
    env = {"MY_TOKEN": TOKEN}
    tasks = str(write_tasks(tmp_path))
    r = run(["--tasks", tasks, "--token-env", "MY_TOKEN", "--gpus", "0,x"], env)
    assert r.exit_code == 2 and "--gpus" in r.output
    r = run(["--tasks", tasks, "--token-env", "MY_TOKEN", "--reward", "nope"], env)
    assert r.exit_code == 2 and "unknown reward 'nope'" in r.output
    r = run(["--tasks", str(tmp_path / "missing"), "--token-env", "MY_TOKEN"], env)
    assert r.exit_code == 2 and "no such task file or folder" in r.output
    r = run(["--tasks", tasks], {"KERNELSMITH_SERVE_TOKEN": "short"})
    assert r.exit_code == 2 and "at least 16" in r.output


def test_token_resolution(monkeypatch):
    monkeypatch.setenv("X_TOKEN", TOKEN)
    assert cli_serve.resolve_token("X_TOKEN", False, "0.0.0.0") == TOKEN
    assert cli_serve.resolve_token("X_TOKEN", True, "127.0.0.1") is None
    assert cli_serve.parse_gpus("0, 1,3") == [0, 1, 3]
    with pytest.raises(ValueError):
        cli_serve.parse_gpus("0,0")


def test_task_index_names_and_collisions(tmp_path):
    a, b = tmp_path / "level1", tmp_path / "level2"
    a.mkdir()
    b.mkdir()
    (a / "relu.py").write_text(TASK_SRC)
    (b / "relu.py").write_text(GELU_SRC)
    (b / "gelu.py").write_text(GELU_SRC)
    idx = TaskIndex.load([tmp_path])
    assert idx.resolve("level2/relu").source == GELU_SRC and idx.resolve("gelu.py").name == "gelu"
    with pytest.raises(RequestError, match="ambiguous.*level1/relu, level2/relu"):
        idx.resolve("relu")
    assert idx.resolve(Task.from_source(TASK_SRC).hash).source == TASK_SRC
