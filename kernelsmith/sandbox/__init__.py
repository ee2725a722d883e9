"""Sandboxes: where untrusted candidate code runs. See base.py for the protocol."""

from __future__ import annotations

from kernelsmith.sandbox.base import JobOutcome, Limits, ServerSpec  # noqa: F401
from kernelsmith.sandbox.local import LocalSandbox

DOCKER_IMAGE = "kernelsmith-sandbox:latest"


def select(name: str = "auto", image: str | None = None):
    """The sandbox to use: Docker where its engine and image are there, else processes."""
    if name == "process":
        return LocalSandbox()
    if name in ("auto", "docker"):
        try:
            from kernelsmith.sandbox import docker as docker_sandbox

            ok, why = docker_sandbox.available(image or DOCKER_IMAGE)
        except ImportError as exc:
            ok, why = False, f"the docker package is not installed ({exc})"
        if ok:
            return docker_sandbox.DockerSandbox(image=image or DOCKER_IMAGE)
        if name == "docker":
            raise RuntimeError(f"the Docker sandbox is not available: {why}")
        return LocalSandbox()
    raise ValueError(f"unknown sandbox {name!r}: use auto, process or docker")
