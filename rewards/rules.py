"""A rule-based reward (AutoTriton-style) and its combinations with the execution reward.

`check(completion, language=None, task_source=None)` judges a completion's code without
running it and returns a `RuleVerdict` (score in [0, 1] and the reasons). Four checks, equal
weight:

- language: the code is written in the target kernel language (kernelsmith.languages.detect
  on the extracted code; without a target, in any kernel language);
- kernel defined: a kernel of that language exists (a `__global__` function in the CUDA
  source of cuda / cupy / pycuda; a `@triton.jit` function; a `@cuda.jit` function for numba);
- kernel launched: that kernel is started from runtime code (cupy: a RawKernel/RawModule
  kernel called; triton / numba: `kernel[grid](...)`; cuda: a `<<<...>>>` launch in the CUDA
  source; pycuda: a `get_function` kernel called);
- no torch compute on the hot path: none of the static screen's findings of the rules
  torch-compute, cublas-cudnn, fallback (try/except around the kernel) and
  reference-delegation (kernelsmith.evaluate.static: the same findings, not a re-implementation).

Registered rewards (all take `language=` and `task_source=`, each a string or one per item,
as TRL passes dataset columns):

- rule: the rule score alone.
- rule_gate: AutoTriton's combination: the execution reward `exec_reward` (default "staged")
  where the rule score reaches `threshold` (default 1.0: every check passes), `fail`
  (default 0.0) otherwise.
- rule_sum: `weight * rule + (1 - weight) * exec_reward` (default weight 0.2, exec "staged";
  both parts in [0, 1], so the sum is too).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards import get, register

HOT_PATH_RULES = ("torch-compute", "cublas-cudnn", "fallback", "reference-delegation")
CHECKS = ("language", "kernel_defined", "kernel_launched", "no_torch_hot_path")


@dataclass
class RuleVerdict:
    score: float  # fraction of CHECKS passed; 0 without code
    language: str  # detected ("" if none)
    checks: dict[str, bool] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # one per failed check

    @property
    def passed(self) -> bool:
        return self.score >= 1.0


def _code_of(completion: Any) -> tuple[str | None, str]:
    from kernelsmith.llm.extract import completion_text, extract_code

    text = completion_text(completion) if not isinstance(completion, str) else completion
    if not text or not text.strip():
        return None, "the completion is empty"
    return extract_code(text)


def _decorated(ctx, names: tuple[str, ...]) -> set[str]:
    """Functions decorated with one of the dotted `names` (called or not: @triton.jit, @cuda.jit(...))."""
    out = set()
    for fn, *_ in ctx.nodes(ast.FunctionDef):
        for d in fn.decorator_list:
            target = d.func if isinstance(d, ast.Call) else d
            if ctx.resolve(target) in names:
                out.add(fn.name)
    return out


def _grid_launched(ctx, kernels: set[str]) -> bool:
    """`kernel[grid](...)` (triton, numba) on one of `kernels`, from runtime code."""
    for n, fn, code, cls in ctx.nodes(ast.Call):
        f = n.func
        if isinstance(f, ast.Subscript) and isinstance(f.value, ast.Name) and f.value.id in kernels \
                and ctx.in_runtime(code, cls):
            return True
    return False


def _bound_and_called(ctx, makers: tuple[str, ...], methods: tuple[str, ...] = ()) -> bool:
    """A name bound to a kernel object (`k = cp.RawKernel(...)`, `k = mod.get_function(...)`) and
    called from runtime code."""
    bound = set()
    for n, *_ in [*ctx.nodes(ast.Assign)] * 2:  # twice: `mod = RawModule(...)` then `k = mod.get_function(..)`
        v = n.value
        if not isinstance(v, ast.Call):
            continue
        hit = ctx.resolve(v.func) in makers or (
            isinstance(v.func, ast.Attribute) and v.func.attr in methods)
        if hit:
            bound.update(k for t in n.targets if (k := ctx.key(t)))
    for n, fn, code, cls in ctx.nodes(ast.Call):
        if ctx.key(n.func) in bound and not isinstance(n.func, ast.Subscript) and ctx.in_runtime(code, cls):
            return True
    return False


def _kernel_checks(ctx, lang: str) -> tuple[bool, bool]:
    cuda_src = [raw for _, raw, _, _ in ctx.cuda]
    has_global = any("__global__" in s for s in cuda_src)
    if lang == "triton":
        ks = _decorated(ctx, ("triton.jit", "triton.autotune", "triton.heuristics"))
        return bool(ks), _grid_launched(ctx, ks)
    if lang == "numba":
        ks = _decorated(ctx, ("numba.cuda.jit", "numba.jit"))
        return bool(ks), _grid_launched(ctx, ks)
    if lang == "cupy":
        return has_global, _bound_and_called(ctx, ("cupy.RawKernel", "cupy.ElementwiseKernel",
                                                   "cupy.ReductionKernel"), ("get_function",))
    if lang == "pycuda":
        return has_global, _bound_and_called(ctx, ("pycuda.compiler.SourceModule",), ("get_function",))
    if lang == "cuda":
        return has_global, any("<<<" in s for s in cuda_src)
    return has_global, False


def hot_path_findings(ctx) -> dict[str, list[tuple[int, str]]]:
    """The static screen's findings of HOT_PATH_RULES for a parsed candidate."""
    from kernelsmith.evaluate.static import RULES

    out = {}
    for r in RULES:
        if r.id in HOT_PATH_RULES:
            hits = sorted(set(ctx.found.get(r.id, [])) | set(r.check(ctx)))
            if hits:
                out[r.id] = hits
    return out


