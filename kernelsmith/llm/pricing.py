"""What a call cost: USD per million tokens, looked up by model-name prefix.

The built-in table is approximate list prices (mid-2025) and only a fallback: put real
prices in a JSON or TOML file and point KERNELSMITH_PRICES at it. Either format maps a
model-name prefix to its prices, at top level or under a "prices" table:

    {"gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10.0}}

    [prices."my-local-model"]
    input = 0
    output = 0

The longest matching prefix wins ("gpt-4o-mini" over "gpt-4o"); a provider prefix such as
"openai/gpt-4o" also matches "gpt-4o". A model no entry matches costs 0 with
price_known=False, so reports can say the cost is unknown rather than free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kernelsmith.llm.types import LLMError, Usage

PRICES_ENV = "KERNELSMITH_PRICES"


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M uncached prompt tokens
    output: float  # USD per 1M completion tokens (reasoning tokens included)
    cached_input: float | None = None  # USD per 1M cached prompt tokens; None: same as input


# Approximate USD list prices per 1M tokens (input, cached input, output); override them.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.0, 8.0, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.0, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o1": Price(15.0, 60.0, 7.50),
    "o3": Price(2.0, 8.0, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "deepseek-chat": Price(0.27, 1.10, 0.07),
    "deepseek-reasoner": Price(0.55, 2.19, 0.14),
}


class PriceTable:
    def __init__(self, prices: dict[str, Price] | None = None):
        self.prices = {k.lower(): v for k, v in (DEFAULT_PRICES if prices is None else prices).items()}

    def lookup(self, model: str) -> Price | None:
        name = (model or "").lower()
        for candidate in (name, name.rsplit("/", 1)[-1]):
            hits = [k for k in self.prices if candidate.startswith(k)]
            if hits:
                return self.prices[max(hits, key=len)]
        return None

    def cost(self, model: str, usage: Usage) -> tuple[float, bool]:
        """(USD, price_known) of one call."""
        p = self.lookup(model)
        if p is None:
            return 0.0, False
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = p.input if p.cached_input is None else p.cached_input
        usd = ((usage.prompt_tokens - cached) * p.input + cached * cached_rate
               + usage.completion_tokens * p.output) / 1e6
        return usd, True

    def merged(self, overrides: dict[str, Price]) -> "PriceTable":
        return PriceTable({**self.prices, **{k.lower(): v for k, v in overrides.items()}})

    @classmethod
    def load(cls, path: str | Path, base: "PriceTable | None" = None) -> "PriceTable":
        """The built-in table (or `base`) overridden by a JSON/TOML price file."""
        p = Path(path).expanduser()
        try:
            text = p.read_text()
        except OSError as exc:
            raise LLMError(f"cannot read the price file {p} ({exc}); fix {PRICES_ENV} or the path") from None
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else _toml(text)
        except ValueError as exc:
            raise LLMError(f"the price file {p} does not parse ({exc}); write JSON (.json) or TOML") from None
        if isinstance(data, dict) and isinstance(data.get("prices"), dict):
            data = data["prices"]
        if not isinstance(data, dict):
            raise LLMError(f"the price file {p} must map model prefixes to {{input, output, cached_input}}")
        table: dict[str, Price] = {}
        for name, entry in data.items():
            try:
                table[name] = Price(float(entry["input"]), float(entry["output"]),
                                    None if entry.get("cached_input") is None else float(entry["cached_input"]))
            except (TypeError, KeyError, ValueError, AttributeError):
                raise LLMError(f"price file {p}: entry {name!r} needs numbers `input` and `output` (USD per 1M "
                               f"tokens) and optionally `cached_input`; got {entry!r}") from None
        return (base or cls()).merged(table)

    @classmethod
    def from_env(cls) -> "PriceTable":
        path = os.environ.get(PRICES_ENV)
        return cls.load(path) if path else cls()


def _toml(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ValueError("TOML needs Python >= 3.11 or the tomli package; use a .json file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(str(exc)) from None
