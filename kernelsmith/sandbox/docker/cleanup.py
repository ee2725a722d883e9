"""Containers must not outlive their owner: the ones this process started are killed when
it exits, and those of dead processes of this host are removed by the next sandbox.

Every container we start carries the LABEL, plus its host, owner pid and host directories
as labels, so that a later process can tell an orphan from a sibling's live container.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
from typing import Callable

from kernelsmith.sandbox.docker.engine import docker_client

LABEL = "kernelsmith.sandbox"  # every container we start carries it (value: the role)

_LIVE: dict[str, Callable[[], None]] = {}  # container id -> kill(), for the exit handler
_LIVE_LOCK = threading.Lock()


def ownership_labels(role: str, dirs: list[str]) -> dict[str, str]:
    """The labels remove_stale() reads back."""
    return {LABEL: role, "kernelsmith.host": socket.gethostname(),
            "kernelsmith.pid": str(os.getpid()), "kernelsmith.dirs": ":".join(dirs)}


def track(container_id: str, kill: Callable[[], None]) -> None:
    """Kill this container at interpreter exit unless untrack() comes first."""
    with _LIVE_LOCK:
        _LIVE[container_id] = kill


def untrack(container_id: str) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(container_id, None)


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
    client = client or docker_client()
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
