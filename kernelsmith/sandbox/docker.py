"""The Docker sandbox: the fork server runs in a locked-down container.

The container has no network (`network_mode="none"`), a read-only root file system with
a tmpfs `/tmp`, no capabilities, `no-new-privileges`, a pids and a memory cgroup limit,
runs as nobody (65534) and sees a GPU only through a device request for the server's
own GPU. It sees the host only through bind mounts at the same path inside as outside,
so job paths need no translation:

  * the IPC directory holding the server's Unix socket (read-write),
  * the server's scratch root, one sub-directory per job (read-write),
  * the kernelsmith sources (read-only),
  * whatever the caller passes in `mounts` (e.g. the evaluator's cache, read-write),
  * optionally the host's own toolchain (`host_mounts`, read-only): /usr, the Python
    installation, ... so that an image without Python (the registry-free test image of
    sandbox/build-test-image.sh) can run the host's interpreter and torch.

Everything else (the protocol, per-job timeouts, rlimits, process-group kills, output
truncation) is the fork server's, exactly as in the process sandbox; this module only
adds the outer wall: `close()` kills and removes the container.

Configuration through the environment (used where the constructor leaves it open):
  KERNELSMITH_DOCKER_IMAGE         the image (default kernelsmith-sandbox:latest)
  KERNELSMITH_DOCKER_HOST_MOUNTS   colon-separated host paths mounted read-only;
                                   "auto" stands for host_toolchain_mounts()
  KERNELSMITH_DOCKER_PYTHON        the interpreter inside the container (default
                                   python3, or this interpreter with auto host mounts)
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping

from concurrent.futures import Future

from kernelsmith.sandbox.base import (SECRET_MARKERS, JobOutcome, Limits, ServerSpec, SocketServer, child_env,
                                      source_root)

DEFAULT_IMAGE = "kernelsmith-sandbox:latest"
LABEL = "kernelsmith.sandbox"  # every container we start carries it (value: the role)
NOBODY = (65534, 65534)
# Variables whose values are host paths: meaningless inside an image with its own
# toolchain, so there they come from the image's configuration instead.
HOST_PATH_ENV = ("PATH", "CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH")
ALIVE_RECHECK_S = 0.5


PACKAGE_MOUNT = "/opt/kernelsmith"  # where the kernelsmith package is mounted inside

def _client(timeout: int = 60):
    import docker

    return docker.from_env(timeout=timeout)


def default_image() -> str:
    return os.environ.get("KERNELSMITH_DOCKER_IMAGE") or DEFAULT_IMAGE


def available(image: str | None = None) -> tuple[bool, str]:
    """Whether a Docker engine answers and has `image`; otherwise why not."""
    image = image or default_image()
    try:
        import docker
    except ImportError as exc:
        return False, f"the docker Python package is not installed ({exc})"
    try:
        client = _client(timeout=10)
    except Exception as exc:  # DockerException: no socket, bad DOCKER_HOST, ...
        return False, f"no Docker engine reachable: {exc}"
    try:
        client.ping()
        version = client.version().get("Version", "?")
        try:
            img = client.images.get(image)
        except docker.errors.ImageNotFound:
            return False, (f"Docker engine {version} has no image {image!r} (build sandbox/Dockerfile, "
                           "or sandbox/build-test-image.sh for the test image)")
        return True, f"Docker engine {version}, image {image} ({img.short_id})"
    except Exception as exc:
        return False, f"the Docker engine does not answer: {exc}"
    finally:
        client.close()


def host_toolchain_mounts() -> list[str]:
    """Host paths that let a bare image run this very interpreter (and its torch).

    /usr (compilers, libc, CUDA under /usr/local), the Python installation (and the
    virtual environment, when one is active), /etc/alternatives (cc, c++ links), the
    dynamic loader's cache, CUDA_HOME where it lies outside /usr, the entries of
    PYTHONPATH, and /lib, /lib64 where they are real directories (hosts without
    merged /usr).
    """
    candidates = ["/usr", "/etc/alternatives", "/etc/ld.so.cache", sys.base_prefix, sys.prefix]
    for lib in ("/lib", "/lib64", "/lib32"):
        if os.path.isdir(lib) and not os.path.islink(lib):
            candidates.append(lib)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.environ[var])
    candidates += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths: list[str] = []
    for path in candidates:
        if os.path.exists(path):
            paths += [os.path.abspath(path), os.path.realpath(path)]
    paths = list(dict.fromkeys(paths))
    # A path under another one is mounted with it.
    out = [p for p in paths if not any(q != p and p.startswith(q.rstrip("/") + "/") for q in paths)]
    return out


def _env_host_mounts() -> list[str]:
    value = os.environ.get("KERNELSMITH_DOCKER_HOST_MOUNTS", "")
    out: list[str] = []
    for item in value.split(":"):
        item = item.strip()
        if item == "auto":
            out += host_toolchain_mounts()
        elif item:
            out.append(item)
    return list(dict.fromkeys(out))


def _normalise_mounts(mounts) -> dict[str, str]:
    """{path: "ro"|"rw"} from a mapping, or paths (read-only) and (path, mode) pairs."""
    if not mounts:
        return {}
    items = mounts.items() if isinstance(mounts, Mapping) else (
        (m, "ro") if isinstance(m, (str, os.PathLike)) else tuple(m) for m in mounts)
    out: dict[str, str] = {}
    for path, mode in items:
        mode = {"ro": "ro", "rw": "rw", True: "ro", False: "rw"}.get(mode, mode)
        if mode not in ("ro", "rw"):
            raise ValueError(f"mount mode for {path!r} must be 'ro' or 'rw', not {mode!r}")
        out[os.path.abspath(os.fspath(path))] = mode
    return out


def _parse_user(user: str) -> tuple[int, int] | None:
    """(uid, gid) of a numeric "uid[:gid]", else None (then we cannot chown for it)."""
    uid, _, gid = user.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        return None


def _own(path: str, owner: tuple[int, int] | None, recursive: bool = False) -> None:
    """Make a directory we created writable by the container's user."""
    if owner is None or os.geteuid() != 0:
        return  # not root: the container runs as our own uid, nothing to do
    os.chown(path, *owner)
    if recursive:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    os.lchown(os.path.join(root, name), *owner)
                except FileNotFoundError:
                    pass


