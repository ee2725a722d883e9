"""Built-in rewards. Each takes (completions, results, **kwargs) and returns one value per
completion; `results` holds EvalResult objects or their dicts (`EvalResult.to_dict()`).

- speedup: the speedup over eager for a correct kernel, 0 otherwise.
- log_speedup: log(speedup) for a correct kernel (0 at parity, negative when slower),
  `fail` (default -1) otherwise; clipped to +/- `clip` (default log 10) so one outlier
  cannot dominate a batch.
- staged: the CUDA-LLM paper's staged reward (compiles / correct / faster):
  0 no code or rejected, 0.1 compiles, 0.3 runs, 0.6 correct, 0.6 + 0.4 * min(1, (s - 1)/`full_at`)
  for a correct kernel faster than eager (s > 1).
- contrastive: in the spirit of CUDA-L1's normalised contrastive reward: within one group
  (the samples of one prompt; all completions by default, or grouped by a `group` list),
  correct kernels' speedups are turned into z-scores of log-speedup, failed kernels get the
  group's minimum minus one; a group with a single correct value gets 0 for it.
- penalized: `log_speedup` with penalties: rejected (a cheat) -3, timeout -2,
  compile error / runtime error / incorrect -1.
None is returned where a reward does not apply: for `results[i] is None` when
`none_for_missing=True` (default False: missing code scores as a failure).
"""

from __future__ import annotations

import math

from rewards import register


def _get(r, *path, default=None):
    """Read a field from an EvalResult or its dict form."""
    cur = r
    for p in path:
        if cur is None:
            return default
        cur = cur.get(p) if isinstance(cur, dict) else getattr(cur, p, None)
    if hasattr(cur, "value"):  # enums
        cur = cur.value
    return default if cur is None else cur


def verdict(r) -> str:
    return _get(r, "verdict", default="none")


def speedup(r) -> float | None:
    if verdict(r) != "correct":
        return None
    s = _get(r, "timing", "speedup_eager")
    return float(s) if s and s > 0 else None


def _missing(r, none_for_missing: bool):
    return r is None and none_for_missing


@register("speedup")
def speedup_reward(completions, results, none_for_missing: bool = False, **kwargs) -> list:
    return [None if _missing(r, none_for_missing) else (speedup(r) or 0.0) for r in results]


@register("log_speedup")
def log_speedup_reward(completions, results, fail: float = -1.0, clip: float = math.log(10),
                       none_for_missing: bool = False, **kwargs) -> list:
    out = []
    for r in results:
        if _missing(r, none_for_missing):
            out.append(None)
            continue
        s = speedup(r)
        out.append(fail if s is None else max(-clip, min(clip, math.log(s))))
    return out


STAGES = {"runtime_error": 0.1, "timeout": 0.1, "incorrect": 0.3, "correct": 0.6}


@register("staged")
def staged_reward(completions, results, full_at: float = 1.0, none_for_missing: bool = False, **kwargs) -> list:
    out = []
    for r in results:
        if _missing(r, none_for_missing):
            out.append(None)
            continue
        v = verdict(r)
        if v == "invalid_task":  # the reference is broken: nothing to reward
            out.append(None)
            continue
        base = STAGES.get(v, 0.0)  # compile_error, rejected, no code: 0
        s = speedup(r)
        if s is not None and s > 1:
            base = 0.6 + 0.4 * min(1.0, (s - 1) / full_at)
        out.append(base)
    return out


@register("contrastive")
def contrastive_reward(completions, results, group: list | None = None, **kwargs) -> list:
    groups: dict = {}
    for i, g in enumerate(group if group is not None else [0] * len(results)):
        groups.setdefault(g, []).append(i)
    out: list = [0.0] * len(results)
    for idx in groups.values():
        logs = {i: math.log(speedup(results[i])) for i in idx if speedup(results[i]) is not None}
        if len(logs) >= 2:
            mean = sum(logs.values()) / len(logs)
            std = math.sqrt(sum((v - mean) ** 2 for v in logs.values()) / len(logs)) or 1.0
            z = {i: (v - mean) / std for i, v in logs.items()}
        else:
            z = {i: 0.0 for i in logs}
        floor = min(z.values(), default=0.0) - 1.0
        for i in idx:
            out[i] = z.get(i, floor)
    return out


PENALTIES = {"rejected": -3.0, "timeout": -2.0, "compile_error": -1.0, "runtime_error": -1.0, "incorrect": -1.0}


@register("penalized")
def penalized_reward(completions, results, clip: float = math.log(10), **kwargs) -> list:
    out = []
    for r in results:
        s = speedup(r)
        if s is not None:
            out.append(max(-clip, min(clip, math.log(s))))
        else:
            out.append(PENALTIES.get(verdict(r), -1.0))
    return out
