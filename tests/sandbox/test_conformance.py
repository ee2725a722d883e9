"""One conformance suite for every sandbox: what a hostile job can and cannot do.

Each test runs against both the process sandbox and the Docker sandbox (the `harness`
fixture in conftest.py: one cpu-role server per sandbox for the whole module), and
checks afterwards that the server is still healthy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time

import psutil
import pytest

from kernelsmith.sandbox.base import SECRET_MARKERS, Limits, source_root
from kernelsmith.sandbox.local import netns_prefix

NOBODY = 65534


# (a) -------------------------------------------------------------------------------


def test_returns_main_value(harness):
    out = harness.run("returns")
    assert out.status == "ok", out
    assert out.exit == 0
    assert out.result == {"returned": {"answer": 42, "items": [1, 2.5, "three", None, True],
                                       "text": "h\u00e9llo"}}


def test_parallel_jobs(harness):
    futs = [harness.submit("returns") for _ in range(6)]
    outs = [f.result(timeout=60) for f in futs]
    assert [o.status for o in outs] == ["ok"] * 6
    assert len({f.scratch for f in futs}) == 6  # one private scratch per job


# (b) -------------------------------------------------------------------------------


def test_environment_has_no_secrets(harness):
    assert os.environ["OPENAI_API_KEY"] == harness.secrets["OPENAI_API_KEY"]  # the orchestrator has them
    out = harness.run("environment")
    assert out.status == "ok", out
    got = out.result["returned"]
    env = got["env"]
    for key in harness.secrets:
        assert key not in env
    assert harness.canary[0] not in env  # an allowlist, not only a blocklist
    assert not [k for k in env if any(m in k.upper() for m in SECRET_MARKERS)]
    assert not [k for k, v in env.items() if "sk-test-secret" in v]
    assert env["HOME"] == out.scratch
    assert env["TMPDIR"].startswith(out.scratch + os.sep)
    assert os.path.realpath(got["cwd"]) == os.path.realpath(out.scratch)
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # a cpu-role server sees no GPU
    if harness.as_nobody:
        assert got["uid"] == NOBODY
    # ... nor can it read the secret out of another process's environment (the
    # orchestrator's /proc/PID/environ): both sandboxes give jobs their own PID namespace.
    assert got["leaks"] == []
    harness.assert_healthy()


# (c) -------------------------------------------------------------------------------


def _host_ip() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ip = s.getsockname()[0]
            return None if ip.startswith("127.") else ip
    except OSError:
        return None


def test_no_network(harness):
    if harness.kind == "process" and not netns_prefix():
        pytest.skip("no network namespace available to the process sandbox here (unshare --net)")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))  # 127.0.0.1 and this host's own address
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        # The listener really is reachable from outside the sandbox.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        listener.accept()[0].close()
        out = harness.run("network", {"port": port, "host_ip": _host_ip()})
        assert out.status == "ok", out
        got = out.result["returned"]
        assert got["loopback"] != "connected", got
        assert got["host_ip"] != "connected", got
        assert got["external"] != "connected", got
        assert set(got["interfaces"]) <= {"lo"}, got  # no interface but loopback
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing from the sandbox ever arrived
    finally:
        listener.close()
    harness.assert_healthy()


# (d) -------------------------------------------------------------------------------


def host_pids(root_pid: int, ns_pids: list[int]) -> list[int]:
    """Host pids of the processes below `root_pid` whose innermost (namespace) pid is in
    `ns_pids`: the process sandbox gives jobs their own PID namespace."""
    found = []
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            with open(f"/proc/{p.pid}/status") as f:
                line = next(x for x in f if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if int(line.split()[-1]) in ns_pids:
            found.append(p.pid)
    return found


def server_descendants(server) -> list[int]:
    """Live processes below the process sandbox's fork server (none when it is idle)."""
    out = []
    for p in psutil.Process(server.pid).children(recursive=True):
        try:
            # (server.pid is `unshare`; its child is the fork server itself)
            if p.status() != psutil.STATUS_ZOMBIE and p.ppid() != server.pid:
                out.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def _wait_gone(check, deadline_s: float = 5.0):
    end = time.monotonic() + deadline_s
    left = check()
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = check()
    return left


