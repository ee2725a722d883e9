"""The process sandbox's fork server never outlives the process that started it (issue
14): Ctrl-C or SIGKILL at any point of its start-up or while it serves leaves no process;
and jobs run wherever the interpreter lives (a venv whose base installation is under a
mode-700 directory, as root) instead of failing as the candidate's fault."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from kernelsmith.sandbox import local
from kernelsmith.sandbox.base import source_root

ORCHESTRATOR = textwrap.dedent("""
    import sys, time
    from kernelsmith.sandbox.local import LocalSandbox
    from kernelsmith.sandbox.base import ServerSpec
    print("starting", flush=True)
    srv = LocalSandbox().start(ServerSpec(role="cpu"))
    print("up", flush=True)
    time.sleep(600)
""")


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("sig,when", [(signal.SIGINT, "start-up"), (signal.SIGKILL, "start-up"),
                                      (signal.SIGINT, "serving"), (signal.SIGKILL, "serving")])
def test_server_dies_with_its_parent(sig, when):
    env = dict(os.environ, PYTHONPATH=source_root())
    proc = subprocess.Popen([sys.executable, "-c", ORCHESTRATOR], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "starting"
        if when == "serving":
            assert proc.stdout.readline().strip() == "up"
        else:
            deadline = time.monotonic() + 20  # the server is importing torch: no socket yet
            while not _descendants(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        procs = _descendants(proc.pid)
        assert procs, "no fork server was started"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(procs)
        for pid in left:
            psutil.Process(pid).kill()
        assert left == [], f"{signal.Signals(sig).name} during {when} left {left} running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unreachable_base_interpreter_means_jobs_keep_our_user(monkeypatch, tmp_path):
    """sys.prefix reachable, sys.base_prefix not (a venv from a pyenv/conda under /root):
    jobs must not become nobody, who could not import the standard library."""
    private = tmp_path / "private"
    (private / "python").mkdir(parents=True)
    private.chmod(0o700)
    monkeypatch.setattr(sys, "base_prefix", str(private / "python"))
    assert str(private / "python") in local.unreachable(local.job_paths())
    if os.geteuid() != 0:
        pytest.skip("only root drops jobs to nobody")
    sb = local.LocalSandbox()
    assert not sb.drop_privileges
    assert "nobody cannot reach" in sb.describe()


def test_unreachable_cache_means_jobs_keep_our_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root drops jobs to nobody")
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700)
    sb = local.LocalSandbox()
    sb.add_mount(str(private / "cache"))
    assert not sb.drop_privileges
    assert "nobody cannot reach" in sb.describe()


@pytest.mark.skipif(os.geteuid() != 0, reason="the root/venv case of issue 14")
def test_job_runs_in_a_venv_of_a_private_interpreter(tmp_path):
    """The README's set-up in a venv made from an interpreter under a mode-700 directory
    (here: whatever this one is, moved behind one if it is not): a real job runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True)
    os.chmod(tmp_path, 0o755)
    home = tmp_path / "home"
    code = textwrap.dedent(f"""
        import json, sys
        from kernelsmith.sandbox.local import LocalSandbox
        from kernelsmith.cli.doctor import sandbox_job
        sb = LocalSandbox()
        print(json.dumps({{"job": sandbox_job(sb), "describe": sb.describe(), "base": sys.base_prefix}}))
    """)
    # --system-site-packages reaches the base interpreter's packages, not those of the venv
    # this test may run in (CI's): this one's are put on the path, as an installed venv has them.
    here = [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([source_root(), *here]), KERNELSMITH_HOME=str(home))
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["job"]["ok"], got
    if local.unreachable([got["base"]]):
        assert "jobs run as the current user" in got["describe"], got
