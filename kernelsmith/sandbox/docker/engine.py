"""Talking to the Docker engine: the client, whether the engine and image are there, and
whether a container still runs. docker-py is imported only when needed, so the process
sandbox works without it."""

from __future__ import annotations

import os
import threading
import time

DEFAULT_IMAGE = "kernelsmith-sandbox:latest"
ALIVE_RECHECK_S = 0.5


def docker_client(timeout: int = 60):
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
        client = docker_client(timeout=10)
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


class ContainerLiveness:
    """`container.status == "running"`, asked of the engine at most every 0.5 s: it is
    polled every 50 ms while the server starts and before every job, and each engine
    question is an HTTP round trip."""

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
