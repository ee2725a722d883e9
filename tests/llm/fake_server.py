"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: scripted, recording.

    with FakeOpenAIServer(api_key="sk-test") as srv:
        srv.push(Reply("```python\\n...\\n```"), Status(429, retry_after=0.01), Sleep(2.0))
        model = OpenAIModel("fake-model", base_url=srv.base_url, api_key="sk-test")
        ...
        assert len(srv.requests) == 3

Each POST /v1/chat/completions (or /chat/completions) consumes the next queued action;
with the queue empty, `srv.default` answers (a `Reply`), or `srv.responder(body)` when
set (a callable returning an action: for tests that answer by prompt). Every request is
recorded (path, headers with lower-case names, parsed JSON body) before it is answered,
including rejected ones. Stdlib only (ThreadingHTTPServer in a daemon thread).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """A 200 chat completion. `texts` gives one choice each; one text is repeated for n."""

    texts: str | list[str] = "ok"
    delay: float = 0.0  # seconds to wait before answering
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # None: about len(prompt chars) / 4
    completion_tokens: int | None = None  # None: about len(reply chars) / 4, summed over choices
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    model: str | None = None  # None: echo the requested model
    usage: bool = True  # False: no usage object at all


@dataclass
class Status:
    """An HTTP error in OpenAI's error shape, e.g. Status(429, retry_after=0.01)."""

    code: int
    message: str = ""
    retry_after: float | str | None = None  # the Retry-After header
    err_type: str = ""
    err_code: str | None = None
    param: str | None = None


@dataclass
class Sleep:
    """Hold the request for `seconds` (to trigger client timeouts), then answer `then`."""

    seconds: float
    then: Any = None  # an action; None: a default Reply


@dataclass
class Garbage:
    """A body that is not the JSON the client expects."""

    body: bytes = b"<html>502 Bad Gateway</html> this is not json {"
    status: int = 200
    content_type: str = "application/json"


@dataclass
class Drop:
    """Close the connection without answering (a connection error)."""


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    time: float = field(default_factory=time.monotonic)


class FakeOpenAIServer:
    def __init__(self, api_key: str | None = None, default: Reply | None = None,
                 responder: Callable[[dict], Any] | None = None, supports_n: bool = True):
        self.api_key = api_key  # when set, requests without "Bearer <api_key>" get 401
        self.default = default or Reply()
        self.responder = responder
        self.supports_n = supports_n  # False: n > 1 gets a 400 about `n`
        self.requests: list[Recorded] = []
        self._queue: list[Any] = []
        self._lock = threading.Lock()
        self._inflight = 0
        self.max_inflight = 0  # the most requests handled at once
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting ----------------------------------------------------------------
    def push(self, *actions: Any) -> "FakeOpenAIServer":
        with self._lock:
            self._queue.extend(actions)
        return self

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.max_inflight = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def _next_action(self, body: dict) -> Any:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        return self.responder(body) if self.responder else self.default


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._json(404, _error("not found: only POST /v1/chat/completions is served", "invalid_request_error"))

    def do_POST(self) -> None:
        srv = self.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with srv._lock:
            srv.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            srv._inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv._inflight)
        try:
            self._serve(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass
        finally:
            with srv._lock:
                srv._inflight -= 1

    def _serve(self, body: Any) -> None:
        srv = self.owner
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, _error(f"unknown path {self.path}", "invalid_request_error"))
        if srv.api_key is not None and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
            return self._json(401, _error("Incorrect API key provided. You can find your API key at "
                                          "https://platform.openai.com/account/api-keys.",
                                          "invalid_request_error", "invalid_api_key"))
        if not isinstance(body, dict):
            return self._json(400, _error("We could not parse the JSON body of your request.", "invalid_request_error"))
        n = body.get("n") or 1
        if n > 1 and not srv.supports_n:
            return self._json(400, _error("Invalid value for 'n': only n=1 is supported by this server.",
                                          "invalid_request_error", "invalid_value", "n"))
        self._act(srv._next_action(body), body, n)

    def _act(self, action: Any, body: dict, n: int) -> None:
        if isinstance(action, Sleep):
            time.sleep(action.seconds)
            return self._act(action.then or self.owner.default, body, n)
        if isinstance(action, Status):
            headers = {} if action.retry_after is None else {"Retry-After": str(action.retry_after)}
            kind = action.err_type or ("rate_limit_exceeded" if action.code == 429 else
                                       "server_error" if action.code >= 500 else "invalid_request_error")
            return self._json(action.code, _error(action.message or f"scripted HTTP {action.code}", kind,
                                                  action.err_code, action.param), headers)
        if isinstance(action, Garbage):
            return self._send(action.status, action.body, action.content_type)
        if isinstance(action, Drop):
            self.close_connection = True
            self.connection.close()
            return None
        if isinstance(action, Reply):
            if action.delay:
                time.sleep(action.delay)
            return self._json(200, _completion(action, body, n))
        raise TypeError(f"unknown fake-server action {action!r}")

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _error(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _completion(r: Reply, body: dict, n: int) -> dict:
    texts = [r.texts] * n if isinstance(r.texts, str) else list(r.texts)
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
    out = {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": r.model or body.get("model", "fake-model"),
        "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r.finish_reason,
                     "logprobs": None} for i, t in enumerate(texts)],
    }
    if r.usage:
        prompt = r.prompt_tokens if r.prompt_tokens is not None else max(1, prompt_chars // 4)
        completion = r.completion_tokens if r.completion_tokens is not None else sum(
            max(1, len(t) // 4) for t in texts)
        usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion,
                       "total_tokens": prompt + completion}
        if r.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": r.reasoning_tokens}
        if r.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": r.cached_tokens}
        out["usage"] = usage
    return out
