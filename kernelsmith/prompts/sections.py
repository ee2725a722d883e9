"""The sections a prompt is built from: the task, the GPU, a result's feedback, a history
of kernels with their speedups, the reply format.

    messages = build_messages(task_section(task), gpu_section(probe),
                              feedback_section(parent), reply_format_section(diff=False))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelsmith.prompts.system import REPLY_PARTS, SYSTEM_PROMPT, _language
from kernelsmith.results import EvalResult, Verdict

if TYPE_CHECKING:  # only for annotations: kernelsmith.search imports this package
    from kernelsmith.search.types import Candidate
    from kernelsmith.task import Task


def build_messages(*sections: str, system: str | None = None) -> list[dict[str, str]]:
    """System prompt plus one user message of the non-empty sections."""
    user = "\n\n".join(s.strip() for s in sections if s and s.strip())
    return [{"role": "system", "content": system or SYSTEM_PROMPT}, {"role": "user", "content": user}]


def clip(text: str, limit: int, keep: str = "both") -> str:
    """Shorten to about `limit` chars, keeping the head, the tail or both, with a marker."""
    text = text or ""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if keep == "head":
        return text[:limit] + f"\n... [{cut} chars cut]"
    if keep == "tail":
        return f"[{cut} chars cut] ...\n" + text[-limit:]
    half = limit // 2
    return text[:half] + f"\n... [{cut} chars cut] ...\n" + text[-(limit - half):]


def _fence(code: str, limit: int = 12000) -> str:
    return f"```python\n{clip(code.rstrip(), limit)}\n```"


def task_section(task: Task) -> str:
    return (f"## Task `{task.name}`\nThe reference PyTorch module, with its inputs:\n{_fence(task.source, 20000)}\n"
            "Write `ModelNew` computing the same thing with your own CUDA kernels, faster than PyTorch eager "
            "and torch.compile.")


def _num(x: float | None, unit: str, scale: float, digits: int = 1) -> str | None:
    return None if not x else f"{x / scale:.{digits}f} {unit}"


def gpu_section(gpu: dict | None) -> str:
    """From the evaluator's probe: {"system": {"gpu", "compute_capability"}, "ceilings": {...}} (or flat)."""
    if not gpu:
        return ""
    sysd = gpu.get("system") or gpu
    ceil = gpu.get("ceilings") or gpu
    name = sysd.get("gpu") or sysd.get("name") or "unknown GPU"
    cc = sysd.get("compute_capability") or ""
    head = f"{name}" + (f" (compute capability {cc}, sm_{cc.replace('.', '')})" if cc else "")
    facts = [f"{ceil['sms']} SMs" if ceil.get("sms") else None,
             _num(ceil.get("memory_bytes"), "GB memory", 1e9, 0),
             _num(ceil.get("l2_bytes"), "MB L2", 1e6, 0),
             (f"measured copy bandwidth {ceil['bandwidth'] / 1e12:.2f} TB/s" if ceil.get("bandwidth") else None),
             (f"dense bf16 matmul {ceil['peak_flops'] / 1e12:.0f} TFLOP/s (fp32 CUDA cores are far slower)"
              if ceil.get("peak_flops") else None)]
    facts = [f for f in facts if f]
    return f"## GPU\n{head}" + (": " + ", ".join(facts) + "." if facts else ".")


def _ms(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g} ms"


def _compile_log(log: str, limit: int = 3000) -> str:
    """The error lines of a compiler log with a little context, else its tail."""
    lines = (log or "").splitlines()
    hits = [i for i, ln in enumerate(lines) if "error" in ln.lower()]
    if not hits:
        return clip(log or "", limit, "tail")
    keep: list[int] = []
    for i in hits[:12]:
        keep += [j for j in range(max(0, i - 1), min(len(lines), i + 3)) if j not in keep]
    return clip("\n".join(lines[j] for j in sorted(keep)), limit, "head")


FAST_LAYOUT_HINT = ("Build layout: keep cuda_sources to kernels and raw-pointer launchers (no torch headers) "
                    "and the torch::Tensor wrappers in cpp_sources; such a build takes seconds, and its "
                    "errors point at your own code rather than at torch's headers.")


