"""CLI conventions (issue 14): flags, help on every option, -h, --version, one name per
concept, masked secrets, errors on one line, nothing written before the arguments (and the
GPU) are checked, --dry-run on a CPU, serve refusing to start without a GPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kernelsmith.cli import app
from kernelsmith.cli.errors import MaskingFilter, fail, mask_secrets

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "tasks" / "level1" / "001_leaky_relu_scale.py"
REPLIES = ROOT / "examples" / "leaky_relu_replies.json"
SECRET = "s3cr3t-pw"
PG = f"postgresql://kernel:{SECRET}@127.0.0.1:1/runs"


def invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def commands():
    root = typer.main.get_command(app)
    stack = [(name, cmd) for name, cmd in root.commands.items()]
    while stack:
        name, cmd = stack.pop()
        if hasattr(cmd, "commands"):
            stack += [(f"{name} {n}", c) for n, c in cmd.commands.items()]
        else:
            yield name, cmd


def test_help_version_and_short_help():
    r = invoke("-h")
    assert r.exit_code == 0 and "optimize" in r.output and "-h, --help" in r.output
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.startswith("kernelsmith ")


@pytest.mark.parametrize("name", [n for n, _ in commands()])
def test_every_command_help_is_clean(name):
    r = invoke(*name.split(), "-h")
    assert r.exit_code == 0, r.output
    assert "--no-no-" not in r.output and "<bool>" not in r.output


def test_every_option_has_help():
    missing = [f"{name} {p.opts[0]}" for name, cmd in commands() for p in cmd.params
               if p.param_type_name == "option" and not p.hidden and not (p.help or "").strip()]
    assert missing == []


def test_one_name_per_concept():
    opts = {name: {o for p in cmd.params if p.param_type_name == "option" and not p.hidden for o in p.opts}
            for name, cmd in commands()}
    for name in ("eval", "optimize", "bench", "serve"):
        assert "--gpus" in opts[name] and "--gpu" not in opts[name], name
    for name in ("optimize", "bench"):  # budgets wherever a search runs
        assert {"--budget", "--max-tokens", "--max-cost", "--max-minutes", "--patience"} <= opts[name], name
    assert "--suite" in opts["serve"] and "--tasks" not in opts["serve"]  # --tasks means problem ids (bench)
    for name in ("eval", "compile", "doctor", "runs list", "runs show", "leaderboard"):
        assert "--json" in opts[name], name


def test_mask_secrets():
    assert mask_secrets(PG) == "postgresql://kernel:***@127.0.0.1:1/runs"
    assert mask_secrets("postgresql+psycopg://u:p%40ss@h/db and https://a:b@x.org") == \
        "postgresql+psycopg://u:***@h/db and https://a:***@x.org"
    assert mask_secrets("host=h password=hunter2 user=u") == "host=h password=*** user=u"
    assert mask_secrets("postgresql://u:p@s/s@h:5432/db failed") == "postgresql://u:***@h:5432/db failed"
    assert mask_secrets("cannot open 'mysql://root:pw@db/x': refused") == "cannot open 'mysql://root:***@db/x': refused"
    assert mask_secrets("sqlite:///runs.db, postgresql://u@h/db") == "sqlite:///runs.db, postgresql://u@h/db"


def test_log_records_are_masked():
    rec = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot reach %s", (PG,), None)
    MaskingFilter().filter(rec)
    assert SECRET not in rec.getMessage() and "kernel:***@" in rec.getMessage()


@pytest.mark.parametrize("args", [("runs", "list", "--db", PG), ("leaderboard", "--db", PG),
                                  ("export", "r-x", "--out", "o.jsonl", "--db", PG),
                                  ("bench", "--suite", "tasks", "--tasks", "1", "--db", PG, "--model", "m",
                                   "--gpus", "0,x")])
def test_database_password_never_printed(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(*args)
    assert r.exit_code != 0
    assert SECRET not in r.output


def test_database_password_masked_in_errors(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    r = invoke("runs", "list", "--db", PG)
    assert r.exit_code == 2 and "kernel:***@127.0.0.1" in r.output and SECRET not in r.output


def test_errors_are_not_hard_wrapped(capsys):
    long = "a message " + "x" * 150 + " /some/very/long/path/that/should/stay/on/one/line.py not found"
    with pytest.raises(typer.Exit):
        fail(long)
    out = capsys.readouterr().err
    assert out.strip() == "error: " + long


def test_failing_optimize_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"KERNELSMITH_HOME": str(tmp_path / "home"), "KERNELSMITH_SANDBOX": "process"}
    r = invoke("optimize", str(TASK), "--model", f"scripted:{REPLIES}", "--executor", "nope", env=env)
    assert r.exit_code == 2 and "--executor" in r.output
    r = invoke("optimize", str(tmp_path / "missing.py"), "--model", f"scripted:{REPLIES}", env=env)
    assert r.exit_code == 2 and "not found" in r.output
    r = invoke("optimize", str(TASK), "--model", f"scripted:{REPLIES}", env=env)  # no GPU here
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and "--dry-run" in r.output
    assert not (tmp_path / "runs.db").exists()
    r = invoke("runs", "list", env=env)
    assert r.exit_code == 2 and "no run database" in r.output
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize("name,value", [("KERNELSMITH_OPS_BINDING", "maybe"), ("KERNELSMITH_SPLIT_SOURCES", "y"),
                                        ("KERNELSMITH_HIDE_LAUNCH", "sometimes"), ("KERNELSMITH_WARM_MS", "two")])
@pytest.mark.parametrize("command", [["eval", str(TASK), str(TASK)], ["leaderboard"]])
def test_a_bad_switch_in_the_environment_is_one_error_before_anything_is_written(tmp_path, monkeypatch, name,
                                                                                 value, command):
    monkeypatch.chdir(tmp_path)
    r = invoke(*command, env={"KERNELSMITH_HOME": str(tmp_path / "home"), name: value})
    assert r.exit_code == 2 and f"{name}={value!r}" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs.db").exists() and not (tmp_path / "home").exists()


@pytest.mark.slow
def test_optimize_dry_run_on_a_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"KERNELSMITH_HOME": str(tmp_path / "home"), "KERNELSMITH_SANDBOX": "process"}
    r = invoke("optimize", str(TASK), "--model", f"scripted:{REPLIES}", "-o", "chains=1", "--budget", "3",
               "--dry-run", env=env)
    assert r.exit_code == 0, r.output
    assert "compiled, not run" in r.output and "rejected" in r.output and "compile_error" in r.output
    assert "nothing written" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no runs.db, no kernel, no report


def test_dry_run_only_where_it_applies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("bench", "--suite", str(ROOT / "tasks"), "--dry-run", "--model", "m")
    assert r.exit_code == 2 and "--generations" in r.output
    r = invoke("optimize", "--resume", "r-1", "--dry-run")
    assert r.exit_code == 2 and "--resume" in r.output
    assert not (tmp_path / "runs.db").exists()


def test_serve_refuses_without_a_gpu(tmp_path):
    r = invoke("serve", "--suite", str(ROOT / "tasks" / "level1"), "--no-auth", env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and "does not start" in r.output


@pytest.mark.slow
def test_serve_refuses_when_the_gpu_probe_fails(tmp_path):
    """--gpus 0 on a machine without one: the sandboxed probe says no; nothing listens."""
    env = {"KERNELSMITH_HOME": str(tmp_path / "home"), "KERNELSMITH_SANDBOX": "process"}
    r = invoke("serve", "--suite", str(ROOT / "tasks" / "level1"), "--no-auth", "--gpus", "0", "--port", "0", env=env)
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and "does not start" in r.output
