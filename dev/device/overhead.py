"""Host overhead of a candidate's forward call against its GPU time, outside the sandbox.

Shows how much of a timed sample is Python launch overhead (CuPy argument packing,
DLPack, stream wrappers) rather than kernel time. Usage:
    python dev/device/overhead.py TASK.py CANDIDATE.py [...more candidates]
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time

import torch


def load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(fn, args, n: int = 50) -> dict:
    for _ in range(5):
        fn(*args)
    torch.cuda.synchronize()
    host, idle, busy = [], [], []
    big = torch.empty(64 * 2**20, device="cuda")  # 256 MB: a ~120 us fill keeps the GPU busy
    for _ in range(n):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        s.record()
        fn(*args)
        e.record()
        host.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize()
        idle.append(s.elapsed_time(e))
        big.fill_(1.0)  # GPU busy while the host launches: the launch overhead is hidden
        s.record()
        fn(*args)
        e.record()
        torch.cuda.synchronize()
        busy.append(s.elapsed_time(e))
    return {k: round(statistics.median(v), 4) for k, v in (("host_ms", host), ("event_idle_ms", idle),
                                                           ("event_busy_ms", busy))}


def main() -> None:
    task = load(sys.argv[1], "task")
    torch.manual_seed(0)
    ref = task.Model(*task.get_init_inputs()).cuda()
    args = [x.cuda() if isinstance(x, torch.Tensor) else x for x in task.get_inputs()]
    with torch.no_grad():
        print("reference", measure(ref, args), flush=True)
        for i, path in enumerate(sys.argv[2:]):
            cand = load(path, f"cand{i}")
            torch.manual_seed(0)
            m = cand.ModelNew(*task.get_init_inputs()).cuda()
            print(path.split("/")[-1], measure(m, args), flush=True)


if __name__ == "__main__":
    main()