def result_summary(r: EvalResult) -> str:
    """What happened to a candidate, in the terms a model can act on."""
    v = r.verdict
    out = [f"Verdict: {v.value}" + (f" ({r.error.value})" if r.error.value != "none" else "")]
    if r.static and not r.static.ok:
        out.append("Static screen rejected it:\n" + clip(r.static.message, 2500))
    elif r.compile and not r.compile.ok:
        out.append(f"Compilation failed ({r.compile.backend or 'build'}): {r.compile.message}".rstrip(": "))
        if r.compile.log:
            out.append("Compiler output:\n```\n" + _compile_log(r.compile.log) + "\n```")
        if "load_inline" in (r.compile.backend or ""):
            out.append(FAST_LAYOUT_HINT)
    elif v is Verdict.INCORRECT and r.check:
        c = r.check
        out.append(f"Wrong output on {c.trials - c.trials_passed} of {c.trials} trials" if c.trials else "Wrong output")
        if c.detail or c.message:
            out.append(clip(c.detail or c.message, 1500))
        errs = [f"max abs error {c.max_abs_error:.3g}" if c.max_abs_error is not None else "",
                f"relative error {c.rel_error:.3g}" if c.rel_error is not None else "",
                f"tolerance atol={c.atol:g} rtol={c.rtol:g}" if c.atol or c.rtol else ""]
        if any(errs):
            out.append(", ".join(e for e in errs if e) + ".")
    elif v is not Verdict.CORRECT:
        msg = r.message or (r.check.message if r.check else "")
        if msg:
            out.append(clip(msg, 2000))
        if r.output.strip():
            out.append("Output tail:\n```\n" + clip(r.output.strip(), 1500, "tail") + "\n```")
    if v is Verdict.CORRECT and r.timing:
        t = r.timing
        cand = t.candidate.median_ms if t.candidate else None
        line = f"Runtime {_ms(cand)}"
        if t.eager:
            line += f"; PyTorch eager {_ms(t.eager.median_ms)}"
        if t.speedup_eager is not None:
            ci = f" (95% CI {t.speedup_eager_ci[0]:.2f}-{t.speedup_eager_ci[1]:.2f})" if t.speedup_eager_ci else ""
            line += f"; speedup vs eager {t.speedup_eager:.2f}x{ci}"
        if t.speedup_compile is not None:
            line += f"; vs torch.compile {t.speedup_compile:.2f}x ({_ms(t.compiled_ms)})"
        if t.other_session_speedup is not None:
            line += f"; a second, independent evaluation measured {t.other_session_speedup:.2f}x (the lower is kept)"
        out.append(line + ".")
        if t.candidate_launch_ms and t.candidate.median_ms and t.candidate_launch_ms > 0.5 * t.candidate.median_ms:
            b2b = (f"; with calls back to back that is {t.speedup_back_to_back:.2f}x, not {t.speedup_eager:.2f}x"
                   if t.speedup_back_to_back is not None and t.speedup_eager
                   and t.speedup_back_to_back < 0.99 * t.speedup_eager else "")
            out.append(f"Launching it takes {_ms(t.candidate_launch_ms)} of host time per call (PyTorch eager: "
                       f"{_ms(t.eager_launch_ms)}), paid by every caller{b2b}; fewer launches and less Python per "
                       f"call (for example no per-call DLPack conversions or stream objects) cut it.")
        b = t.bound
        if b and b.fraction is not None:
            kind = "memory" if b.bandwidth and b.peak_flops and b.bytes / b.bandwidth >= b.flops / b.peak_flops \
                else "compute"
            out.append(f"It reaches {b.fraction:.0%} of the physical floor (100% = the hardware limit; floor "
                       f"{_ms(b.floor_ms)}, {kind}-bound: {b.bytes / 1e6:.3g} MB moved, {b.flops / 1e9:.3g} GFLOP).")
    if r.profile:
        out.append("Nsight Compute profile:\n" + clip(r.profile, 1500))
    if r.sanitizer:
        out.append("compute-sanitizer: " + clip(r.sanitizer, 600))
    warns = (r.static.warnings if r.static else []) + list(r.warnings)
    if warns:
        out.append("Warnings:\n" + "\n".join("- " + clip(w, 400) for w in warns[:4]))
    return "\n".join(out)


