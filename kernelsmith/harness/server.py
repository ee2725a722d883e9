"""The fork server: the only long-lived process inside a sandbox.

It imports torch (and CuPy) once, without touching CUDA, then forks one child per job.
Forking a pre-imported interpreter is what keeps start-up cheap (KernelBench pays about
5 s of Python + torch import per candidate; a fork costs milliseconds), while a fresh
child per job keeps the isolation of a new process: a poisoned CUDA context, a
monkeypatched torch or a segfault dies with the child.

Protocol: newline-delimited JSON over one accepted Unix-socket connection.
  request  {"id", "job", "args", "timeout", "scratch", "env"}
  response {"id", "status": ok|timeout|crash|error, "exit", "result", "output", "seconds"}
The child writes its result to a pipe the server reads; the candidate's stdout and
stderr go to a file that is only ever shown (truncated), never parsed. The server never
runs job code itself, so a hostile job cannot take it down.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import secrets
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field

OUTPUT_TAIL = 8000  # bytes of a child's stdout/stderr returned to the orchestrator
RESULT_LIMIT = 64 << 20  # a result larger than this is treated as hostile
NOBODY = 65534
# Whether jobs get their own mount and PID namespace (probed once at start-up).
ISOLATION = False
_CHILDREN: dict = {}
_DIE_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # pid -> Child, for the signal handlers and the parent watch


def _probe_isolation() -> bool:
    """Can a forked child unshare a mount and a PID namespace here? (Not in a default
    Docker container, nor as a user without user namespaces.)"""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        try:
            from kernelsmith.sandbox import jobns

            jobns._check(jobns.libc().unshare(jobns.CLONE_NEWNS | jobns.CLONE_NEWPID), "unshare")
            jobns._mount(None, "/", None, jobns.MS_REC | jobns.MS_PRIVATE)
            jobns._mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, st = os.waitpid(pid, 0)
    return os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0


def _die(*_args) -> None:
    """SIGTERM, SIGINT, SIGHUP or the end of the parent: kill every job, then exit. (As
    PID 1 of the sandbox's namespace the server would otherwise ignore SIGTERM.)"""
    for pid in list(_CHILDREN):
        _kill_group(pid)
    os._exit(0)


def _watch_parent(fd: int) -> None:
    """Exit (killing every job) when the process that started us is gone: it holds the
    write end of this pipe, so its death, even by SIGKILL, is end-of-file here."""
    import threading

    def watch() -> None:
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        _die()

    threading.Thread(target=watch, daemon=True, name="ks-parent-watch").start()


@dataclass
class Child:
    req: dict
    pid: int
    rfd: int
    deadline: float
    started: float
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False
    status: int | None = None
    timed_out: bool = False
    memory_mb: float = 0.0  # peak host memory (RSS) of its process group, as sampled
    over_memory: bool = False
    eof_at: float | None = None  # monotonic: when the result pipe closed
    reaped_at: float | None = None  # ... and when the job's process was reaped
    # Written with the result by the job's own code: a result without it was forged by
    # something else that found the pipe (the candidate runs in the job's process).
    token: str = ""


def _preimport() -> None:
    """Import the heavy modules once, before any fork. CUDA stays uninitialised."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    try:
        import cupy  # noqa: F401
    except Exception:  # CuPy is optional: the CuPy backend reports its absence later
        pass
    import kernelsmith.harness.jobs  # noqa: F401

    _preimport_build_tools()
    import kernelsmith.harness.evaluate  # noqa: F401

    _warm_first_uses()


# What torch.utils.cpp_extension imports: every evaluation imports that module (the
# loader patches load_inline), and on the H200 machine, whose venv holds no bytecode for
# setuptools, compiling these sources cost 0.4-0.5 s per job. cpp_extension itself must
# not be imported here: on a CUDA build its import asks torch.cuda.is_available(), which
# initialises the driver and makes CUDA unusable in every forked child (seen on the H200).
BUILD_TOOL_MODULES = ("setuptools", "setuptools.command.build_ext", "torch._appdirs", "torch.utils.file_baton",
                      "torch.utils._cpp_extension_versioner", "torch.utils.hipify.hipify_python",
                      "torch.torch_version")


def _preimport_build_tools() -> None:
    import importlib

    for name in BUILD_TOOL_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an absent one is imported (or not) by the job as before
            pass


def _warm_first_uses() -> None:
    """Pay once, before any fork, the lazy set-up that each child would otherwise pay on
    first use: FlopCounterMode's first count (imports, dispatch tables) cost each child
    about a second here and 5-8 s on the H200 machine. CPU tensors only, so CUDA stays
    uninitialised."""
    import torch
    import torch.profiler  # noqa: F401
    from torch.utils.flop_counter import FlopCounterMode

    from kernelsmith.harness.provenance import cupti_teardown

    cupti_teardown()  # in every job's environment from the start (the surface's baseline has it)

    # Tiny tensors and one thread: an OpenMP parallel region before fork() can hang the
    # child (GNU OpenMP is not fork-safe), so none may start here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(2, 8)
        with FlopCounterMode(display=False), torch.no_grad():
            torch.softmax(x @ torch.randn(8, 8), dim=-1)
    finally:
        torch.set_num_threads(threads)
    # torch queues this registration for CUDA's first use, in every child (0.2 s each on
    # the H200 machine); it is dispatcher bookkeeping, no CUDA call, and idempotent.
    register = getattr(torch.cuda, "_register_triton_kernels", None)
    if callable(register):
        try:
            register()
        except Exception:  # noqa: BLE001 - a private hook of torch's: the child pays as before
            pass
    from kernelsmith.harness import surface

    surface.prefork()  # last: after every import and first use above
    # Everything alive now is the children's inherited heap: no collection in a child need
    # walk it (a full collection at the evaluation's end cost 0.16 s), and pages stay shared.
    gc.freeze()


def _apply_limits(limits: dict) -> None:
    for name, value in limits.items():
        res = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if res is None or value is None:
            continue
        try:
            resource.setrlimit(res, (int(value), int(value)))
        except (ValueError, OSError):
            pass  # e.g. a limit above the hard limit: keep the inherited one


def _drop_privileges(scratch: str) -> None:
    """When the server runs as root (the GPU machine does), children become nobody."""
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _child_main(req: dict, wfd: int, token: str) -> None:
    """Runs in the forked child. Never returns.

    With namespaces (see kernelsmith/sandbox/jobns.py) this child only sets the job up:
    it unshares a mount and a PID namespace, mounts the private /tmp, /var/tmp and
    /dev/shm, and forks PID 1 of the job's namespace, which forks the job and, when the
    job exits, exits too, so that the kernel kills whatever the job left running. Without
    them the job runs in this child (its process group and orphans are killed by the
    server, its files in the temporary directories swept)."""
    code = 0
    try:
        from kernelsmith.sandbox import jobns

        os.setsid()  # own process group: a timeout kills everything it started
        jobns.libc().prctl(jobns.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the server
        scratch = req["scratch"]
        os.makedirs(scratch, exist_ok=True)
        if req.get("drop_privileges") and os.geteuid() == 0:
            for root, dirs, files in os.walk(scratch):
                os.chown(root, NOBODY, NOBODY)
                for f in files:
                    os.chown(os.path.join(root, f), NOBODY, NOBODY)
            for path in req.get("writable", []):
                os.makedirs(path, exist_ok=True)
                os.chown(path, NOBODY, NOBODY)
        else:
            for path in req.get("writable", []):
                os.makedirs(path, exist_ok=True)
        log = os.open(os.path.join(scratch, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if req.get("drop_privileges") and os.geteuid() == 0:
            os.fchown(log, NOBODY, NOBODY)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        # Move the result pipe to a high descriptor and close everything else, so the
        # candidate cannot reach the server's socket.
        high = 1000 + (os.getpid() % 20000)
        os.dup2(wfd, high)
        os.closerange(3, high)
        os.closerange(high + 1, 65536)
        wfd = high
        if ISOLATION and os.geteuid() == 0 and jobns.isolate(req):
            # PID 1 ignores the signals it sends itself: it cannot die "like the job", so
            # it hands the job's wait status to this child, which can.
            st_r, st_w = os.pipe()
            init = os.fork()
            if init:  # the set-up child: wait for the namespace's PID 1, exit as the job did
                os.close(wfd)
                os.close(st_w)
                _, st = os.waitpid(init, 0)
                told = os.read(st_r, 32)
                jobns.exit_like(int(told) if told.strip().isdigit() else st)
            os.close(st_r)
            jobns.become_init()  # PID 1 of the job's namespace, with its own /proc
            job = os.fork()
            if job:
                os.close(wfd)
                st = jobns.reap_until(job)
                os.write(st_w, str(st).encode())
                os._exit(0)  # and the kernel kills the rest of the namespace
            os.close(st_w)
        os.chdir(scratch)
        env = req.get("env") or {}
        os.environ.clear()
        os.environ.update(env)
        _apply_limits(req.get("limits") or {})
        if req.get("drop_privileges"):
            _drop_privileges(scratch)
        if os.geteuid() == 0:
            jobns.drop_admin_caps()  # a job left root cannot unmount its private /tmp
        from kernelsmith.harness import jobs

        began = time.monotonic()  # system-wide clock: the server compares it with its own
        result = jobs.run(req["job"], req.get("args") or {})
        payload = json.dumps({"result": result, "token": token, "times": [began, time.monotonic()]}).encode()
    except BaseException:
        payload = json.dumps({"harness_error": traceback.format_exc()[-4000:], "token": token}).encode()
        code = 3
    try:
        view = memoryview(payload)
        while view:
            n = os.write(wfd, view)
            view = view[n:]
    except OSError:
        code = 4
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def _tail(scratch: str) -> str:
    path = os.path.join(scratch, "output.log")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size > OUTPUT_TAIL:
                f.seek(size - OUTPUT_TAIL)
            data = f.read(OUTPUT_TAIL)
        prefix = f"[... {size - OUTPUT_TAIL} bytes of output cut ...]\n" if size > OUTPUT_TAIL else ""
        return prefix + data.decode("utf-8", "replace")
    except OSError:
        return ""


def _response(child: Child) -> dict:
    resp: dict = {
        "id": child.req["id"],
        "seconds": time.monotonic() - child.started,
        "output": _tail(child.req["scratch"]),
        "exit": None,
        "result": None,
    }
    st = child.status
    if st is not None:
        resp["exit"] = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
    resp["memory_mb"] = round(child.memory_mb, 1)
    if child.over_memory:
        resp["status"] = "memory"
        return resp
    if child.timed_out:
        resp["status"] = "timeout"
        return resp
    try:
        msg = json.loads(bytes(child.buf).decode()) if child.buf else None
    except ValueError:
        msg = None
    resp["timeline"] = _timeline(child, msg)
    if msg and msg.get("token") != child.token:
        resp["status"] = "forged"  # the harness's verdict is not in it: never a result
        resp["result"] = "the job's result pipe carried a message without the server's token (forged by the job)"
    elif msg and "result" in msg and resp["exit"] == 0:
        resp["status"] = "ok"
        resp["result"] = msg["result"]
    elif msg and "harness_error" in msg:
        resp["status"] = "error"
        resp["result"] = msg["harness_error"]
    else:
        resp["status"] = "crash"  # died without a result: signal, os._exit, OOM kill
    return resp


def _timeline(child: Child, msg: dict | None) -> dict:
    """Seconds from the fork to each step of a job's life (set-up, the job itself, exit):
    where a candidate's seconds go outside the harness's own stages. Diagnostics only."""
    out = {}
    times = msg.get("times") if isinstance(msg, dict) else None
    if isinstance(times, list) and len(times) == 2 and all(isinstance(t, (int, float)) for t in times):
        out["setup"] = times[0] - child.started
        out["job"] = times[1] - times[0]
        if child.reaped_at is not None:
            out["exit"] = max(child.reaped_at, child.eof_at or 0.0) - times[1]
    out["total"] = time.monotonic() - child.started
    return {k: round(v, 4) for k, v in out.items()}


def _become_subreaper() -> None:
    """Orphans of jobs (a daemon that double-forked out of its job's process group) are
    re-parented to this server instead of init, so it can find and kill them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _process_table() -> list[tuple[int, int, int, float]]:
    """(pid, parent pid, process group, RSS in MiB) of every process under /proc, read once
    per sweep for both the orphan and the memory checks."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out.append((int(entry), int(fields[1]), int(fields[2]), int(fields[21]) * _PAGE_MB))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _kill_orphans(children: dict, table: list) -> None:
    """Kill and reap every child of ours that is not a job: it escaped its job's group."""
    me = os.getpid()
    for pid, ppid, _, _ in table:
        if ppid == me and pid not in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, PermissionError, ChildProcessError):
                pass


def _watch_memory(children: dict, table: list) -> None:
    """Kill a job whose host memory passes its limit. An address-space rlimit cannot do
    this (CUDA reserves far more address space than it uses), and without Docker there is
    no cgroup: so the server samples each job's RSS (its whole process group: a job and
    everything it started share the group) twice a second."""
    live = [ch for ch in children.values() if ch.status is None and ch.req.get("memory_mb")]
    if not live:
        return
    rss: dict[int, float] = {}
    for _, _, pgrp, mb in table:
        rss[pgrp] = rss.get(pgrp, 0.0) + mb
    for ch in live:
        used = rss.get(ch.pid, 0.0)
        ch.memory_mb = max(ch.memory_mb, used)
        if used > ch.req["memory_mb"] and not ch.over_memory:
            ch.over_memory = True
            _kill_group(ch.pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def serve(sock_path: str, sweep: str = "auto") -> None:
    global ISOLATION
    _become_subreaper()
    ISOLATION = _probe_isolation()
    from kernelsmith.sandbox import jobns

    # Without namespaces, what jobs leave in /tmp, /var/tmp, /dev/shm is swept when no job
    # runs: everything new there ("all": the Docker container's own tmpfs), or only what
    # nobody owns ("nobody": jobs dropped to nobody on a host) or nothing ("none": jobs run
    # as the user who started us, whose own files we cannot tell apart).
    if sweep == "auto":
        sweep = "none" if ISOLATION else ("nobody" if os.geteuid() == 0 else "none")
    tmp_before = jobns.snapshot_tmp() if sweep != "none" else None
    print(f"fork server: per-job namespaces {'on' if ISOLATION else 'OFF'}, tmp sweep {sweep}",
          file=sys.stderr, flush=True)
    _preimport()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    os.chmod(sock_path, 0o600)
    listener.listen(1)
    conn, _ = listener.accept()
    listener.close()
    os.unlink(sock_path)  # one client only: nobody else can connect later
    conn.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(conn, selectors.EVENT_READ, "conn")
    children: dict[int, Child] = _CHILDREN
    dirty = False  # a job ended since the last sweep of the temporary directories
    inbuf = bytearray()
    outbuf = bytearray()
    closing = False
    next_sweep = 0.0
    while not closing or children:
        for key, _ in sel.select(timeout=0.02):
            if key.data == "conn":
                try:
                    data = conn.recv(1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    closing = True
                    sel.unregister(conn)
                    for ch in children.values():
                        _kill_group(ch.pid)
                    continue
                inbuf += data
                while b"\n" in inbuf:
                    line, _, rest = inbuf.partition(b"\n")
                    inbuf = bytearray(rest)
                    req = json.loads(line)
                    ch = _spawn(req)
                    children[ch.pid] = ch
                    sel.register(ch.rfd, selectors.EVENT_READ, ch.pid)
            else:
                ch = children[key.data]
                chunk = os.read(ch.rfd, 1 << 20)
                if chunk and len(ch.buf) < RESULT_LIMIT:
                    ch.buf += chunk
                elif not chunk:
                    ch.eof = True
                    ch.eof_at = time.monotonic()
                    sel.unregister(ch.rfd)
                    os.close(ch.rfd)
        now = time.monotonic()
        if now >= next_sweep:
            table = _process_table()
            _kill_orphans(children, table)
            _watch_memory(children, table)
            next_sweep = now + 0.5
        for pid, ch in list(children.items()):
            if ch.status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    ch.status = st
                    ch.reaped_at = time.monotonic()
                    _kill_group(pid)  # reap whatever it left running in its group
                elif now > ch.deadline:
                    ch.timed_out = True
                    _kill_group(pid)
            if ch.status is not None and (ch.eof or ch.timed_out or now > ch.deadline + 2):
                if not ch.eof:
                    sel.unregister(ch.rfd)
                    os.close(ch.rfd)
                del children[pid]
                dirty = True
                outbuf += json.dumps(_response(ch)).encode() + b"\n"
        if dirty and not children and tmp_before is not None:
            dirty = False
            jobns.sweep_tmp(tmp_before, uid=NOBODY if sweep == "nobody" else None)
        if outbuf and not closing:
            conn.setblocking(True)
            conn.sendall(outbuf)
            conn.setblocking(False)
            outbuf.clear()


def _spawn(req: dict) -> Child:
    rfd, wfd = os.pipe()
    token = secrets.token_hex(16)  # a local: the request and the server's records don't hold it
    # No signal in between: a job must never run the server's handlers (they kill jobs).
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DIE_SIGNALS)
    pid = os.fork()
    if pid == 0:
        for sig in _DIE_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        _CHILDREN.clear()
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(rfd)
        _child_main(req, wfd, token)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    os.close(wfd)
    now = time.monotonic()
    return Child(req=req, pid=pid, rfd=rfd, deadline=now + float(req.get("timeout", 60)), started=now, token=token)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--nice", type=int, default=0,
                        help="lower this server's and its jobs' CPU priority (compile servers: GPU timing "
                             "runs must not wait for CPU behind nvcc)")
    parser.add_argument("--parent-fd", type=int, default=None,
                        help="read end of a pipe whose write end the parent holds: exit when it closes")
    parser.add_argument("--sweep-tmp", choices=["auto", "all", "nobody", "none"], default="auto",
                        help="without per-job namespaces, what to remove from /tmp, /var/tmp, /dev/shm after jobs")
    args = parser.parse_args()
    for sig in _DIE_SIGNALS:
        signal.signal(sig, _die)
    if args.parent_fd is not None:
        _watch_parent(args.parent_fd)
    # Non-dumpable: a job running as the server's user (Docker, or no privileges to drop)
    # cannot read its /proc/PID/environ, nor, as jobs inherit it, another job's.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    except Exception:
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if args.nice:
        os.nice(args.nice)
    serve(args.socket, args.sweep_tmp)


if __name__ == "__main__":
    main()
