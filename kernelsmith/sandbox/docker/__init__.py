"""The Docker sandbox: the fork server runs in a locked-down container.

The container has no network (`network_mode="none"`), a read-only root file system with
tmpfs `/tmp` and `/var/tmp` (and its own `/dev/shm`), no capabilities, `no-new-privileges`, a pids and a memory cgroup limit,
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

Layout: engine (client, availability, liveness), mounts (what the container sees, as
whom), cleanup (no container outlives its owner); this package's `__init__` starts the
container and wraps it as a fork server.

Configuration through the environment (used where the constructor leaves it open):
  KERNELSMITH_DOCKER_IMAGE         the image (default kernelsmith-sandbox:latest)
  KERNELSMITH_DOCKER_HOST_MOUNTS   colon-separated host paths mounted read-only;
                                   "auto" stands for host_toolchain_mounts()
  KERNELSMITH_DOCKER_PYTHON        the interpreter inside the container (default
                                   python3, or this interpreter with auto host mounts)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Future

from kernelsmith.sandbox.base import (SECRET_MARKERS, JobOutcome, Limits, ServerSpec, SocketServer, child_env,
                                      physical_gpu, server_args, source_root)
from kernelsmith.sandbox.docker.cleanup import LABEL, ownership_labels, remove_stale, track, untrack
from kernelsmith.sandbox.docker.engine import (ALIVE_RECHECK_S, DEFAULT_IMAGE, ContainerLiveness, available,
                                               default_image, docker_client)
from kernelsmith.sandbox.docker.mounts import (NOBODY, PACKAGE_MOUNT, env_host_mounts, expand_host_mounts,
                                               give_to_container_user, host_toolchain_mounts, normalise_mounts,
                                               parse_user)

# Names that callers import from this module, from before it was split.
__all__ = ["ALIVE_RECHECK_S", "DEFAULT_IMAGE", "HOST_PATH_ENV", "LABEL", "NOBODY", "PACKAGE_MOUNT", "DockerSandbox",
           "DockerServer", "available", "default_image", "host_toolchain_mounts", "remove_stale"]

# Variables whose values are host paths: meaningless inside an image with its own
# toolchain, so there they come from the image's configuration instead.
HOST_PATH_ENV = ("PATH", "CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH")


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
        give_to_container_user(scratch, self._owner, recursive=True)
        for path in writable or []:
            os.makedirs(path, exist_ok=True)
            give_to_container_user(path, self._owner)
        return super().submit(job, args, timeout, scratch=scratch, writable=writable)


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
        self.mounts = normalise_mounts(mounts)
        if host_mounts is None:
            host_mounts = env_host_mounts()
            if host_mounts and python is None and not os.environ.get("KERNELSMITH_DOCKER_PYTHON"):
                # Host mounts from the environment mean "run the host's toolchain": this
                # interpreter, not whatever python3 the image may lack.
                python = sys.executable
        else:
            host_mounts = expand_host_mounts(host_mounts)
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
        self.mounts.update(normalise_mounts({path: mode}))

    # -- helpers -----------------------------------------------------------------------

    def client(self):
        if self._client is None:
            self._client = docker_client()
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
            f"docker sandbox (image {self.image}): no network, read-only root, the container's own tmpfs "
            "/tmp, /var/tmp and /dev/shm (swept after jobs)",
            "no per-job namespaces (seccomp forbids unshare): jobs of one container share its PID namespace; "
            "process groups and orphans killed, environments unreadable (non-dumpable)",
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

        client = self.client()
        if not self._swept:  # once per sandbox: orphans of dead processes hold GPUs and disk
            self._swept = True
            try:
                remove_stale(client)
            except Exception:
                pass
        try:
            self._image_environment()  # also: does the image exist?
        except docker.errors.DockerException as exc:
            raise RuntimeError(f"the sandbox image {self.image!r} is not usable: {exc}") from None
        owner = parse_user(self.user)
        root = tempfile.mkdtemp(prefix=f"ks-{spec.role}-docker-", dir=self.scratch_root)
        ipc = tempfile.mkdtemp(prefix="ks-ipc-")
        # 0700 and owned by the container's user: only it and root reach the socket.
        os.chmod(root, 0o700)
        give_to_container_user(root, owner)
        give_to_container_user(ipc, owner)
        sock = os.path.join(ipc, "server.sock")

        def cleanup_dirs() -> None:
            shutil.rmtree(ipc, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)

        try:
            env = self._job_env(spec, home=root)
        except BaseException:
            cleanup_dirs()
            raise
        options = self._container_options(spec, env, root, ipc, sock)
        try:
            container = client.containers.run(self.image, **options)
        except docker.errors.DockerException as exc:
            try:  # a container created but not started (e.g. no such executable)
                client.containers.get(options["name"]).remove(force=True)
            except Exception:
                pass
            cleanup_dirs()
            raise RuntimeError(f"could not start the sandbox container ({self.image}): {exc}") from None

        alive = ContainerLiveness(container)
        last_logs: list[str] = []
        kill = _kill_switch(container, alive, last_logs, cleanup_dirs)
        track(container.id, kill)
        try:
            return DockerServer(sock, self.name, root, env, self.limits, alive, kill,
                                drop_privileges=False, connect_timeout=self.connect_timeout,
                                container=container, owner=owner)
        except RuntimeError as exc:
            kill()
            # The server did not come up: its last output usually says why.
            detail = last_logs[-1][-2000:] if last_logs else ""
            raise RuntimeError(f"{exc}: {detail}") from None
        except BaseException:
            kill()
            raise

    def _container_options(self, spec: ServerSpec, env: dict[str, str], root: str, ipc: str,
                           sock: str) -> dict:
        """The keyword arguments of containers.run(): the locked-down container of the
        module docstring, running the fork server on `sock`."""
        from docker.types import DeviceRequest, Mount

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
        options = dict(
            # No per-job namespaces in here (the default seccomp profile forbids unshare):
            # the server sweeps what jobs leave in the container's /tmp, /var/tmp, /dev/shm.
            command=[self.python, "-m", "kernelsmith.harness.server", "--socket", sock, "--sweep-tmp", "all",
                     *server_args(spec)],
            detach=True,
            name=f"ks-{spec.role}-{uuid.uuid4().hex[:10]}",
            labels=ownership_labels(spec.role, [root, ipc]),
            environment=container_env,
            working_dir=root,
            user=self.user,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={self.tmp_size}",
                   "/var/tmp": "rw,noexec,nosuid,nodev,size=256m"},
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
            options["device_requests"] = [DeviceRequest(device_ids=[physical_gpu(spec.gpu)], capabilities=[["gpu"]])]
        return options


def _kill_switch(container, alive: ContainerLiveness, last_logs: list[str], cleanup_dirs):
    """kill(): idempotent and thread-safe (the server, the exit handler and start() may all
    call it); keeps the container's last log lines in `last_logs` before removing it."""
    lock = threading.Lock()
    state = {"killed": False}

    def kill() -> None:
        with lock:
            if state["killed"]:
                return
            state["killed"] = True
            alive.dead = True
            untrack(container.id)
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

    return kill
