"""Per-job isolation inside the fork server: a private /tmp, /var/tmp and /dev/shm and a
PID namespace of the job's own, so that a candidate which shells out (libc `system`,
ctypes, subprocess) leaves no file in the host's temporary directories, no process
behind, and sees no other process's environment.

The fork server calls `isolate()` in the forked child (as root, or as root of the user
namespace the process sandbox starts it in), before the job drops its privileges:

  1. unshare(CLONE_NEWNS | CLONE_NEWPID); every mount made private (MS_REC|MS_PRIVATE)
     so nothing propagates back to the host;
  2. fresh size-limited tmpfs on /tmp, /var/tmp and /dev/shm; the paths the job needs
     that lie below them (its scratch, the directories it may write, the files its
     arguments name, the Python installation and sys.path) are bind-mounted back from
     the covered originals, read-only except the scratch and the writable ones;
  3. fork: the new child is PID 1 of the job's namespace (it dies with its parent,
     PR_SET_PDEATHSIG), mounts its own /proc and forks the job; when the job returns,
     PID 1 exits and the kernel kills every process left in the namespace, daemons that
     called setsid or double-forked included.

Where namespaces are not available (Docker's default seccomp profile forbids unshare; a
non-root user without user namespaces) `isolate()` returns None and the fork server
falls back to killing the job's process group, its orphans and sweeping what it left in
the temporary directories (`sweep_tmp`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
# Capabilities a job that stays root must not keep: with CAP_SYS_ADMIN it could unmount
# its private /tmp and write the host's.
DROPPED_CAPS = (16, 17, 19, 21)  # SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_ADMIN

PRIVATE_DIRS = {"/tmp": "1g", "/var/tmp": "256m", "/dev/shm": "1g"}

_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc().mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                        ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def needed_paths(req: dict) -> list[tuple[str, bool]]:
    """(path, writable) of everything a job reaches by name: its scratch and writable
    directories, absolute paths in its arguments, the interpreter and its sys.path."""
    out: list[tuple[str, bool]] = [(req["scratch"], True)]
    out += [(w, True) for w in req.get("writable") or []]

    def walk(v):
        if isinstance(v, str):
            if v.startswith("/") and "\n" not in v and len(v) < 4096:
                out.append((v, False))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(req.get("args") or {})
    # A file named in the arguments comes with its directory (read-only): a script's
    # parameters, a task's neighbours.
    out = [(os.path.dirname(p) if not rw and os.path.isfile(p) and os.path.dirname(p) not in PRIVATE_DIRS else p, rw)
           for p, rw in out]
    env = req.get("env") or {}
    for var in ("PYTHONPATH", "CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH", "PATH"):
        out += [(p, False) for p in env.get(var, "").split(os.pathsep) if p.startswith("/")]
    out += [(p, False) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable))]
    out += [(p, False) for p in sys.path if p.startswith("/")]
    return out


def _expose(paths: list[tuple[str, bool]], fds: dict[str, int]) -> None:
    """Bind-mount the needed paths below a covered directory back from the original."""
    chosen: dict[str, bool] = {}
    for path, rw in paths:
        path = os.path.normpath(path)
        root = next((r for r in fds if _under(path, r)), None)
        if root is None or path == root:
            continue
        chosen[path] = chosen.get(path, False) or rw
    done: list[tuple[str, bool]] = []
    for path in sorted(chosen, key=lambda p: (p.count("/"), p)):
        rw = chosen[path]
        if any(_under(path, d) and drw == rw for d, drw in done):
            continue  # already visible, with the same access, through a parent
        root = next(r for r in fds if _under(path, r))
        source = f"/proc/self/fd/{fds[root]}/{os.path.relpath(path, root)}"
        try:
            is_dir = os.path.isdir(source)
            if not os.path.lexists(source):
                continue
        except OSError:
            continue
        try:
            os.makedirs(path if is_dir else os.path.dirname(path), mode=0o755, exist_ok=True)
            if not is_dir and not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            _mount(source, path, None, MS_BIND | MS_REC)
            if not rw:
                _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            done.append((path, rw))
        except OSError:
            continue  # one unreachable path fails that access in the job, not the job


def isolate(req: dict) -> str | None:
    """Give this (forked, still privileged) process a private mount and PID namespace.
    Returns None where the kernel or the sandbox forbids it (nothing changed then), else
    "ok". After it the caller must fork(): only the children are in the PID namespace."""
    try:
        _check(libc().unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")
    except OSError:
        return None
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    needed = needed_paths(req)  # before the tmpfs covers what it looks at
    fds = {}
    for d in PRIVATE_DIRS:
        if os.path.isdir(d):
            fds[d] = os.open(d, os.O_PATH | os.O_DIRECTORY)
    for d, size in PRIVATE_DIRS.items():
        if d in fds:
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    _expose(needed, fds)
    for fd in fds.values():
        os.close(fd)
    return "ok"


def become_init() -> None:
    """In the first child after isolate(): PID 1 of the job's namespace. Dies when its
    parent does; mounts the namespace's own /proc (no other process to read)."""
    libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | 8)  # 8: MS_NOEXEC


def reap_until(job: int) -> int:
    """PID 1's loop: reap every process until the job itself exits; its wait status."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == job:
            return status


def exit_like(status: int) -> None:
    """Exit with the same wait status as the job (a signal death stays a signal death)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_admin_caps() -> None:
    """For a job that stays root: no CAP_SYS_ADMIN (no unmounting its private /tmp), no
    module loading, raw I/O or ptrace, and no new privileges through exec."""
    lc = libc()
    for cap in DROPPED_CAPS:
        lc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if lc.capget(ctypes.byref(hdr), data) == 0:
        mask = 0
        for cap in DROPPED_CAPS:
            mask |= 1 << cap
        for d in data[:1]:
            d.effective &= ~mask
            d.permitted &= ~mask
            d.inheritable &= ~mask
        lc.capset(ctypes.byref(hdr), data)
    lc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def snapshot_tmp() -> dict[str, set[str]]:
    out = {}
    for d in PRIVATE_DIRS:
        try:
            out[d] = set(os.listdir(d))
        except OSError:
            out[d] = set()
    return out


def sweep_tmp(before: dict[str, set[str]], uid: int | None = None) -> list[str]:
    """The fallback without namespaces: remove what appeared in /tmp, /var/tmp, /dev/shm
    since `before` (entries on another device, i.e. bind mounts, are never touched; with
    `uid`, only entries that user owns). Call only when no job runs."""
    import shutil

    removed = []
    for d, old in before.items():
        try:
            dev = os.stat(d).st_dev
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if name in old:
                continue
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_dev != dev or (uid is not None and st.st_uid != uid):
                continue
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
                removed.append(p)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    continue
    return removed
