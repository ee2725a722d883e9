"""`kernelsmith doctor`: what this machine can do, checked rather than assumed."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

from rich.console import Console
from rich.table import Table


def _run(cmd: list[str], timeout: float = 20) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _version(pkg: str) -> str | None:
    for name in (pkg, pkg.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _gpus() -> list[dict]:
    out = _run(["nvidia-smi", "--query-gpu=index,name,compute_cap,memory.total,driver_version",
                "--format=csv,noheader"])
    gpus = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5:
            gpus.append(dict(index=int(parts[0]), name=parts[1], compute_capability=parts[2],
                             memory=parts[3], driver=parts[4]))
    return gpus


def _torch() -> dict:
    # A subprocess: importing torch here would slow every other command down.
    code = ("import torch,json;print(json.dumps({'version':torch.__version__,'cuda':torch.version.cuda,"
            "'available':torch.cuda.is_available(),'devices':torch.cuda.device_count()}))")
    import json
    import sys

    out = _run([sys.executable, "-c", code], timeout=120)
    return json.loads(out) if out else {"version": None}


def _cupy() -> str | None:
    for name in ("cupy", "cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x"):
        v = _version(name)
        if v:
            return f"{name} {v}"
    return None


def _docker() -> dict:
    try:
        import docker

        client = docker.from_env(timeout=5)
        info = client.version()
        return {"engine": info.get("Version"), "reachable": True}
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return {"engine": None, "reachable": False, "reason": str(exc).splitlines()[0][:200]}


def sandbox_job(sb, timeout: float = 180.0) -> dict:
    """Run one real tiny job through the sandbox, the way compiles run: it imports torch
    and kernelsmith and writes into the cache (KERNELSMITH_HOME). Proves that the job's
    user reaches the interpreter, site-packages, the package and the cache."""
    import time
    import uuid

    from kernelsmith import config
    from kernelsmith.sandbox.base import ServerSpec

    build = config.home() / "cache" / "build"
    out = build / f"doctor-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    server = None
    try:
        for d in (config.home(), config.home() / "cache", build):
            d.mkdir(exist_ok=True)
        build.chmod(0o755)
        if hasattr(sb, "add_mount"):  # Docker mounts it; the process sandbox checks nobody reaches it
            sb.add_mount(str(config.home() / "cache"), "rw")
        server = sb.start(ServerSpec(role="cpu"))
        res = server.submit("selfcheck", {"out": str(out)}, timeout=timeout, writable=[str(out)]).result()
        seconds = time.monotonic() - start
        if res.status != "ok":
            detail = res.result if isinstance(res.result, str) else res.output
            last = (detail or "").strip().splitlines()[-1:] or [""]
            return {"ok": False, "seconds": seconds, "detail": f"{res.status}: {last[0][:300]}"}
        wrote = (out / "selfcheck.txt").is_file()
        return {"ok": wrote, "seconds": seconds, "uid": res.result.get("uid"),
                "detail": "" if wrote else "the job's file is not in the cache"}
    except Exception as exc:  # noqa: BLE001 - the doctor reports, never raises
        return {"ok": False, "seconds": time.monotonic() - start, "detail": str(exc).splitlines()[0][:300]}
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(out, ignore_errors=True)


def diagnose(run_job: bool = True) -> dict:
    from kernelsmith import sandbox as sandboxes

    nvcc = shutil.which("nvcc")
    nvcc_version = _run([nvcc, "--version"]) if nvcc else None
    try:
        sb = sandboxes.select("auto")
        job = sandbox_job(sb) if run_job else None
        sandbox = {"name": sb.name, "detail": sb.describe(), "job": job}
    except Exception as exc:  # noqa: BLE001
        sandbox = {"name": None, "detail": str(exc), "job": {"ok": False, "detail": str(exc)[:300]}}
    torch = _torch()
    report = {
        "gpus": _gpus(),
        "nvcc": (nvcc_version.splitlines()[-1] if nvcc_version else None),
        "torch": torch,
        "cupy": _cupy(),
        "ninja": _version("ninja"),
        "docker": _docker(),
        "sandbox": sandbox,
    }
    report["can_evaluate"] = bool(torch.get("available"))
    job_ok = (sandbox.get("job") or {}).get("ok", not run_job)
    report["can_compile"] = bool(nvcc) and bool(job_ok)
    return report


def render_doctor(r: dict, console: Console) -> None:
    t = Table(title="kernelsmith doctor", show_header=False)
    ok, bad = "[green]yes[/]", "[red]no[/]"
    gpus = ", ".join(f"#{g['index']} {g['name']} (sm {g['compute_capability']}, {g['memory']}, driver {g['driver']})"
                     for g in r["gpus"]) or "[red]none found[/] (nvidia-smi missing or no driver)"
    t.add_row("GPUs", gpus)
    t.add_row("nvcc", r["nvcc"] or "[red]not found[/] (install the CUDA toolkit or put nvcc on PATH)")
    tv = r["torch"]
    t.add_row("torch", f"{tv.get('version')} (CUDA {tv.get('cuda')}), sees {tv.get('devices', 0)} GPU(s)"
              if tv.get("version") else "[red]not importable[/]")
    t.add_row("CuPy", r["cupy"] or "not installed (the CuPy/NVRTC backend is unavailable)")
    t.add_row("ninja", r["ninja"] or "[red]not installed[/] (load_inline needs it)")
    d = r["docker"]
    t.add_row("Docker engine", d["engine"] and f"{d['engine']}" or f"not reachable ({d.get('reason', '')})")
    t.add_row("sandbox in use", r["sandbox"]["detail"] or str(r["sandbox"]["name"]))
    job = r["sandbox"].get("job")
    if job is not None:
        t.add_row("sandbox job", f"{ok} (uid {job.get('uid')}, imported torch and kernelsmith, wrote into the "
                  f"cache, {job['seconds']:.1f} s)" if job["ok"] else f"{bad} ({job.get('detail', '')})")
    t.add_row("can compile", ok if r["can_compile"] else bad)
    t.add_row("can evaluate on a GPU", ok if r["can_evaluate"] else bad)
    console.print(t)
