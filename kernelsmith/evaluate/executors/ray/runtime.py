"""What both sides of the Ray pool share, the driver and the Ray workers: whether Ray is
there, the evaluator factory a worker builds, and which node a worker runs on."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from kernelsmith.config import EvalConfig


def ray_available() -> tuple[bool, str]:
    """(True, version) when Ray can be imported, else (False, what to do)."""
    try:
        import ray
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken install
        return False, f"Ray is not importable ({type(exc).__name__}: {exc}); install it with pip install 'ray==2.60.0'"
    return True, f"ray {getattr(ray, '__version__', '?')}"


def load_factory(spec: str | Callable | None) -> Callable[[EvalConfig], Any]:
    """'module:callable' -> the callable; a callable as is; None -> the real Evaluator."""
    if spec is None:
        from kernelsmith.evaluate.evaluator import Evaluator

        return Evaluator
    if callable(spec):
        return spec
    mod, _, name = str(spec).partition(":")
    if not mod or not name:
        raise ValueError(f"evaluator_factory takes 'module:callable' (got {spec!r})")
    return getattr(importlib.import_module(mod), name)


def node_id() -> str:
    """The Ray node this code runs on ("" when Ray cannot say)."""
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        return ""