class _Liveness:
    """`container.status == "running"`, asked of the engine at most every 0.5 s."""

    def __init__(self, container):
        self._container = container
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._running = True
        self.dead = False

    def __call__(self) -> bool:
        if self.dead:
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= ALIVE_RECHECK_S:
                self._checked = now
                try:
                    self._container.reload()
                    self._running = self._container.status in ("created", "running")
                except Exception as exc:
                    import docker

                    if isinstance(exc, docker.errors.NotFound):
                        self._running = False
                    # any other engine hiccup: keep the last answer
            return self._running


class DockerServer(SocketServer):
    """A fork server in a container; `container` is the docker-py Container object."""

    def __init__(self, *args, container=None, owner: tuple[int, int] | None = None, **kwargs):
        self.container = container
        self._owner = owner
        self._closed = False
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        self._closed = True
        super().close()

    def submit(self, job: str, args: dict, timeout: float, scratch: str | None = None,
               writable: list[str] | None = None):
        if self._closed:  # create no directories for a server that is gone
            fut: Future = Future()
            fut.scratch = scratch  # type: ignore[attr-defined]
            fut.set_result(JobOutcome("lost", "the sandbox's fork server was closed"))
            return fut
        # The scratch (and any writable directory) is created here, by the host user, so
        # it must be handed to the container's user: jobs there cannot chown.
        scratch = scratch or os.path.join(self._scratch_root, f"job-{uuid.uuid4().hex[:12]}")
        os.makedirs(os.path.join(scratch, "tmp"), exist_ok=True)
        _own(scratch, self._owner, recursive=True)
        for path in writable or []:
            os.makedirs(path, exist_ok=True)
            _own(path, self._owner)
        return super().submit(job, args, timeout, scratch=scratch, writable=writable)


_LIVE: dict[str, object] = {}  # container id -> kill(), for the exit handler
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_live() -> None:
    with _LIVE_LOCK:
        kills = list(_LIVE.values())
    for kill in kills:
        try:
            kill()
        except Exception:
            pass


def remove_stale(client=None) -> int:
    """Remove our containers (and their directories) left behind by processes of this
    host that are gone, e.g. killed before they could close their servers."""
    own = client is None
    client = client or _client()
    removed = 0
    try:
        for c in client.containers.list(all=True, filters={"label": LABEL}):
            labels = c.labels or {}
            if labels.get("kernelsmith.host") != socket.gethostname():
                continue
            try:
                pid = int(labels.get("kernelsmith.pid", ""))
            except ValueError:
                continue
            try:
                os.kill(pid, 0)
                continue  # its owner still runs (or the pid was reused): leave it
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            try:
                c.remove(force=True)
                removed += 1
            except Exception:
                continue
            for path in labels.get("kernelsmith.dirs", "").split(":"):
                if os.path.basename(path).startswith("ks-") and os.path.isabs(path):
                    shutil.rmtree(path, ignore_errors=True)
    finally:
        if own:
            client.close()
    return removed


