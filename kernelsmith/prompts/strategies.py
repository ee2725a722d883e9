"""The prompts of every strategy, assembled from the shared sections (sections.py) and
the language's system prompt (system.py).

Strategies differ only in what they show (a parent with its feedback, a history of kernels
with their speedups, inspirations) and what they ask; the wording of the task, the GPU,
the feedback and the reply format lives in one place for all of them, and every prompt is
in the context's kernel language (`ctx.language`: its system prompt, reply format, and a
note on any kernel written in another language).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelsmith.prompts import sections as sec
from kernelsmith.prompts.system import system_prompt

if TYPE_CHECKING:  # only for annotations: kernelsmith.search imports this package
    from kernelsmith.search.types import Candidate


def _lang(ctx) -> str:
    return getattr(ctx, "language", None) or "cuda"


def _messages(ctx, *parts: str) -> list[dict[str, str]]:
    """The language's system prompt plus the sections."""
    return sec.build_messages(*parts, system=system_prompt(_lang(ctx)))


def _head(task, ctx) -> list[str]:
    return [sec.task_section(task), sec.gpu_section(ctx.gpu)]


def _reply(ctx, mode: str) -> str:
    return sec.reply_format_section(diff=mode == "diff", language=_lang(ctx))


def fresh(task, ctx) -> list[dict[str, str]]:
    """Write a kernel for the task from scratch."""
    return _messages(ctx, *_head(task, ctx), _reply(ctx, "full"))


def improve(task, ctx, parent: Candidate, last: Candidate | None = None, mode: str = "full") -> list[dict[str, str]]:
    """Refinement: the current kernel with its feedback (compile log, mismatch, speedup and
    fraction of the floor), plus the latest attempt when it did worse; asks for a better one."""
    parts = _head(task, ctx)
    parts.append(sec.feedback_section(parent, title="Your current kernel" if parent.code
                                    else "Your previous reply could not be used", language=_lang(ctx)))
    if last is not None:
        parts.append(sec.feedback_section(last, title="Your latest attempt, derived from it, did worse",
                                        language=_lang(ctx)))
    parts.append("## What to do\nFind what limits the current kernel (the feedback above says where it stands), "
                 "fix any error first, then write an improved, faster version that stays correct."
                 + (" Start from the current kernel and avoid what went wrong in the latest attempt."
                    if last is not None else ""))
    parts.append(_reply(ctx, mode))
    return _messages(ctx, *parts)


def contrastive(task, ctx, history: list[Candidate]) -> list[dict[str, str]]:
    """Several kernels with their measured speedups: analyse, then beat them all."""
    parts = _head(task, ctx)
    parts.append(sec.history_section(history, max_items=len(history), language=_lang(ctx)))
    parts.append("## What to do\nFirst, analyse the kernels above: compare the faster ones with the slower ones "
                 "and say which techniques make them faster and why (memory access, parallelism, fusion, "
                 "arithmetic), and why the failed ones failed. Then, using that analysis, write a new kernel "
                 "that is correct and faster than all of them.")
    parts.append(_reply(ctx, "full"))
    return _messages(ctx, *parts)


def evolve(task, ctx, parent: Candidate, inspirations: list[Candidate], mode: str = "diff") -> list[dict[str, str]]:
    """Mutate the parent (edits or a rewrite), with other elites as inspiration."""
    parts = _head(task, ctx)
    parts.append(sec.feedback_section(parent, title="The kernel to improve", language=_lang(ctx)))
    if inspirations:
        parts.append(sec.history_section(inspirations, max_items=len(inspirations), language=_lang(ctx)))
    how = "edit it with SEARCH/REPLACE blocks" if mode == "diff" else "rewrite it in full"
    parts.append(f"## What to do\nImprove the kernel above: {how}. Borrow ideas from the earlier kernels "
                 "where they help; keep it correct and make it faster.")
    parts.append(_reply(ctx, mode))
    return _messages(ctx, *parts)
