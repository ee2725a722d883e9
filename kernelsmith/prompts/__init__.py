"""Every prompt in one place: the system prompt's templates per kernel language
(system.py), the sections prompts are built from (sections.py), and each search
strategy's messages (strategies.py).

    from kernelsmith.prompts import strategies
    messages = strategies.improve(task, ctx, parent)
"""

from kernelsmith.prompts.system import (  # noqa: F401
    BUILD, CANDIDATE, EXAMPLE, INTRO, REPLY_PARTS, RULES, SYSTEM_PROMPT, system_prompt,
)
from kernelsmith.prompts.sections import (  # noqa: F401
    FAST_LAYOUT_HINT, build_messages, clip, feedback_section, gpu_section, history_section, language_note,
    reply_format_section, result_summary, task_section,
)

__all__ = ["BUILD", "CANDIDATE", "EXAMPLE", "INTRO", "REPLY_PARTS", "RULES", "SYSTEM_PROMPT", "system_prompt",
           "FAST_LAYOUT_HINT", "build_messages", "clip", "feedback_section", "gpu_section", "history_section",
           "language_note", "reply_format_section", "result_summary", "task_section"]
