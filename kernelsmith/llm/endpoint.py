"""Where the model lives: base URL, API key and default model, from flags, env or a file.

Precedence, for each of the three: the explicit argument (command-line flag), then
KERNELSMITH_BASE_URL / OPENAI_BASE_URL, KERNELSMITH_API_KEY / OPENAI_API_KEY,
KERNELSMITH_MODEL, then `config.toml` in kernelsmith's home (~/.kernelsmith, or
$KERNELSMITH_HOME; as root with a private ~, /var/lib/kernelsmith, falling back to
~/.kernelsmith/config.toml), with keys base_url, api_key, model at top level or under [llm].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from kernelsmith.llm.types import LLMError

PLACEHOLDER_KEY = "none"  # local servers accept anything; the SDK insists on some key


class Endpoint(NamedTuple):
    base_url: str | None  # None: the SDK's default (api.openai.com)
    api_key: str
    model: str | None = None  # the configured default model, if any


def config_path() -> Path:
    """config.toml in kernelsmith's home; as root with the default home moved out of a
    private ~ (config.home), a ~/.kernelsmith/config.toml written before still counts."""
    from kernelsmith.config import home

    path = home() / "config.toml"
    legacy = Path.home() / ".kernelsmith" / "config.toml"
    if not path.is_file() and not os.environ.get("KERNELSMITH_HOME") and legacy.is_file():
        return legacy
    return path


def read_config(path: Path | None = None) -> dict:
    """The [llm] settings (or top-level keys) of the config file; {} when there is none."""
    p = path or config_path()
    if not p.is_file():
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None  # type: ignore[assignment]
    try:
        text = p.read_text()
        data = tomllib.loads(text) if tomllib else _simple_toml(text)
    except (OSError, ValueError) as exc:
        raise LLMError(f"cannot read the config file {p} ({exc}); fix it or delete it") from None
    section = data.get("llm") if isinstance(data.get("llm"), dict) else {}
    merged = {**{k: v for k, v in data.items() if not isinstance(v, dict)}, **section}
    return {k: str(v) for k, v in merged.items() if k in ("base_url", "api_key", "model") and v not in (None, "")}


def _simple_toml(text: str) -> dict:
    """key = "value" lines and [tables]: enough for this file without tomllib."""
    out: dict = {}
    table = out
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith(("'", '"')) else raw.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            table = out.setdefault(line[1:-1].strip(), {})
        elif "=" in line:
            k, v = (s.strip() for s in line.split("=", 1))
            table[k] = v.strip("\"'")
    return out


def _first(*values: str | None) -> str | None:
    return next((v.strip() for v in values if v and v.strip()), None)


def resolve_endpoint(base_url: str | None = None, api_key: str | None = None) -> Endpoint:
    env = os.environ
    url = _first(base_url, env.get("KERNELSMITH_BASE_URL"), env.get("OPENAI_BASE_URL"))
    key = _first(api_key, env.get("KERNELSMITH_API_KEY"), env.get("OPENAI_API_KEY"))
    model = _first(env.get("KERNELSMITH_MODEL"))
    if not (url and key and model):  # the file fills only what flags and env leave open
        cfg = read_config()
        url, key, model = url or cfg.get("base_url"), key or cfg.get("api_key"), model or cfg.get("model")
    if not url and not key:
        raise LLMError(
            "no LLM endpoint configured: set OPENAI_API_KEY (or KERNELSMITH_API_KEY) to use api.openai.com, or "
            "KERNELSMITH_BASE_URL (e.g. http://localhost:8000/v1) for a local OpenAI-compatible server; or pass "
            f"--base-url, or put base_url / api_key in {config_path()}")
    return Endpoint(url.rstrip("/") if url else None, key or PLACEHOLDER_KEY, model)
