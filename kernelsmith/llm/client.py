"""The live model: any OpenAI-compatible chat-completions endpoint, through the openai SDK.

`OpenAIModel.complete` is thread-safe: a semaphore bounds the requests in flight, so the
search loop may call it from a thread pool. Retries are ours (the SDK's are off) so each
one is logged: 408/409/429/5xx, timeouts, dropped connections and malformed bodies are
retried with exponential backoff and jitter (Retry-After honoured); 400/401/403/404 and an
exhausted quota fail at once with an LLMError saying what to fix.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from kernelsmith.llm.endpoint import resolve_endpoint
from kernelsmith.llm.pricing import PriceTable
from kernelsmith.llm.types import LLM, Completion, LLMError, Sampling, Usage

log = logging.getLogger("kernelsmith.llm")

MAX_COMPLETION_CHARS = 2_000_000  # longer replies are cut here, finish_reason "length"
RETRYABLE_STATUS = {408, 409, 425, 429}  # and every 5xx
_N_PARAM = re.compile(r"""['"`]n['"`]|\bn\s*(?:must|should|has to|is not|>|=|<)|\bparameter n\b|number of (?:choices|completions)""",
                      re.I)


class _Retry(Exception):
    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.why, self.retry_after = why, retry_after


class _NUnsupported(Exception):
    pass


