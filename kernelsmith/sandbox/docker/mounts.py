"""What a sandbox container sees of the host and as whom it runs: bind mounts at the same
path inside as outside (so job paths need no translation), the host toolchain mounts that
let a bare image run this interpreter, and handing directories we create to the
container's user."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

NOBODY = (65534, 65534)
PACKAGE_MOUNT = "/opt/kernelsmith"  # where the kernelsmith package is mounted inside


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


def env_host_mounts() -> list[str]:
    """KERNELSMITH_DOCKER_HOST_MOUNTS: colon-separated paths, "auto" for host_toolchain_mounts()."""
    value = os.environ.get("KERNELSMITH_DOCKER_HOST_MOUNTS", "")
    out: list[str] = []
    for item in value.split(":"):
        item = item.strip()
        if item == "auto":
            out += host_toolchain_mounts()
        elif item:
            out.append(item)
    return list(dict.fromkeys(out))


def expand_host_mounts(paths) -> list[str]:
    """Caller-given host mounts: absolute paths, "auto" expanded, duplicates dropped."""
    expanded: list[str] = []
    for p in paths:
        expanded += host_toolchain_mounts() if p == "auto" else [os.path.abspath(p)]
    return list(dict.fromkeys(expanded))


def normalise_mounts(mounts) -> dict[str, str]:
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


def parse_user(user: str) -> tuple[int, int] | None:
    """(uid, gid) of a numeric "uid[:gid]", else None (then we cannot chown for it)."""
    uid, _, gid = user.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        return None


def give_to_container_user(path: str, owner: tuple[int, int] | None, recursive: bool = False) -> None:
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