def test_timeout_kills_every_process(harness):
    timeout = 2.0
    out = harness.run("fork_and_sleep", {"children": 20}, timeout=timeout)
    assert out.status == "timeout", out
    assert out.result is None
    assert out.wall < timeout + 3, f"timeout reported after {out.wall:.1f} s"
    with open(os.path.join(out.scratch, "children.json")) as f:
        pids = json.load(f)
    every = [pids["job"], *pids["children"]]
    assert len(pids["children"]) == 20

    # Seen from inside the sandbox (its pid namespace, for Docker): none survives. (The
    # process sandbox gives every job a PID namespace of its own, where the same numbers
    # name the checking job's processes: there only the host's view below counts.)
    def survivors():
        o = harness.run("check_pids", {"pids": every})
        assert o.status == "ok", o
        return o.result["returned"]

    if harness.kind == "docker":
        assert _wait_gone(survivors) == []
    else:
        assert _wait_gone(lambda: server_descendants(harness.server)) == []
    # And seen from outside.
    if harness.kind == "process":
        def host_survivors():
            alive = []
            for pid in host_pids(harness.server.pid, every):
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        alive.append(pid)
                except psutil.NoSuchProcess:
                    pass
            return alive

        assert _wait_gone(host_survivors) == []
    else:
        def container_processes():
            procs = harness.server.container.top(ps_args="-o pid,stat,args")["Processes"]
            # Live processes besides docker-init: the fork server alone should remain.
            live = [p for p in procs if not p[1].startswith("Z") and "docker-init" not in p[2]]
            return live if len(live) != 1 else []

        assert _wait_gone(container_processes) == []
    harness.assert_healthy()


def test_daemon_escaping_the_group_is_killed(harness):
    out = harness.run("escape_daemon")
    assert out.status == "ok", out
    daemon = out.result["returned"]

    def survivors():
        return harness.run("check_pids", {"pids": [daemon]}).result["returned"]

    if harness.kind == "process":  # a PID namespace per job: look from the host
        left = _wait_gone(lambda: server_descendants(harness.server), 3.0)
        for pid in left:
            psutil.Process(pid).kill()
        assert left == [], f"pid {daemon} outlived its job"
        harness.assert_healthy()
        return
    left = _wait_gone(survivors, 3.0)
    if left:
        harness.run("kill_pids", {"pids": left})  # do not leave it running
    assert left == [], f"pid {daemon} outlived its job"


# (e) -------------------------------------------------------------------------------


def test_exit_without_result_is_a_crash(harness):
    out = harness.run("exit_early")
    assert out.status == "crash", out
    assert out.result is None
    assert out.exit == 0
    harness.assert_healthy()


def test_fake_result_on_stdout_is_a_crash(harness):
    out = harness.run("fake_result")
    assert out.status == "crash", out
    assert out.result is None
    assert '{"result": {"returned": 1}}' in out.output  # shown, never parsed
    harness.assert_healthy()


def test_segfault_is_a_crash(harness):
    out = harness.run("segfault")
    assert out.status == "crash", out
    assert out.result is None
    assert out.exit == -11  # SIGSEGV
    harness.assert_healthy()


# (f) -------------------------------------------------------------------------------


def test_huge_output_is_truncated(harness):
    out = harness.run("huge_output", timeout=60)
    assert out.status == "ok", out
    assert out.result == {"returned": "done"}
    assert len(out.output) <= 10_000
    assert out.output.rstrip().endswith("THE-END")  # the tail is what is kept
    assert "bytes of output cut" in out.output
    harness.assert_healthy()


# (g) -------------------------------------------------------------------------------


def test_writes_outside_scratch_fail(harness, shared_dir: str):
    if harness.kind == "process" and not harness.sandbox.drop_privileges:
        pytest.skip("the process sandbox does not drop privileges here (not root, or nobody "
                    "cannot read the Python installation): jobs may write what this user can")
    if harness.kind == "docker":  # the package is mounted read-only at a fixed path
        from kernelsmith.sandbox.docker import PACKAGE_MOUNT

        src_probe = os.path.join(PACKAGE_MOUNT, "kernelsmith", "ks-probe")
    else:
        src_probe = os.path.join(source_root(), "kernelsmith", "ks-probe")
    shared_probe = os.path.join(shared_dir, "ks-probe")
    outside = ["/etc/ks-probe", "/usr/ks-probe", "/ks-probe", "/root/ks-probe", src_probe, shared_probe]
    inside = ["inside-scratch.txt", "tmp/inside-tmp.txt"]
    out = harness.run("write_files", {"paths": outside + inside})
    assert out.status == "ok", out
    got = out.result["returned"]
    for path in outside:
        assert got[path] != "ok", f"a job wrote {path}"
        assert not os.path.exists(path)
    for path in inside:
        assert got[path] == "ok", (path, got[path])
    if harness.kind == "docker":
        # The root file system and the read-only mounts refuse writes even where the
        # permissions would allow them.
        for path in ("/ks-probe", src_probe, shared_probe):
            assert got[path].endswith(":EROFS"), (path, got[path])
    else:
        assert got["/root/ks-probe"] == "PermissionError:EACCES"
    harness.assert_healthy()


