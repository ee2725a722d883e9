"""The LLM side's shared types: what a model call takes and returns.

Every model (the real OpenAI-compatible client, the replay model, test fakes) follows
the `LLM` protocol, so strategies never know which one they talk to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # when the server reports them
    cached_tokens: int = 0  # prompt tokens served from the provider's cache

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.reasoning_tokens + other.reasoning_tokens, self.cached_tokens + other.cached_tokens)


@dataclass
class Completion:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)  # of the whole call (shared by its n choices)
    cost_usd: float = 0.0  # of the whole call, from the price table
    latency_s: float = 0.0
    call_id: str = ""  # provider's response id, or a replay reference
    finish_reason: str = ""
    replayed: bool = False  # came from a recorded session, not a live endpoint
    price_known: bool = True  # False: the price table has no entry for the model, so cost_usd is 0


@dataclass
class Sampling:
    """Explicit sampling parameters; None leaves the server's default."""

    temperature: float | None = 0.8
    top_p: float | None = None
    max_tokens: int | None = 8192
    seed: int | None = None


class LLMError(RuntimeError):
    """A model call that failed for good (after retries): the message says what to fix."""


class LLM(Protocol):
    name: str  # e.g. "gpt-5.1" or "replay:session.jsonl"

    def complete(self, messages: list[dict[str, str]], n: int = 1,
                 sampling: Sampling | None = None) -> list[Completion]:
        """n completions of one prompt. Raises LLMError on a permanent failure."""
        ...
