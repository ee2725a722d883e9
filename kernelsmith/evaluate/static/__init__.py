"""Static screen: the cheap first stage of the cascade, before anything compiles.

`screen(code, task_source)` parses the candidate with `ast`, resolves import aliases
(`F.gelu` -> `torch.nn.functional.gelu`) and scans the CUDA/C++ strings it embeds.
Rules are data: `RULES` holds (id, severity, why, fix, check). Findings come from the
tables (imports, resolved names, builtins, attributes, CUDA regexes), gathered in
one pass, plus each rule's own check; every finding is `(line, what)`.

Layout: vocab (the name/regex tables), context (`Ctx`: the shared AST walk, alias
resolution and table findings), rules (`Rule`, `RULES` and the rule checks); this package's
`__init__` turns their findings into a `StaticResult` and re-exports their names.
"""

from __future__ import annotations

import ast
import time

from kernelsmith.evaluate.static.context import Ctx
from kernelsmith.evaluate.static.rules import (
    RULES, Finding, Rule, dynamic_code, fallback, hardcoded_shape, harness_tampering, no_kernel,
    precision, print_in_forward, rule, streams_threads, suspicious_import, system_access,
    tensor_glue, torch_compute,
)
from kernelsmith.evaluate.static.vocab import (
    ATTR_RULES, BUILDERS, C_COMMENT, C_INT, C_STRING, COMPUTE, COMPUTE_NS, CREATORS, CUDA_RULES, DELEGATE_NS,
    F_OK, FILE_FUNCS, FUNC_NS, GLUE, HARNESS_NAME, IMPORT_RULES, MAIN_GUARDS, NAME_RULES, NN_OK, OS_OK,
    QUIET_IMPORTS, REF_RULES, TAMPER_CALLS, TAMPER_NS, TENSOR_METHODS, compute_kind,
)
from kernelsmith.results import ErrorClass, StaticResult

__all__ = [
    "screen", "Ctx", "Finding", "Rule", "RULES", "rule", "compute_kind",
    "torch_compute", "fallback", "streams_threads", "harness_tampering",
    "dynamic_code", "system_access", "no_kernel", "precision", "hardcoded_shape", "tensor_glue",
    "print_in_forward", "suspicious_import",
    "ATTR_RULES", "BUILDERS", "C_COMMENT", "C_INT", "C_STRING", "COMPUTE", "COMPUTE_NS", "CREATORS", "CUDA_RULES",
    "DELEGATE_NS", "F_OK", "FILE_FUNCS", "FUNC_NS", "GLUE", "HARNESS_NAME", "IMPORT_RULES", "MAIN_GUARDS",
    "NAME_RULES", "NN_OK", "OS_OK", "QUIET_IMPORTS", "REF_RULES", "TAMPER_CALLS", "TAMPER_NS", "TENSOR_METHODS",
]


def _format(r: Rule, hits: list[tuple[int, str]]) -> str:
    where = ", ".join(f"{what} at line {line}" for line, what in hits[:4])
    more = f" (and {len(hits) - 4} more)" if len(hits) > 4 else ""
    return f"{r.id}: {where}{more}; {r.why}; {r.fix}"


def _format_problem(ctx: Ctx) -> str | None:
    cls = next((n for n, *_ in ctx.nodes(ast.ClassDef) if n.name == "ModelNew"), None)
    if cls is None and not any(getattr(n, "id", None) == "ModelNew" and isinstance(n.ctx, ast.Store)
                               for n, *_ in ctx.nodes(ast.Name)) and "ModelNew" not in ctx.aliases:
        return "no `class ModelNew` found; define `class ModelNew(nn.Module)` with a forward() method"
    if cls and all(ast.unparse(b).endswith("Module") for b in cls.bases) and not any(
            getattr(f, "name", "") == "forward" for f in cls.body):
        return "`class ModelNew` has no forward() method; define forward(self, *inputs)"
    return None


def screen(code: str, task_source: str | None = None) -> StaticResult:
    """Screen a candidate's source before compiling it. Never raises."""
    t0 = time.perf_counter()

    def done(ok, error=ErrorClass.NONE, message="", warnings=()):
        return StaticResult(ok, time.perf_counter() - t0, error, message, list(warnings))

    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return done(False, ErrorClass.SYNTAX, f"syntax error at line {e.lineno}: {e.msg}; fix the Python syntax")
    except (ValueError, RecursionError, MemoryError) as e:
        return done(False, ErrorClass.SYNTAX, f"cannot parse the file ({type(e).__name__}: {e}); submit plain Python")
    try:
        ctx = Ctx(tree, task_source)
        problem = _format_problem(ctx)
        rejects, warnings = {}, []
        for r in RULES:
            if (hits := sorted(set(ctx.found.get(r.id, [])) | set(r.check(ctx)))):
                if r.severity == "reject":
                    rejects[r.id] = _format(r, hits)
                else:
                    warnings.append(_format(r, hits))
    except RecursionError:
        return done(False, ErrorClass.FORMAT, "the code is nested too deeply to screen; simplify its expressions")
    if problem and set(rejects) <= {"no-kernel"}:  # a missing ModelNew says more than a missing kernel
        return done(False, ErrorClass.FORMAT, problem, warnings)
    if rejects:
        lines = list(rejects.values()) + ([f"format: {problem}"] if problem else [])
        return done(False, ErrorClass.STATIC_RULE, "\n".join(lines), warnings)
    return done(True, warnings=warnings)
