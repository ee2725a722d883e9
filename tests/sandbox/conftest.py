"""Fixtures of the sandbox conformance suite: one server per sandbox per module.

The `sandbox` fixture is parametrized over the process sandbox and the Docker sandbox.
The Docker one uses KERNELSMITH_TEST_DOCKER_IMAGE (default kernelsmith-sandbox:test,
built without a registry by sandbox/build-test-image.sh; .ci/docker.sh does all of it)
with the host's toolchain mounted read-only (KERNELSMITH_DOCKER_HOST_MOUNTS, default
"auto"), and is
  * skipped when KERNELSMITH_SKIP_DOCKER=1,
  * failed when CI is set and Docker or the image is unavailable (CI must run it),
  * skipped, with the reason, when not in CI and Docker or the image is unavailable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kernelsmith.sandbox.base import JobOutcome, Limits, ServerSpec
from kernelsmith.sandbox.local import LocalSandbox

FIXTURES = Path(__file__).parent / "fixtures"
SECRETS = {"OPENAI_API_KEY": "sk-test-secret", "GITHUB_TOKEN": "ghp-sk-test-secret"}
CANARY = ("KS_CONFORMANCE_CANARY", "not-in-any-allowlist")  # no secret marker in its name
TEST_IMAGE = os.environ.get("KERNELSMITH_TEST_DOCKER_IMAGE", "kernelsmith-sandbox:test")
# Small enough to exceed quickly, large enough for a Python job to run.
SMALL_LIMITS = Limits(fsize_mb=1, nofile=64)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def secrets_in_env():
    """The orchestrator's environment holds secrets; no job may ever see them."""
    saved = {k: os.environ.get(k) for k in [*SECRETS, CANARY[0]]}
    os.environ.update(SECRETS)
    os.environ[CANARY[0]] = CANARY[1]
    # /proc/PID/environ shows a process's environment as it was exec'd, so this process's
    # late additions are not there: a stand-in for an orchestrator started with its keys.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                              env=dict(os.environ), stdin=subprocess.DEVNULL)
    yield dict(SECRETS)
    holder.kill()
    holder.wait()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def shared_dir():
    """Where job scripts are written: readable by the sandbox's user (nobody)."""
    path = tempfile.mkdtemp(prefix="ks-conformance-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _docker_sandbox(shared: str, limits: Limits | None = None):
    from kernelsmith.sandbox import docker as dsb

    if os.environ.get("KERNELSMITH_SKIP_DOCKER") == "1":
        pytest.skip("KERNELSMITH_SKIP_DOCKER=1: Docker sandbox tests switched off")
    ok, why = dsb.available(TEST_IMAGE)
    if not ok:
        if in_ci():
            pytest.fail(f"CI is set but the Docker sandbox cannot run: {why} (.ci/docker.sh sets it up)",
                        pytrace=False)
        pytest.skip(f"Docker sandbox unavailable outside CI: {why}")
    host_mounts = os.environ.get("KERNELSMITH_DOCKER_HOST_MOUNTS", "auto").split(":")
    python = os.environ.get("KERNELSMITH_DOCKER_PYTHON") or sys.executable
    return dsb.DockerSandbox(image=TEST_IMAGE, limits=limits, host_mounts=host_mounts, python=python,
                             mounts={shared: "ro"})


def make_sandbox(kind: str, shared: str, limits: Limits | None = None):
    if kind == "process":
        return LocalSandbox(limits=limits)
    return _docker_sandbox(shared, limits)


@dataclass
class Harness:
    """A sandbox, its running server, and helpers to run the fixture scripts in it."""

    kind: str
    sandbox: object
    server: object
    shared: str
    _extra: list = field(default_factory=list)

    secrets = SECRETS
    canary = CANARY
    small_limits = SMALL_LIMITS

    @property
    def as_nobody(self) -> bool:
        """Whether jobs run as uid 65534 (Docker; the process sandbox when root)."""
        return self.kind == "docker" or bool(getattr(self.sandbox, "drop_privileges", False))

    def script(self, name: str, params: dict | None = None) -> str:
        """Copy fixtures/<name>.py (and its parameters) where the sandbox can read it."""
        dest = os.path.join(self.shared, f"{Path(name).stem}-{uuid.uuid4().hex[:8]}.py")
        shutil.copyfile(FIXTURES / f"{Path(name).stem}.py", dest)
        os.chmod(dest, 0o644)
        if params is not None:
            with open(dest + ".json", "w") as f:
                json.dump(params, f)
            os.chmod(dest + ".json", 0o644)
        return dest

    def submit(self, name: str, params: dict | None = None, timeout: float = 30.0, server=None):
        return (server or self.server).submit("script", {"path": self.script(name, params)}, timeout=timeout)

    def run(self, name: str, params: dict | None = None, timeout: float = 30.0, server=None) -> JobOutcome:
        """Run a script; the outcome gains `scratch` (its directory) and `wall` (seconds)."""
        start = time.monotonic()
        fut = self.submit(name, params, timeout, server)
        outcome = fut.result(timeout=timeout + 30)
        outcome.scratch = fut.scratch  # type: ignore[attr-defined]
        outcome.wall = time.monotonic() - start  # type: ignore[attr-defined]
        return outcome

    def assert_healthy(self) -> None:
        """The server survived whatever the previous job did and runs the next one."""
        assert self.server.alive(), "the fork server died"
        out = self.run("returns", timeout=30)
        assert out.status == "ok", out
        assert out.result["returned"]["answer"] == 42

    def start(self, limits: Limits):
        """Another server of this kind of sandbox, with other limits (closed at teardown)."""
        sb = make_sandbox(self.kind, self.shared, limits)
        server = sb.start(ServerSpec(role="cpu"))
        self._extra.append(server)
        return server


@pytest.fixture(scope="module", params=["process", "docker"])
def sandbox(request, secrets_in_env, shared_dir):
    """A fresh LocalSandbox() or DockerSandbox(test image, host toolchain mounted)."""
    return make_sandbox(request.param, shared_dir)


@pytest.fixture(scope="module")
def harness(sandbox, shared_dir):
    kind = "docker" if sandbox.name == "docker" else "process"
    start = time.monotonic()
    server = sandbox.start(ServerSpec(role="cpu"))
    print(f"\n[{kind}] server up in {time.monotonic() - start:.1f} s: {sandbox.describe()}")
    h = Harness(kind, sandbox, server, shared_dir)
    yield h
    for extra in h._extra:
        extra.close()
    server.close()


