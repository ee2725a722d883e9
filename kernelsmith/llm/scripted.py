"""Canned replies, for tests and dry runs: `ScriptedModel(["reply 1", "reply 2"])`.

Replies come in order and cycle; `replies` may instead be a function
(messages, call_index) -> text. `make_model("scripted:FILE")` reads FILE: a JSON list of
strings, or {"replies": [...]}. Every prompt is kept in `calls` for assertions.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable

from kernelsmith.llm.types import Completion, LLMError, Sampling, Usage


class ScriptedModel:
    def __init__(self, replies: list[str] | Callable[[list[dict], int], str], name: str = "scripted",
                 cycle: bool = True):
        if not callable(replies) and not replies:
            raise LLMError("a scripted model needs at least one reply")
        self.replies = replies
        self.name = name
        self.cycle = cycle
        self.calls: list[list[dict]] = []
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> "ScriptedModel":
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LLMError(f"cannot read scripted replies from {p} ({exc}); write a JSON list of strings") from None
        replies = data.get("replies") if isinstance(data, dict) else data
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise LLMError(f"{p} must hold a JSON list of reply strings (or {{\"replies\": [...]}})")
        return cls(replies, name=f"scripted:{p}")

    def complete(self, messages: list[dict[str, str]], n: int = 1,
                 sampling: Sampling | None = None) -> list[Completion]:
        out = []
        with self._lock:
            self.calls.append(messages)
            for _ in range(n):
                i = self._count
                if callable(self.replies):
                    text = self.replies(messages, i)
                elif i < len(self.replies) or self.cycle:
                    text = self.replies[i % len(self.replies)]
                else:
                    raise LLMError(f"{self.name}: all {len(self.replies)} scripted replies were used")
                self._count += 1
                prompt = sum(len(m.get("content", "")) for m in messages) // 4
                out.append(Completion(text=text, model=self.name, usage=Usage(prompt, len(text) // 4),
                                      call_id=f"{self.name}#{i}", finish_reason="stop"))
        return out
