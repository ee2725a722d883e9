"""Remote compilation for the Ray pool: a candidate is compiled by a Ray CPU task (anywhere
in the cluster) for the GPU actor's arch and torch version, and its build directory is
shipped back as tar bytes into the actor's build cache. The `.ks_ok` marker there makes the
actor's own compile a cache hit.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

from kernelsmith.config import EvalConfig
from kernelsmith.evaluate.evaluator import OK_MARKER
from kernelsmith.evaluate.executors.ray.runtime import load_factory, node_id
from kernelsmith.results import CompileResult, ErrorClass, EvalResult, SystemInfo, Verdict, _encode, code_hash
from kernelsmith.task import Task


def pack_dir(path: Path) -> bytes:
    """A build directory as tar.gz bytes (level 1: it is sent once, so speed over size)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        tar.add(str(path), arcname=".")
    return buf.getvalue()


def install_tree(root: Path, relative_key: str, data: bytes) -> bool:
    """Unpack a build directory to root/relative_key (atomically: unpack beside it, then
    rename). False when a finished build (with its marker) is already there."""
    rel = Path(relative_key)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"not a relative build key: {relative_key!r}")
    dest = Path(root) / rel
    if (dest / OK_MARKER).exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".ks_install_"))
    try:
        tmp.chmod(0o755)  # sandboxed jobs may run as nobody
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Pythons without extraction filters
                for m in tar.getmembers():
                    if m.name.startswith("/") or ".." in Path(m.name).parts or m.issym() or m.islnk():
                        raise ValueError(f"unsafe member in a build archive: {m.name!r}")
                tar.extractall(tmp)
        if not (tmp / OK_MARKER).exists():
            raise ValueError("the build archive has no completion marker")
        if (dest / OK_MARKER).exists():
            return False
        if dest.exists():  # a killed earlier attempt
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.rename(tmp, dest)
        except OSError:
            if (dest / OK_MARKER).exists():  # someone else installed it meanwhile
                return False
            raise
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def compile_failure(task: Task, code: str, comp: CompileResult, system: SystemInfo | None = None) -> EvalResult:
    """The result the GPU actor would give for a candidate that does not compile (as in
    Evaluator._gpu_stage)."""
    from kernelsmith.evaluate import static

    chash = code_hash(code)
    verdict = Verdict.TIMEOUT if comp.error is ErrorClass.COMPILE_TIMEOUT else Verdict.COMPILE_ERROR
    return EvalResult(verdict, task.hash, chash, static=static.screen(code, task.source), compile=comp,
                      error=comp.error, message=comp.message or "compile failed", system=system or SystemInfo(),
                      wall={"compile": comp.seconds})


def compile_job(config: EvalConfig, factory: str | Callable | None, facts: dict, source: str, path: str,
                 code: str, build_root: str) -> dict:
    """Compile one candidate for the GPU actor described by `facts`.

    build_root="actor": compile at the actor's own cache path (a build's absolute paths,
    e.g. in ninja files, then match on the GPU node, so nothing is rebuilt there); the tar is
    shipped only when this task ran on another node. "temp": compile in a fresh temporary
    cache and always ship."""
    task = Task.from_source(source, path)
    same_node = bool(facts.get("node")) and facts.get("node") == node_id()
    root = Path(facts["root"]) if build_root == "actor" else None
    tmp = None
    if root is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = None
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="ks_ray_compile_"))
        tmp.chmod(0o755)
        root = tmp
    cfg = dataclasses.replace(config, cache_dir=root, arch=facts["arch"], gpu=0, compile_workers=1)
    ev = load_factory(factory)(cfg)
    try:
        if hasattr(ev, "probe_info"):  # the actor's torch version: the same build key
            ev.probe_info = {"system": {"compute_capability": facts["arch"], "torch": facts["torch"]}}
        comp = ev.compile(task, code)
        out: dict[str, Any] = {"compile": _encode(comp), "rel": None, "tar": None}
        if comp.ok:
            build = Path(ev._paths(task, code)[2])
            out["rel"] = str(build.relative_to(Path(ev.root)))
            if (build / OK_MARKER).exists() and (tmp is not None or not same_node):
                out["tar"] = pack_dir(build)
        return out
    finally:
        if hasattr(ev, "close"):
            ev.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
