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
import torch.utils._python_dispatch

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
    "torch.backends.cudnn.enabled": lambda: torch.backends.cudnn.enabled,
    "torch.backends.cudnn.deterministic": lambda: torch.backends.cudnn.deterministic,
    "default dtype": torch.get_default_dtype,
    "autocast (cuda)": lambda: (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")),
    "preferred BLAS library": lambda: str(torch.backends.cuda.preferred_blas_library()),
    "preferred linalg library": lambda: str(torch.backends.cuda.preferred_linalg_library()),
    "scaled-dot-product backends": lambda: (torch.backends.cuda.flash_sdp_enabled(),
                                            torch.backends.cuda.mem_efficient_sdp_enabled(),
                                            torch.backends.cuda.math_sdp_enabled()),
    # a mode pushed on these stacks sees (and can slow or rewrite) every op the reference runs
    "torch function mode stack": torch._C._len_torch_function_stack,
    "torch dispatch mode stack": torch._C._len_torch_dispatch_stack,
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


class OpRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the aten operators that run under it (the reference's forward, get_inputs,
    the checker), so their dispatcher registrations can be watched."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def dispatcher_state(ops: set[str]) -> tuple:
    """Every kernel registered for these operators, as the dispatcher lists them (a
    TORCH_LIBRARY_IMPL in a candidate's C++ that replaces aten::tanh for CUDA shows here)."""
    return tuple((op, torch._C._dispatch_dump(op)) for op in sorted(ops))


_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                 "_state_dict_hooks", "_load_state_dict_pre_hooks")


def global_hooks() -> tuple:
    """How many hooks every nn.Module runs (register_module_forward_hook and kin live in
    module-level dicts that are filled in place, so namespaces alone do not show them)."""
    import torch.nn.modules.module as mm

    return tuple((k, len(v)) for k, v in sorted(vars(mm).items())
                 if k.startswith("_global_") and isinstance(v, dict))


def model_state(model: torch.nn.Module) -> tuple:
    """Identity of every attribute of every submodule, and each parameter's and buffer's
    storage and version counter (in-place writes bump it)."""
    out = []
    for name, m in model.named_modules():
        hooks = tuple(len(getattr(m, h, None) or ()) for h in _MODULE_HOOKS)
        out.append((name, id(type(m)), hooks, tuple((k, id(v)) for k, v in vars(m).items()),
                    tuple((k, id(v)) for k, v in m._parameters.items()),
                    tuple((k, id(v)) for k, v in m._buffers.items())))
        for t in list(m._parameters.values()) + list(m._buffers.values()):
            if t is not None:
                out.append((t.data_ptr(), t._version))
    return tuple(out)