def test_privileges(harness):
    out = harness.run("limits")
    assert out.status == "ok", out
    got = out.result["returned"]
    if harness.as_nobody:
        assert got["uid"] == NOBODY
        assert int(got["status"]["CapEff"], 16) == 0
        assert int(got["status"]["CapPrm"], 16) == 0
    if harness.kind == "docker":
        assert got["status"]["NoNewPrivs"] == "1"
        assert int(got["status"]["CapBnd"], 16) == 0  # cap_drop=ALL


# (i) -------------------------------------------------------------------------------


def test_rlimits_applied(harness):
    out = harness.run("limits")
    assert out.status == "ok", out
    lim = harness.sandbox.limits.rlimits()
    got = out.result["returned"]["rlimits"]
    for name in ("fsize", "nofile", "cpu"):
        assert got[name][0] <= lim[name], (name, got[name], lim[name])
    assert got["fsize"] == [lim["fsize"], lim["fsize"]]
    assert got["nofile"] == [lim["nofile"], lim["nofile"]]


def test_host_memory_limit_kills_the_job(harness):
    # No rlimit can cap host memory under CUDA (it reserves huge address space): the fork
    # server samples the RSS of each job's process group and kills it past the limit.
    server = harness.start(Limits(host_memory_mb=256))
    out = harness.run("memory_hog", {"mb": 3072}, server=server, timeout=90)
    assert out.status == "memory", out
    assert 256 < out.memory_mb < 3072, out.memory_mb
    assert out.wall < 60
    harness.assert_healthy()


def test_rlimits_enforced_and_close(harness):
    server = harness.start(harness.small_limits)
    out = harness.run("exceed_limits", {"write_mb": 3, "open_files": 200}, server=server)
    assert out.status == "ok", out
    got = out.result["returned"]
    assert got["fsize"] == "EFBIG", got
    assert got["big_size"] == harness.small_limits.fsize_mb << 20
    assert got["nofile"] == "EMFILE", got

    # close() while a job runs: the job is reported lost, it and the server and their
    # files go.
    survived = False
    fut = harness.submit("sleep", timeout=120, server=server)
    pid_file = os.path.join(fut.scratch, "pid")
    deadline = time.monotonic() + 10
    while not os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(pid_file) as f:
        job_pid = int(f.read())
    if harness.kind == "process":  # the namespace pid the job wrote -> its host pid
        (job_pid,) = host_pids(server.pid, [job_pid]) or [None]
        assert job_pid is not None
    server.close()
    assert fut.result(timeout=15).status == "lost"
    assert not server.alive()
    assert not os.path.exists(server._scratch_root)
    if harness.kind == "docker":
        import docker

        with pytest.raises(docker.errors.NotFound):  # and every process in it with it
            harness.sandbox.client().containers.get(server.container.id)
    else:
        def job_alive():
            try:
                return psutil.Process(job_pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        survived = bool(_wait_gone(job_alive, 3.0))
        if survived:
            psutil.Process(job_pid).kill()  # do not leave it running
        assert not survived, "a job in flight outlived close()"
    late = server.submit("script", {"path": "/nonexistent"}, timeout=5)
    assert late.result(timeout=5).status == "lost"
    shutil.rmtree(server._scratch_root, ignore_errors=True)  # the process sandbox made it again
    harness.assert_healthy()  # the module's own server is unaffected


def test_a_forged_result_is_not_a_result(harness):
    """The job (the candidate runs in it) writes its own message into the result pipe and
    exits 0: the server sees no token of its own in it and says `forged`."""
    out = harness.run("forge_result")
    assert out.status == "forged", out
    harness.assert_healthy()
