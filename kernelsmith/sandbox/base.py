"""What every sandbox provides: a running fork server and a client to talk to it.

A sandbox decides *where* the fork server runs (a local process with its own network
namespace and rlimits, or a Docker container) and which paths it can see. Everything
else, the protocol and the jobs, is shared, so one conformance suite covers both.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# Names an API key or credential is likely to have; such variables never reach a child.
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")
# The only variables a child inherits from the orchestrator (when set).
# KERNELSMITH_OPS_BINDING: how a fast build binds its functions (harness/build/binding.py);
# KERNELSMITH_SPLIT_SOURCES: whether it splits an LLM-style CUDA source (harness/build/split.py).
PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH", "TERM", "KERNELSMITH_OPS_BINDING",
               "KERNELSMITH_SPLIT_SOURCES")


@dataclass
class Limits:
    """Per-job resource limits (rlimits in the process sandbox, cgroups in Docker)."""

    nproc: int = 512
    nofile: int = 1024
    fsize_mb: int = 2048
    cpu_seconds: int = 900
    memory_mb: int = 64 * 1024  # Docker only: address-space limits break CUDA
    # Host memory (RSS) of one job and what it started: the fork server kills it past this.
    # Default: a quarter of the machine's memory, at most 16 GiB; a job needs 1-3 GiB. At
    # 32 GiB a job filling memory on the H200 host reached the 20 s time limit first.
    host_memory_mb: int | None = None

    def job_memory_mb(self) -> int:
        if self.host_memory_mb:
            return self.host_memory_mb
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        except (ValueError, OSError):
            total = 64 * 1024
        return int(min(16 * 1024, total / 4))

    def rlimits(self) -> dict[str, int]:
        return {
            "nproc": self.nproc,
            "nofile": self.nofile,
            "fsize": self.fsize_mb << 20,
            "cpu": self.cpu_seconds,
        }


@dataclass
class JobOutcome:
    """What came back from one job: never raises for anything the job did."""

    status: str  # ok | timeout | memory | crash | error | lost | forged (a result the harness did not write)
    result: dict | str | None
    output: str = ""
    exit: int | None = None
    seconds: float = 0.0
    memory_mb: float = 0.0  # peak host memory of the job, as the server sampled it
    timeline: dict = field(default_factory=dict)  # the server's seconds: setup, job, exit, total


@dataclass
class ServerSpec:
    role: str  # "cpu" (compile, no GPU visible) or "gpu"
    gpu: int | None = None
    arch: str = "9.0"
    extra_env: dict[str, str] = field(default_factory=dict)


def physical_gpu(index: int) -> str:
    """The device a GPU index means, as CUDA_VISIBLE_DEVICES names it. Indices count within
    this process's visible set, as torch's cuda:N does: under CUDA_VISIBLE_DEVICES=2,3
    (a scheduler, or Ray giving an actor its GPU) index 0 is device 2, so the sandboxed
    job must be given "2", not "0"."""
    entries = visible_devices()
    if entries is None:
        return str(index)
    if not 0 <= index < len(entries):
        raise ValueError(f"GPU {index} is not visible to this process "
                         f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    return entries[index]


def visible_devices() -> list[str] | None:
    """The devices CUDA_VISIBLE_DEVICES names, in order (None when it is unset). CUDA stops
    at the first empty or negative entry."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return None
    entries = []
    for e in (x.strip() for x in cvd.split(",")):
        if not e or (e.lstrip("-").isdigit() and int(e) < 0):
            break
        entries.append(e)
    return entries


def server_args(spec: ServerSpec) -> list[str]:
    """Extra command-line arguments of the fork server for this role: compiles run at a
    lower CPU priority, so nvcc on every core cannot slow the GPU jobs' host side."""
    return ["--nice", "10"] if spec.role == "cpu" else []


def child_env(spec: ServerSpec, home: str, source_root: str) -> dict[str, str]:
    """The minimal environment of a sandboxed job: no keys, no tokens, no proxies."""
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    env.update(
        HOME=home,
        TMPDIR=os.path.join(home, "tmp"),
        PYTHONPATH=source_root,
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        TORCH_CUDA_ARCH_LIST=spec.arch,
        CUDA_VISIBLE_DEVICES="" if spec.gpu is None else physical_gpu(spec.gpu),
        MAX_JOBS="2",
    )
    if "PYTHONPATH" in os.environ:  # e.g. carried wheels on the GPU machine
        env["PYTHONPATH"] = source_root + os.pathsep + os.environ["PYTHONPATH"]
    env.update(spec.extra_env)
    return {k: v for k, v in env.items() if not any(m in k.upper() for m in SECRET_MARKERS)}