class DockerSandbox:
    name = "docker"

    def __init__(self, image: str | None = None, limits: Limits | None = None, gpus: bool = True,
                 scratch_root: str | None = None, mounts=None, host_mounts: Iterable[str] | None = None,
                 python: str | None = None, user: str | None = None, pids_limit: int = 4096,
                 tmp_size: str = "4g", shm_size: str = "2g", init: bool = True,
                 connect_timeout: float = 120.0):
        """
        image         the sandbox image (KERNELSMITH_DOCKER_IMAGE, else kernelsmith-sandbox:latest)
        limits        per-job rlimits (the fork server's) and the container's memory limit
        gpus          attach the server's GPU (spec.gpu) through a device request
        scratch_root  where the servers' scratch roots are created (default: the temp dir)
        mounts        extra bind mounts at the same path: {path: "ro"|"rw"}, or paths
                      (read-only) and (path, mode) pairs
        host_mounts   host paths mounted read-only at the same path to run the host's
                      toolchain (KERNELSMITH_DOCKER_HOST_MOUNTS; "auto" expands to
                      host_toolchain_mounts()); with them the job environment keeps the
                      host's PATH, CUDA_HOME, LD_LIBRARY_PATH
        python        the interpreter inside the container (KERNELSMITH_DOCKER_PYTHON;
                      default python3 from the image's PATH, or this interpreter's path
                      when host mounts are configured through the environment)
        user          "uid:gid" the container runs as (default 65534:65534 when we are
                      root, else our own uid:gid so we can reach the socket it creates)
        """
        self.image = image or default_image()
        self.limits = limits or Limits()
        self.gpus = gpus
        self.scratch_root = scratch_root
        self.mounts = _normalise_mounts(mounts)
        if host_mounts is None:
            host_mounts = _env_host_mounts()
            if host_mounts and python is None and not os.environ.get("KERNELSMITH_DOCKER_PYTHON"):
                python = sys.executable
        else:
            expanded: list[str] = []
            for p in host_mounts:
                expanded += host_toolchain_mounts() if p == "auto" else [os.path.abspath(p)]
            host_mounts = list(dict.fromkeys(expanded))
        self.host_mounts = list(host_mounts)
        self.python = python or os.environ.get("KERNELSMITH_DOCKER_PYTHON") or "python3"
        self.user = user or ("%d:%d" % NOBODY if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}")
        self.pids_limit = pids_limit
        self.tmp_size = tmp_size
        self.shm_size = shm_size
        self.init = init
        self.connect_timeout = connect_timeout
        self._client = None
        self._image_env: dict[str, str] | None = None
        self._swept = False

    def add_mount(self, path: str, mode: str = "rw") -> None:
        """Bind-mount `path` (same path inside) into servers started from now on."""
        self.mounts.update(_normalise_mounts({path: mode}))

    # -- helpers -----------------------------------------------------------------------

    def client(self):
        if self._client is None:
            self._client = _client()
        return self._client

    def _image_environment(self) -> dict[str, str]:
        if self._image_env is None:
            env = self.client().images.get(self.image).attrs.get("Config", {}).get("Env") or []
            self._image_env = dict(e.split("=", 1) for e in env if "=" in e)
        return self._image_env

    def _job_env(self, spec: ServerSpec, home: str) -> dict[str, str]:
        env = child_env(spec, home=home, source_root=PACKAGE_MOUNT)
        if not self.host_mounts:
            # The image brings its own toolchain: host paths mean nothing inside.
            image_env = self._image_environment()
            for key in HOST_PATH_ENV:
                env.pop(key, None)
                if key in image_env:
                    env[key] = image_env[key]
            if "PYTHONPATH" not in spec.extra_env:
                env["PYTHONPATH"] = PACKAGE_MOUNT
            env.update({k: v for k, v in spec.extra_env.items()
                        if not any(m in k.upper() for m in SECRET_MARKERS)})
        if spec.gpu is not None and self.gpus and "CUDA_VISIBLE_DEVICES" not in spec.extra_env:
            env["CUDA_VISIBLE_DEVICES"] = "0"  # the one GPU the container sees is its device 0
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        return env

    def describe(self) -> str:
        parts = [
            f"docker sandbox (image {self.image}): no network, read-only root with a tmpfs /tmp",
            f"user {self.user}, all capabilities dropped, no-new-privileges",
            f"pids <= {self.pids_limit}, memory <= {self.limits.memory_mb} MiB, per-job rlimits",
            "GPU by device request" if self.gpus else "no GPU",
        ]
        if self.host_mounts:
            parts.append("host toolchain read-only: " + ", ".join(self.host_mounts))
        return "; ".join(parts)

    # -- start -------------------------------------------------------------------------

    def start(self, spec: ServerSpec) -> DockerServer:
        import docker
        from docker.types import DeviceRequest, Mount

        client = self.client()
        if not self._swept:
            self._swept = True
            try:
                remove_stale(client)
            except Exception:
                pass
        try:
            self._image_environment()  # also: does the image exist?
        except docker.errors.DockerException as exc:
            raise RuntimeError(f"the sandbox image {self.image!r} is not usable: {exc}") from None
        owner = _parse_user(self.user)
        tag = uuid.uuid4().hex[:10]
        root = tempfile.mkdtemp(prefix=f"ks-{spec.role}-docker-", dir=self.scratch_root)
        ipc = tempfile.mkdtemp(prefix="ks-ipc-")
        # 0700 and owned by the container's user: only it and root reach the socket.
        os.chmod(root, 0o700)
        _own(root, owner)
        _own(ipc, owner)
        sock = os.path.join(ipc, "server.sock")

        try:
            env = self._job_env(spec, home=root)
        except BaseException:
            shutil.rmtree(ipc, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
            raise
        container_env = dict(env)
        gpu = spec.gpu is not None and self.gpus
        if not gpu:
            # Where the NVIDIA runtime is the engine's default, an image's
            # NVIDIA_VISIBLE_DEVICES=all would otherwise expose every GPU.
            container_env["NVIDIA_VISIBLE_DEVICES"] = "void"

        binds: dict[str, str] = {}
        for path in self.host_mounts:
            binds[path] = "ro"
        binds.update(self.mounts)
        binds[root] = "rw"
        binds[ipc] = "rw"
        mounts = [Mount(target=p, source=p, type="bind", read_only=(mode == "ro"))
                  for p, mode in sorted(binds.items())]
        # The package alone, at a fixed path: the checkout around it may be private (a
        # 0700 clone), and nothing else in it belongs in the sandbox.
        mounts.append(Mount(target=f"{PACKAGE_MOUNT}/kernelsmith", source=os.path.join(source_root(), "kernelsmith"),
                            type="bind", read_only=True))

        memory = f"{self.limits.memory_mb}m"
        kwargs = dict(
            command=[self.python, "-m", "kernelsmith.harness.server", "--socket", sock],
            detach=True,
            name=f"ks-{spec.role}-{tag}",
            labels={LABEL: spec.role, "kernelsmith.host": socket.gethostname(),
                    "kernelsmith.pid": str(os.getpid()), "kernelsmith.dirs": f"{root}:{ipc}"},
            environment=container_env,
            working_dir=root,
            user=self.user,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={self.tmp_size}"},
            ipc_mode="private",
            shm_size=self.shm_size,
            pids_limit=self.pids_limit,
            mem_limit=memory,
            memswap_limit=memory,  # no swap on top
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=self.init,  # reaps the orphans of killed jobs
            mounts=mounts,
            stdin_open=False,
            tty=False,
        )
        if gpu:
            kwargs["device_requests"] = [DeviceRequest(device_ids=[str(spec.gpu)], capabilities=[["gpu"]])]

        def cleanup_dirs() -> None:
            shutil.rmtree(ipc, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)

        try:
            container = client.containers.run(self.image, **kwargs)
        except docker.errors.DockerException as exc:
            try:  # a container created but not started (e.g. no such executable)
                client.containers.get(kwargs["name"]).remove(force=True)
            except Exception:
                pass
            cleanup_dirs()
            raise RuntimeError(f"could not start the sandbox container ({self.image}): {exc}") from None

        alive = _Liveness(container)
        last_logs: list[str] = []
        state = {"killed": False}
        kill_lock = threading.Lock()

        def kill() -> None:
            with kill_lock:
                if state["killed"]:
                    return
                state["killed"] = True
                alive.dead = True
                with _LIVE_LOCK:
                    _LIVE.pop(container.id, None)
                try:
                    last_logs.append(container.logs(tail=60).decode("utf-8", "replace"))
                except Exception:
                    pass
                try:
                    container.kill()
                except Exception:
                    pass  # not running any more
                try:
                    container.remove(force=True)
                except Exception:
                    pass
                cleanup_dirs()

        with _LIVE_LOCK:
            _LIVE[container.id] = kill
        try:
            return DockerServer(sock, self.name, root, env, self.limits, alive, kill,
                                drop_privileges=False, connect_timeout=self.connect_timeout,
                                container=container, owner=owner)
        except RuntimeError as exc:
            kill()
            detail = last_logs[-1][-2000:] if last_logs else ""
            raise RuntimeError(f"{exc}: {detail}") from None
        except BaseException:
            kill()
            raise