def check(completion: Any, language: str | None = None, task_source: str | None = None) -> RuleVerdict:
    """The rule verdict of one completion (a reply, chat messages, or bare code). Never raises
    on bad input; an unknown target language is a ValueError (a caller's mistake)."""
    from kernelsmith import languages
    from kernelsmith.evaluate.static import Ctx

    if language:
        languages.get(language)  # names the choices on a typo
    code, why = _code_of(completion)
    if code is None:
        return RuleVerdict(0.0, "", dict.fromkeys(CHECKS, False), [f"no code: {why}"])
    try:
        ctx = Ctx(ast.parse(code), task_source)
    except (SyntaxError, ValueError, RecursionError) as exc:
        return RuleVerdict(0.0, "", dict.fromkeys(CHECKS, False), [f"the code does not parse: {exc}"])
    lang = languages.detect(code)
    reasons = []
    ok_lang = bool(lang) and (not language or lang == language)
    if not ok_lang:
        reasons.append(f"written in {lang or 'no kernel language'}, not {language}" if language
                       else "imports no kernel language (cuda, cupy, triton, numba, pycuda)")
    defined, launched = _kernel_checks(ctx, language or lang)
    which = f"{language or lang} kernel" if language or lang else "kernel"
    if not defined:
        reasons.append(f"no {which} is defined")
    if not launched:
        reasons.append(f"no {which} is launched from forward")
    hot = hot_path_findings(ctx)
    for rid, hits in hot.items():
        where = ", ".join(f"{what} at line {line}" for line, what in hits[:3])
        reasons.append(f"{rid} on the hot path: {where}")
    checks = {"language": ok_lang, "kernel_defined": defined, "kernel_launched": launched,
              "no_torch_hot_path": not hot}
    return RuleVerdict(sum(checks.values()) / len(checks), lang, checks, reasons)


def _per_item(value: Any, n: int) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{len(value)} values for {n} completions")
        return list(value)
    return [value] * n


def _rule_scores(completions: Sequence, language=None, task_source=None) -> list[float]:
    langs, srcs = _per_item(language, len(completions)), _per_item(task_source, len(completions))
    return [check(c, lg, src).score for c, lg, src in zip(completions, langs, srcs)]


@register("rule")
def rule_reward(completions, results, language=None, task_source=None, **kwargs) -> list:
    return _rule_scores(completions, language, task_source)


@register("rule_gate")
def rule_gate_reward(completions, results, language=None, task_source=None, exec_reward: str = "staged",
                     threshold: float = 1.0, fail: float = 0.0, **kwargs) -> list:
    rule = _rule_scores(completions, language, task_source)
    execution = get(exec_reward)(completions, results, **kwargs)
    return [(e if r >= threshold else fail) if e is not None else None for r, e in zip(rule, execution)]


@register("rule_sum")
def rule_sum_reward(completions, results, language=None, task_source=None, exec_reward: str = "staged",
                    weight: float = 0.2, **kwargs) -> list:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1] (got {weight})")
    rule = _rule_scores(completions, language, task_source)
    execution = get(exec_reward)(completions, results, **kwargs)
    return [weight * r + (1 - weight) * e if e is not None else None for r, e in zip(rule, execution)]
