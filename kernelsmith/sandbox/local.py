"""The local process sandbox: the default where no Docker engine is available.

The fork server runs as a child process in its own session, with a scrubbed
environment, inside a fresh network namespace when the platform allows one (`unshare`,
as root or through an unprivileged user namespace), and each job gets rlimits, a
private scratch directory and, when running as root, the `nobody` user.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from kernelsmith.sandbox.base import Limits, ServerSpec, SocketServer, child_env, server_args, source_root


@functools.lru_cache(maxsize=1)
def netns_prefix() -> tuple[str, ...]:
    """The command prefix that isolates the fork server, or () where none works.

    New network namespace (no network), new PID namespace with its own /proc (jobs cannot
    see, signal or read the environment of the orchestrator or any other process), new
    mount namespace (for that /proc). As root directly, otherwise through an
    unprivileged user namespace. Falls back to the network namespace alone."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    pid = ("--pid", "--fork", "--mount-proc")
    candidates = [(unshare, "--net", *pid), (unshare, "--net")] if os.geteuid() == 0 else []
    candidates += [(unshare, "--map-root-user", "--net", *pid), (unshare, "--map-root-user", "--net")]
    for prefix in candidates:
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return prefix
    return ()


def world_readable(path: str) -> bool:
    """Can an unprivileged user reach `path` (every directory above it searchable)?"""
    p = os.path.abspath(path)
    while True:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(p)
        if parent == p:
            return True
        p = parent


class LocalSandbox:
    name = "process"

    def __init__(self, limits: Limits | None = None, network_isolation: bool = True,
                 drop_privileges: bool = True, scratch_root: str | None = None):
        self.limits = limits or Limits()
        self.network_isolation = network_isolation
        # Dropping to nobody only works if nobody can still read Python and this package.
        self.drop_privileges = (drop_privileges and os.geteuid() == 0 and world_readable(sys.prefix)
                                and world_readable(source_root()))
        self.scratch_root = scratch_root

    def describe(self) -> str:
        prefix = netns_prefix() if self.network_isolation else ()
        net = "no network (netns)" if prefix else "network NOT isolated"
        if "--pid" in prefix:
            net += ", own PID namespace and /proc"
        user = "jobs run as nobody" if self.drop_privileges else "jobs run as the current user"
        return f"process sandbox: {net}; {user}; rlimits on processes, files, file size, CPU time"

    def start(self, spec: ServerSpec) -> SocketServer:
        root = tempfile.mkdtemp(prefix=f"ks-{spec.role}-", dir=self.scratch_root)
        os.chmod(root, 0o711)  # children (maybe nobody) must traverse to their scratch
        ipc = tempfile.mkdtemp(prefix="ks-ipc-")  # 0700: only we can reach the socket
        sock = os.path.join(ipc, "server.sock")
        env = child_env(spec, home=root, source_root=source_root())
        prefix = netns_prefix() if self.network_isolation else ()
        log = open(os.path.join(ipc, "server.log"), "wb")
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "kernelsmith.harness.server", "--socket", sock, *server_args(spec)],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, cwd=root,
        )
        log.close()

        def kill() -> None:
            # Called after the client closed the socket: the server then kills its jobs
            # (each in its own session, out of reach of killpg below) and exits.
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            shutil.rmtree(ipc, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)

        try:
            return SocketServer(sock, self.name, root, env, self.limits, lambda: proc.poll() is None,
                                kill, drop_privileges=self.drop_privileges, pid=proc.pid)
        except RuntimeError as exc:
            try:
                with open(os.path.join(ipc, "server.log"), "rb") as f:
                    detail = f.read()[-2000:].decode("utf-8", "replace")
            except OSError:
                detail = ""
            kill()
            raise RuntimeError(f"{exc}: {detail}") from None