def language_note(code: str, language: str | None) -> str:
    """A line saying that `code` is written in another language than the requested one (""
    when it is not, when any language was asked for, or when it imports no kernel language)."""
    from kernelsmith.languages import ANY, LANGUAGES, accepts, detect

    lang = _language(language)
    found = detect(code or "")
    if lang == ANY or not found or accepts(lang, found):  # no kernel language at all: the static screen says so
        return ""
    want = LANGUAGES[lang].label if lang != "cuda" else "CUDA C++ (load_inline or CuPy RawKernel)"
    return (f"Language: this kernel is written in {LANGUAGES[found].label}, but this search asks for {want}; "
            f"it was evaluated all the same, but write the next one in {want}.")


def feedback_section(candidate: Candidate, include_code: bool = True, title: str = "Your previous attempt",
                     language: str | None = None) -> str:
    """A candidate (its code, unless include_code is False) and what happened to it; with a
    `language`, a note when the code is written in another one."""
    parts = [f"## {title}"]
    if include_code and candidate.code:
        parts.append(_fence(candidate.code))
    note = language_note(candidate.code, language)
    if note:
        parts.append(note)
    if candidate.format_error:
        parts.append(f"Format error: {candidate.format_error}")
    elif candidate.result is None:
        parts.append("Not evaluated.")
    else:
        parts.append(result_summary(candidate.result))
    return "\n".join(parts)


def _score(c: Candidate) -> tuple:
    r = c.result
    if r is not None and r.correct and r.speedup is not None:
        return (2, r.speedup)
    return (1 if r is not None and r.verdict is Verdict.INCORRECT else 0, 0.0)


def history_section(cands: list[Candidate], max_items: int = 4, code_chars: int = 6000,
                    language: str | None = None) -> str:
    """Earlier kernels, best first, with what they measured: learn from what worked and what did not.
    With language "any", each kernel's heading names its language; with another, a kernel in a
    different language is marked as such."""
    from kernelsmith.languages import ANY, detect

    lang = _language(language)
    seen, items = set(), []
    for c in sorted(cands, key=_score, reverse=True):
        if c.code and c.code not in seen:
            seen.add(c.code)
            items.append(c)
    if not items:
        return ""
    parts = ["## Earlier kernels for this task (best first)"]
    for k, c in enumerate(items[:max_items], 1):
        r = c.result
        if c.format_error:
            label = "format error"
        elif r is None:
            label = "not evaluated"
        elif r.correct and r.speedup is not None:
            t = r.timing
            label = f"correct, {r.speedup:.2f}x vs eager ({_ms(t.candidate.median_ms if t and t.candidate else None)})"
            if t and t.bound and t.bound.fraction is not None:
                label += f", {t.bound.fraction:.0%} of the floor"
        else:
            label = r.verdict.value + (f" ({r.error.value})" if r.error.value != "none" else "")
            why = (r.check.detail if r.check and r.check.detail else "") or r.message
            if why:
                label += ": " + clip(why.splitlines()[0], 160, "head").replace("\n", " ")
        found = detect(c.code)
        if lang == ANY and found:
            label = f"{found}, {label}"
        elif language_note(c.code, lang):
            label += f" [written in {found}, not the requested {lang}]"
        parts.append(f"### Kernel {k}: {label}\n{_fence(c.code, code_chars)}")
    return "\n".join(parts)


def reply_format_section(diff: bool = False, language: str | None = None) -> str:
    """How to reply: a whole file (naming the language's kernel build) or SEARCH/REPLACE edits."""
    lang = _language(language)
    if diff:
        return ("## Reply format\nFirst a short plan (a few sentences). Then edit the current code with one or more "
                "blocks of exactly this form:\n"
                "<<<<<<< SEARCH\n(lines copied verbatim from the current code)\n=======\n(the new lines)\n"
                ">>>>>>> REPLACE\n"
                "Each SEARCH part must match the current code exactly, including indentation; keep SEARCH parts "
                "short but unique. For a rewrite, reply instead with the complete file in one ```python block.")
    return ("## Reply format\nFirst a short plan (a few sentences). Then the complete candidate file in ONE "
            f"```python block: imports, {REPLY_PARTS[lang]} and "
            "`class ModelNew`. No other code blocks, no placeholders, nothing left out.")
