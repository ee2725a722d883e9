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


def diagnose() -> dict:
    from kernelsmith import sandbox as sandboxes

    nvcc = shutil.which("nvcc")
    nvcc_version = _run([nvcc, "--version"]) if nvcc else None
    try:
        sb = sandboxes.select("auto")
        sandbox = {"name": sb.name, "detail": sb.describe()}
    except Exception as exc:  # noqa: BLE001
        sandbox = {"name": None, "detail": str(exc)}
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
    report["can_compile"] = bool(nvcc)
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
    t.add_row("can compile", ok if r["can_compile"] else bad)
    t.add_row("can evaluate on a GPU", ok if r["can_evaluate"] else bad)
    console.print(t)