class OpenAIModel:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 prices: PriceTable | None = None, max_concurrency: int = 8, timeout_s: float = 600,
                 max_retries: int = 5, backoff_s: float = 1.0, backoff_max_s: float = 60.0,
                 max_chars: int = MAX_COMPLETION_CHARS, extra_body: dict | None = None):
        if not model:
            raise LLMError("no model name given: pass --model (e.g. gpt-5) or set `model` in the config file")
        ep = resolve_endpoint(base_url, api_key)
        self.name = self.model = model
        self.base_url = ep.base_url
        self.where = ep.base_url or "api.openai.com"
        self.prices = prices if prices is not None else PriceTable.from_env()
        self.price_known = self.prices.lookup(model) is not None
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.backoff_max_s, self.max_chars = backoff_s, backoff_max_s, max_chars
        self.max_concurrency = max(1, max_concurrency)
        self.extra_body = dict(extra_body or {})
        self._client = openai.OpenAI(api_key=ep.api_key, base_url=ep.base_url, max_retries=0, timeout=timeout_s)
        self._sem = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self.supports_n: bool | None = None  # learned: does the server honour n > 1?
        self._renamed: dict[str, str] = {}  # learned: max_tokens -> max_completion_tokens
        self._dropped: set[str] = set()  # learned: sampling parameters this model refuses
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model!r}, base_url={self.where!r})"

    # --- the LLM protocol ----------------------------------------------------------
    def complete(self, messages: list[dict[str, str]], n: int = 1,
                 sampling: Sampling | None = None) -> list[Completion]:
        s = sampling or Sampling()
        if n <= 0:
            return []
        if n == 1 or self.supports_n is False:
            return self._parallel(messages, n, s)
        try:
            out = self._call(messages, n, s)
        except _NUnsupported:
            with self._lock:
                if self.supports_n is not False:
                    log.info("%s at %s refuses n=%d; sending %d parallel requests instead", self.model, self.where, n, n)
                self.supports_n = False
            return self._parallel(messages, n, s)
        if len(out) > 1:
            self.supports_n = True
        if len(out) < n:  # the server silently ignored n: ask for the rest one by one
            out += self._parallel(messages, n - len(out), s, first=len(out))
        return out[:n]

    def _parallel(self, messages, k: int, s: Sampling, first: int = 0) -> list[Completion]:
        def one(i: int) -> list[Completion]:
            seeded = s if s.seed is None else replace(s, seed=s.seed + i)  # same seed, same text
            return self._call(messages, 1, seeded)

        if k == 1:
            return one(first)
        with ThreadPoolExecutor(max_workers=min(k, self.max_concurrency), thread_name_prefix="llm") as pool:
            futures = [pool.submit(one, first + i) for i in range(k)]
            results, errors = [], []
            for f in futures:
                try:
                    results += f.result()
                except LLMError as exc:
                    errors.append(exc)
        if errors and not results:
            raise errors[0]
        if errors:
            log.warning("%d of %d requests failed for good; returning %d completions (%s)",
                        len(errors), k, len(results), errors[0])
        return results

    # --- one request, with retries ----------------------------------------------------
    def _params(self, messages, n: int, s: Sampling) -> dict[str, Any]:
        p: dict[str, Any] = {"model": self.model, "messages": messages}
        for key, value in (("temperature", s.temperature), ("top_p", s.top_p),
                           ("max_tokens", s.max_tokens), ("seed", s.seed)):
            if value is not None and key not in self._dropped:
                p[self._renamed.get(key, key)] = value
        if n > 1:
            p["n"] = n
        if self.extra_body:
            p["extra_body"] = self.extra_body
        return p

    def _call(self, messages, n: int, s: Sampling) -> list[Completion]:
        t0 = time.monotonic()
        attempt, adjustments = 0, 0
        while True:
            params = self._params(messages, n, s)
            try:
                with self._sem:
                    with self._lock:
                        self.stats["requests"] += 1
                    resp = self._client.chat.completions.create(**params)
                return self._convert(resp, t0)
            except openai.APIStatusError as exc:
                try:
                    retry = self._classify(exc, params)
                except LLMError:
                    with self._lock:
                        self.stats["failures"] += 1
                    raise
                if retry is None:  # a parameter was adjusted: resend at once
                    adjustments += 1
                    if adjustments > 4:
                        raise LLMError(f"{self.model} at {self.where} keeps rejecting the request: "
                                       f"{_message(exc)}") from None
                    continue
            except openai.APITimeoutError:
                retry = _Retry(f"no reply within {self.timeout_s:g} s")
            except openai.APIConnectionError as exc:
                retry = _Retry(f"connection error: {exc.__cause__ or exc}")
            except _Retry as exc:
                retry = exc
            except (ValueError, openai.APIResponseValidationError) as exc:  # a body that is not JSON
                retry = _Retry(f"malformed response ({type(exc).__name__}: {str(exc)[:200]})")
            if attempt >= self.max_retries:
                with self._lock:
                    self.stats["failures"] += 1
                raise LLMError(f"{self.model} at {self.where}: gave up after {attempt + 1} attempts; last error: "
                               f"{retry.why}. The endpoint is down or overloaded: try again later, lower the "
                               "concurrency, or raise max_retries")
            delay = self._delay(attempt, retry.retry_after)
            attempt += 1
            with self._lock:
                self.stats["retries"] += 1
            log.warning("%s: %s; retry %d/%d in %.2f s", self.model, retry.why, attempt, self.max_retries, delay)
            time.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_max_s, retry_after) * (1 + 0.1 * random.random())
        return min(self.backoff_max_s, self.backoff_s * 2 ** attempt) * (0.5 + 0.5 * random.random())

    def _classify(self, exc: openai.APIStatusError, params: dict) -> _Retry | None:
        """A _Retry for transient errors, None after adjusting a refused parameter, else raise."""
        code, msg = exc.status_code, _message(exc)
        param = (exc.body or {}).get("param") if isinstance(exc.body, dict) else None
        err_code = str(getattr(exc, "code", "") or "")
        if code == 429 and "quota" in (err_code + msg).lower() and "rate" not in err_code.lower():
            raise LLMError(f"the account behind the API key is out of quota at {self.where} ({msg}): "
                           "add credit or use another key") from None
        if code in RETRYABLE_STATUS or code >= 500:
            return _Retry(f"HTTP {code}: {msg[:200]}", _retry_after(exc.response))
        if code == 400 and self._adjust(params, param, msg):
            return None
        if code == 401:
            raise LLMError(f"the API key was rejected by {self.where} (HTTP 401: {msg}): set OPENAI_API_KEY or "
                           "KERNELSMITH_API_KEY (or api_key in the config file) to a valid key for this endpoint") from None
        if code == 403:
            raise LLMError(f"access denied by {self.where} (HTTP 403: {msg}): this key may not use model "
                           f"{self.model!r} (or this project/region); use another model or key") from None
        if code == 404:
            raise LLMError(f"model not found: {self.model!r} at {self.where} (HTTP 404: {msg}); pass a model "
                           "this endpoint serves (--model) and check that the base URL ends in /v1") from None
        hint = "; shorten the prompt or lower max_tokens" if re.search(r"context|too long|maximum", msg, re.I) else ""
        raise LLMError(f"{self.where} rejected the request for {self.model!r} (HTTP {code}: {msg}){hint}") from None

    def _adjust(self, params: dict, param: str | None, msg: str) -> bool:
        """Learn from a 400 about one parameter: n (fall back), max_tokens (rename), sampling (drop)."""
        low = msg.lower()
        if params.get("n", 1) > 1 and (param == "n" or _N_PARAM.search(msg)):
            raise _NUnsupported()
        if "max_tokens" in params and "max_completion_tokens" in low:
            with self._lock:
                self._renamed["max_tokens"] = "max_completion_tokens"
            log.info("%s wants max_completion_tokens instead of max_tokens", self.model)
            return True
        for key in ("temperature", "top_p", "seed"):
            if key in params and (param == key or re.search(rf"['\"`]?{key}['\"`]?", low)) and \
                    re.search(r"unsupported|not supported|does not support|only the default", low):
                with self._lock:
                    self._dropped.add(key)
                log.warning("%s refuses `%s`; sending requests without it (%s)", self.model, key, msg[:200])
                return True
        return False

    def _convert(self, resp: Any, t0: float) -> list[Completion]:
        if not isinstance(resp, ChatCompletion) or not resp.choices:
            raise _Retry(f"malformed response: not a chat completion with choices ({str(resp)[:120]!r})")
        usage = _usage(resp.usage)
        cost, known = self.prices.cost(self.model, usage)
        if not known and resp.model:
            cost, known = self.prices.cost(resp.model, usage)
        latency = time.monotonic() - t0
        out = []
        for ch in sorted(resp.choices, key=lambda c: c.index or 0):
            text = (ch.message.content if ch.message else None) or ""
            finish = ch.finish_reason or ""
            if len(text) > self.max_chars:
                log.warning("%s: a %d-character reply was cut to %d", self.model, len(text), self.max_chars)
                text, finish = text[:self.max_chars], "length"
            out.append(Completion(text=text, model=resp.model or self.model, usage=usage, cost_usd=cost,
                                  latency_s=latency, call_id=resp.id or "", finish_reason=finish,
                                  price_known=known))
        return out