@runtime_checkable
class Server(Protocol):
    """A running fork server: jobs go in, a JobOutcome comes back for each (never raises
    for what the job did)."""

    def submit(self, job: str, args: dict, timeout: float, scratch: str | None = None,
               writable: list[str] | None = None) -> Future: ...
    def alive(self) -> bool: ...
    def close(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """Where jobs run: the process sandbox (sandbox/local.py) or Docker (sandbox/docker/).
    The evaluator, doctor and the pools depend on this and nothing else of either."""

    name: str

    def start(self, spec: ServerSpec) -> Server: ...
    def add_mount(self, path: str, mode: str = "rw") -> None: ...  # a host path jobs must reach
    def describe(self) -> str: ...  # one line for doctor and the run record


class SocketServer:
    """Client side of the fork-server protocol, shared by every sandbox.

    Several jobs can be in flight (the CPU compile server runs them in parallel); a
    reader thread hands each response to the future of its request id.
    """

    def __init__(self, sock_path: str, sandbox: str, scratch_root: str, env: dict[str, str],
                 limits: Limits, proc_alive, kill, drop_privileges: bool = False,
                 path_map=lambda p: p, connect_timeout: float = 120.0, pid: int | None = None):
        self.sandbox = sandbox
        self.pid = pid  # the host process that runs the server (process sandbox only)
        self._scratch_root = scratch_root
        self._env = env
        self._limits = limits
        self._proc_alive = proc_alive
        self._kill = kill
        self._drop = drop_privileges
        self._map = path_map  # host path -> path the server sees
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._sock = self._connect(sock_path, connect_timeout)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _connect(self, path: str, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(path)
                    return s
                except OSError:
                    s.close()
            if not self._proc_alive():
                raise RuntimeError("the sandbox's fork server exited during start-up")
            time.sleep(0.05)
        self._kill()
        raise RuntimeError(f"the sandbox's fork server did not start within {timeout:.0f} s")

    def submit(self, job: str, args: dict, timeout: float, scratch: str | None = None,
               writable: list[str] | None = None) -> Future:
        rid = f"{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        scratch = scratch or os.path.join(self._scratch_root, rid)
        os.makedirs(os.path.join(scratch, "tmp"), exist_ok=True)
        home, tmp = self._map(scratch), self._map(os.path.join(scratch, "tmp"))
        # Libraries read their cache locations when imported (in the server, as its user):
        # point each at the job's own scratch so nothing is shared between candidates.
        # CuPy builds its disk cache when the server imports it, so only the in-memory
        # cache keeps one candidate's kernels out of the next one's reach.
        env = dict(self._env, HOME=home, TMPDIR=tmp, CUPY_CACHE_DIR=os.path.join(home, ".cupy"),
                   CUPY_CACHE_IN_MEMORY="1",
                   TORCH_EXTENSIONS_DIR=os.path.join(tmp, "torch_extensions"),
                   TRITON_CACHE_DIR=os.path.join(tmp, "triton"), TORCHINDUCTOR_CACHE_DIR=os.path.join(tmp, "inductor"))
        req = {
            "id": rid, "job": job, "args": args, "timeout": timeout,
            "scratch": self._map(scratch), "env": env, "limits": self._limits.rlimits(),
            "memory_mb": self._limits.job_memory_mb(),
            "drop_privileges": self._drop, "writable": [self._map(w) for w in writable or []],
        }
        fut: Future = Future()
        fut.scratch = scratch  # type: ignore[attr-defined]
        with self._lock:
            self._pending[rid] = fut
            try:
                self._sock.sendall(json.dumps(req).encode() + b"\n")
            except OSError as exc:
                del self._pending[rid]
                fut.set_result(JobOutcome("lost", f"fork server unreachable: {exc}"))
        return fut

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                with self._lock:
                    fut = self._pending.pop(msg["id"], None)
                if fut is not None:
                    fut.set_result(JobOutcome(msg["status"], msg.get("result"), msg.get("output", ""),
                                              msg.get("exit"), msg.get("seconds", 0.0), msg.get("memory_mb", 0.0),
                                              msg.get("timeline") or {}))
        with self._lock:  # the server died: every job in flight is lost, not hung
            for fut in self._pending.values():
                fut.set_result(JobOutcome("lost", "the sandbox's fork server died"))
            self._pending.clear()

    def alive(self) -> bool:
        return self._proc_alive() and self._reader.is_alive()

    def close(self) -> None:
        try:
            # shutdown, not only close: the reader thread blocked in recv() keeps the socket
            # open, so close() alone would send the server no EOF.
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        finally:
            self._kill()


def source_root() -> str:
    """The directory holding the kernelsmith package, put on the child's PYTHONPATH."""
    return str(Path(__file__).resolve().parents[2])
