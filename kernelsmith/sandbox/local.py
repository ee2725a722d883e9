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
    pid = ("--pid", "--fork", "--kill-child", "--mount-proc")
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


def job_paths(extra=()) -> list[str]:
    """Everything a job reads by name: the interpreter (its venv and the base
    installation it was made from), site-packages and every other sys.path entry, this
    package, and the state directory (KERNELSMITH_HOME: the caches jobs build into)."""
    import site

    from kernelsmith import config

    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.executable), source_root(),
             str(config.home())]
    try:
        paths += site.getsitepackages()
    except AttributeError:
        pass
    paths += [p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
    paths += list(extra)
    return list(dict.fromkeys(os.path.abspath(p) for p in paths))


def _existing(path: str) -> str:
    """The path itself, or its nearest existing ancestor (a cache made later)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    return p


def unreachable(paths) -> list[str]:
    """The paths among `paths` that an unprivileged user (nobody) cannot reach."""
    return [p for p in paths if not world_readable(_existing(p))]


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
        self._want_drop = drop_privileges
        self._mounts: list[str] = []
        self.scratch_root = scratch_root
        self.drop_privileges = False
        self.why_not_nobody = ""
        self._decide_user()

    def _decide_user(self) -> None:
        """Jobs become nobody only when nobody can reach everything a job imports or
        writes (job_paths); otherwise they run as the current user, and describe() says
        why. An unreachable path is never reported as the candidate's failure."""
        if not self._want_drop:
            self.drop_privileges, self.why_not_nobody = False, "dropping privileges switched off"
        elif os.geteuid() != 0:
            self.drop_privileges, self.why_not_nobody = False, "not root"
        else:
            bad = unreachable(job_paths(self._mounts))
            self.drop_privileges = not bad
            self.why_not_nobody = (f"nobody cannot reach {bad[0]}" + (f" (and {len(bad) - 1} more)"
                                                                       if len(bad) > 1 else "")) if bad else ""

    def add_mount(self, path: str, mode: str = "rw") -> None:
        """A path jobs must reach (the evaluator's cache): servers started from now on
        run jobs as nobody only if nobody can reach it."""
        self._mounts.append(os.path.abspath(path))
        self._decide_user()

    def describe(self) -> str:
        prefix = netns_prefix() if self.network_isolation else ()
        net = "no network (netns)" if prefix else "network NOT isolated"
        if "--pid" in prefix:
            net += ", own PID namespace and /proc"
            if os.geteuid() == 0 or "--map-root-user" in prefix:
                net += "; per job: private /tmp, /var/tmp, /dev/shm and PID namespace (whole tree killed)"
        else:
            net += ("; NO per-job namespaces: jobs share the host's /tmp (swept of what nobody leaves "
                    "when jobs run as nobody), process groups and orphans killed")
        user = ("jobs run as nobody" if self.drop_privileges
                else f"jobs run as the current user ({self.why_not_nobody})")
        return f"process sandbox: {net}; {user}; rlimits on processes, files, file size, CPU time"

    def start(self, spec: ServerSpec) -> SocketServer:
        root = tempfile.mkdtemp(prefix=f"ks-{spec.role}-", dir=self.scratch_root)
        os.chmod(root, 0o711)  # children (maybe nobody) must traverse to their scratch
        ipc = tempfile.mkdtemp(prefix="ks-ipc-")  # 0700: only we can reach the socket
        sock = os.path.join(ipc, "server.sock")
        env = child_env(spec, home=root, source_root=source_root())
        prefix = netns_prefix() if self.network_isolation else ()
        log = open(os.path.join(ipc, "server.log"), "wb")
        # The server exits when this pipe's write end, held only by this process, closes:
        # whatever ends us (Ctrl-C at any point, SIGKILL) ends it and its jobs.
        parent_r, parent_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "kernelsmith.harness.server", "--socket", sock,
                 "--parent-fd", str(parent_r), *server_args(spec)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd=root, pass_fds=(parent_r,),
            )
        except BaseException:
            os.close(parent_w)
            raise
        finally:
            os.close(parent_r)
            log.close()
        parent_fd = [parent_w]

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
            if parent_fd:  # once: the number may name another file later
                os.close(parent_fd.pop())
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
        except BaseException:  # Ctrl-C while the server starts: it must not stay behind
            kill()
            raise
