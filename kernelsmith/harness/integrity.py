"""Detects a candidate that tampers with the timer, the checker or numerics flags.

A snapshot of the objects the harness and torch's numerics depend on is taken before
the candidate is imported; any difference afterwards is reported as tampering. The
harness itself uses references bound at import time, so tampering cannot change its
measurements; reporting it still matters, because the candidate meant to cheat.
"""

from __future__ import annotations

import builtins
import threading
import time

import torch

WATCHED = {
    "torch.cuda.synchronize": lambda: torch.cuda.synchronize,
    "torch.cuda.Event": lambda: torch.cuda.Event,
    "torch.cuda.Event.record": lambda: torch.cuda.Event.record,
    "torch.cuda.Event.elapsed_time": lambda: torch.cuda.Event.elapsed_time,
    "torch.cuda.Event.synchronize": lambda: torch.cuda.Event.synchronize,
    "torch.cuda.current_stream": lambda: torch.cuda.current_stream,
    "torch.cuda.Stream": lambda: torch.cuda.Stream,
    "time.perf_counter": lambda: time.perf_counter,
    "time.time": lambda: time.time,
    "time.monotonic": lambda: time.monotonic,
    "torch.allclose": lambda: torch.allclose,
    "torch.isclose": lambda: torch.isclose,
    "torch.equal": lambda: torch.equal,
    "torch.testing.assert_close": lambda: torch.testing.assert_close,
    "torch.isfinite": lambda: torch.isfinite,
    "torch.abs": lambda: torch.abs,
    "torch.Tensor.__sub__": lambda: torch.Tensor.__sub__,
    "torch.Tensor.__eq__": lambda: torch.Tensor.__eq__,
    "torch.Tensor.double": lambda: torch.Tensor.double,
    "torch.Tensor.clone": lambda: torch.Tensor.clone,
    "torch.nn.Module.__call__": lambda: torch.nn.Module.__call__,
    "builtins.float": lambda: builtins.float,
    "builtins.isinstance": lambda: builtins.isinstance,
    "builtins.type": lambda: builtins.type,
}

FLAGS = {
    "torch.backends.cuda.matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
    "torch.backends.cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
    "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction":
        lambda: torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
    "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction":
        lambda: torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
    "float32_matmul_precision": torch.get_float32_matmul_precision,
    "torch.backends.cudnn.benchmark": lambda: torch.backends.cudnn.benchmark,
    "deterministic_algorithms": torch.are_deterministic_algorithms_enabled,
}


def _read(table: dict) -> dict:
    out = {}
    for name, get in table.items():
        try:
            out[name] = get()
        except Exception as exc:  # noqa: BLE001 - a deleted attribute is tampering too
            out[name] = ("missing", repr(exc))
    return out


class Snapshot:
    def __init__(self) -> None:
        self.l2_limit = disable_persisting_l2()  # harness policy: no persisting L2 for anyone
        self.objects = _read(WATCHED)
        self.flags = _read(FLAGS)
        self.threads = {t.ident for t in threading.enumerate()}

    def tampered(self) -> list[str]:
        now_obj, now_flags = _read(WATCHED), _read(FLAGS)
        changed = [f"{k} was replaced" for k, v in self.objects.items() if now_obj[k] is not v]
        changed += [f"{k} changed from {v!r} to {now_flags[k]!r}" for k, v in self.flags.items()
                    if now_flags[k] != v]
        return changed

    def new_threads(self) -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident not in self.threads and t.is_alive()]


PERSISTING_L2 = 0x06  # cudaLimitPersistingL2CacheSize


def disable_persisting_l2() -> int:
    """Set the persisting-L2 carve-out to zero (drivers may default to a non-zero one), so
    no access-policy window can keep data in L2 across the flush. Returns the limit the
    driver then reports (its minimum)."""
    try:
        import cupy

        cupy.cuda.runtime.deviceSetLimit(PERSISTING_L2, 0)
        return int(cupy.cuda.runtime.deviceGetLimit(PERSISTING_L2))
    except Exception:  # noqa: BLE001 - best effort where CuPy's runtime API is missing
        return 0


def reset_persisting_l2(baseline: int) -> bool:
    """Put the persisting-L2 limit back to `baseline`; True if someone had raised it."""
    try:
        import cupy

        rt = cupy.cuda.runtime
        now = int(rt.deviceGetLimit(PERSISTING_L2))
        if now > baseline:
            rt.deviceSetLimit(PERSISTING_L2, 0)
            return True
        return False
    except Exception:  # noqa: BLE001
        return False