def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    details = getattr(u, "completion_tokens_details", None)
    prompt_details = getattr(u, "prompt_tokens_details", None)
    return Usage(prompt_tokens=u.prompt_tokens or 0, completion_tokens=u.completion_tokens or 0,
                 reasoning_tokens=(getattr(details, "reasoning_tokens", None) or 0) if details else 0,
                 cached_tokens=(getattr(prompt_details, "cached_tokens", None) or 0) if prompt_details else 0)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return str(exc.message or exc)


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def make_model(spec: str | None, base_url: str | None = None, api_key: str | None = None,
               record: str | None = None, **kwargs: Any) -> LLM:
    """'replay:FILE' (a recorded session), 'scripted:FILE' (canned replies, for tests) or a
    model name for the live endpoint (an empty spec takes `model` from the config file).
    `record=PATH` wraps the model so every call is appended to PATH (replayable later)."""
    from kernelsmith.llm.replay import RecordingModel, ReplayModel
    from kernelsmith.llm.scripted import ScriptedModel

    spec = (spec or "").strip()
    model: LLM
    if spec.startswith("replay:"):
        model = ReplayModel(spec[len("replay:"):])
    elif spec.startswith("scripted:"):
        model = ScriptedModel.from_file(spec[len("scripted:"):])
    else:
        model = OpenAIModel(spec or resolve_endpoint(base_url, api_key).model or "", base_url, api_key, **kwargs)
    return RecordingModel(model, record) if record else model
