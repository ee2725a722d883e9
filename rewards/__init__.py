"""Reward functions over evaluation results, shared by search and training.

Signature (TRL's GRPOTrainer accepts it: batched, keyword arguments, None where a reward
does not apply):

    def my_reward(completions: list, results: list[EvalResult | dict | None], **kwargs) -> list[float | None]

`results[i]` is the evaluation of `completions[i]` (None when no code could be extracted).
A trainer gets them through `kernelsmith.rewards_adapter` (evaluate, then score); search
strategies pass the results they already have.

Registry: built-ins live in rewards/builtin.py; any other file dropped into this folder
that decorates functions with `@register("name")` is loaded by `load()` and selectable by
name (`get("name")`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

RewardFn = Callable[..., list]
_REGISTRY: dict[str, RewardFn] = {}
_loaded = False


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    def deco(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"reward {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = fn
        fn.reward_name = name  # type: ignore[attr-defined]
        return fn
    return deco


def load() -> None:
    """Import every module in this folder once, so their @register calls run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def get(name: str) -> RewardFn:
    load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    load()
    return sorted(_REGISTRY)
