"""The LLM side: model clients, recorded sessions and reply parsing (the prompts are
kernelsmith.prompts).

    types     Usage, Completion, Sampling, LLMError, the LLM protocol
    client    OpenAIModel (any OpenAI-compatible endpoint), make_model(spec, ...)
    endpoint  resolve_endpoint(base_url, api_key) -> Endpoint(base_url, api_key, model)
    pricing   PriceTable (USD per 1M tokens by model prefix; KERNELSMITH_PRICES overrides)
    replay    RecordingModel(inner, path), ReplayModel(path)
    scripted  ScriptedModel(replies) for tests and dry runs
    extract   extract_code(text), apply_diff(parent_code, text)

Only the types are imported here, so importing kernelsmith.llm stays cheap (no openai).
"""

from kernelsmith.llm.types import LLM, Completion, LLMError, Sampling, Usage

__all__ = ["LLM", "Completion", "LLMError", "Sampling", "Usage"]
