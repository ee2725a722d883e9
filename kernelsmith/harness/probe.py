"""What this machine's GPU is and what it can do, measured once per GPU and cached.

The ceilings (device-to-device copy bandwidth, dense bf16 matmul rate, on random data)
bound every task from below: a candidate faster than the bound is a bug or a hack.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys


def system_info(with_driver: bool = True) -> dict:
    import torch

    info = {
        "gpu": "", "compute_capability": "", "driver": "", "torch": torch.__version__,
        "cuda": str(torch.version.cuda), "cupy": "", "python": sys.version.split()[0],
        "hostname": socket.gethostname(),
    }
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except Exception:
        info["cupy"] = "not installed"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = p.name
        info["compute_capability"] = f"{p.major}.{p.minor}"
        info["gpu_uuid"] = str(getattr(p, "uuid", "") or "")
        info["driver"] = _driver() if with_driver else ""  # nvidia-smi costs ~0.5 s: the probe has it
    return info


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return ""


def measure_ceilings() -> dict:
    """Copy bandwidth (bytes read + written per second) and bf16 matmul FLOP/s."""
    import torch

    dev = torch.device("cuda")
    n = 1 << 30  # 1 GiB each way: far past the L2
    bufs = [torch.randint(0, 255, (n,), dtype=torch.uint8, device=dev)]
    bufs.append(torch.empty_like(bufs[0]))
    bw = _best_rate(lambda: bufs[1].copy_(bufs[0]), 2.0 * n)
    bufs.clear()
    m = 8192
    a = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
    peak = _best_rate(lambda: torch.mm(a, b), 2.0 * m**3)
    return {"bandwidth": bw, "peak_flops": peak, "l2_bytes": int(getattr(
        torch.cuda.get_device_properties(0), "L2_cache_size", 0)), "sms": torch.cuda.get_device_properties(0).multi_processor_count,
        "memory_bytes": torch.cuda.get_device_properties(0).total_memory}


def _best_rate(fn, work: float, reps: int = 10) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return work / times[len(times) // 2]


def run(args: dict) -> dict:
    import torch

    out = {"cuda_available": torch.cuda.is_available(), "device_count": torch.cuda.device_count(),
           "system": system_info(), "platform": platform.platform()}
    if not out["cuda_available"]:
        out["reason"] = _why_no_cuda(torch)
        return out
    if args.get("ceilings"):
        out["ceilings"] = measure_ceilings()
    return out


def _why_no_cuda(torch) -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    return "torch has CUDA support but no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty)"
