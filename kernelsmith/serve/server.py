"""The HTTP face of the reward service (stdlib ThreadingHTTPServer: one thread per connection).

Routes (JSON in, JSON out; every error is {"error": message} with a 4xx/5xx status):
  GET  /healthz              no auth: {"ok", "gpus", "version", "tasks"}
  GET  /v1/queue             depth per GPU, jobs by status, cache size, evaluations so far
  GET  /v1/tasks             the known tasks: [{"name", "hash"}]
  POST /v1/score             {"items": [{"task", "completion" | "code"}], "reward"?, "reward_kwargs"?, "wait"?}
  GET  /v1/jobs/{id}         {"job_id", "status": queued|running|done|failed, "results" when done}
  POST /get_reward           OpenRLHF's remote reward model protocol: {"query", "prompts", "labels"} -> {"rewards"}
Auth: `Authorization: Bearer TOKEN` on everything but /healthz. OpenRLHF's client sends no
headers, so /get_reward also takes the token as `?token=` (the server never logs query strings).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from urllib.parse import parse_qs, urlsplit

from kernelsmith.serve.service import Item, RequestError, ScoreService

log = logging.getLogger(__name__)


def version() -> str:
    try:
        return metadata.version("kernelsmith")
    except metadata.PackageNotFoundError:
        return "unknown"


class RewardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], service: ScoreService, token: str | None,
                 max_request_bytes: int = 8 << 20, max_items: int = 1024, wait_timeout: float | None = None):
        self.service = service
        self.token = token
        self.max_request_bytes = max_request_bytes
        self.max_items = max_items
        self.wait_timeout = wait_timeout
        super().__init__(addr, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="ks-serve-http",
                             daemon=True)
        t.start()
        return t


class HTTPError(Exception):
    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class Handler(BaseHTTPRequestHandler):
    server: RewardServer
    protocol_version = "HTTP/1.1"
    server_version = "kernelsmith-serve"

    # -- plumbing ----------------------------------------------------------------------
    def log_message(self, fmt: str, *args) -> None:  # never log query strings (tokens)
        log.info("%s %s", self.address_string(), fmt % args if "?" not in self.path else
                 (fmt % args).replace(self.path, urlsplit(self.path).path))

    def _send(self, status: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body, allow_nan=False, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="kernelsmith"')
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        try:
            if method == "GET" and path == "/healthz":
                return self._health()
            self._auth(parse_qs(parts.query) if path == "/get_reward" else {})
            if method == "GET" and path == "/v1/queue":
                return self._send(200, self.server.service.queue_info())
            if method == "GET" and path == "/v1/tasks":
                idx = self.server.service.tasks
                return self._send(200, {"tasks": [{"name": n, "hash": idx.by_name[n].hash} for n in idx.names()]})
            if method == "GET" and path.startswith("/v1/jobs/"):
                return self._job(path[len("/v1/jobs/"):])
            if method == "POST" and path == "/v1/score":
                return self._score(self._body())
            if method == "POST" and path == "/get_reward":
                return self._openrlhf(self._body())
            known = {"/healthz", "/v1/queue", "/v1/tasks", "/v1/score", "/get_reward"}
            if path in known or path.startswith("/v1/jobs/"):
                raise HTTPError(405, f"{method} is not allowed on {path}")
            raise HTTPError(404, f"no route {path}; routes: GET /healthz, GET /v1/queue, GET /v1/tasks, "
                                 "POST /v1/score, GET /v1/jobs/ID, POST /get_reward")
        except HTTPError as exc:
            self._send(exc.status, {"error": exc.message}, close=exc.close)
        except RequestError as exc:
            self._send(400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, the server keeps serving
            log.exception("internal error on %s %s", method, path)
            self._send(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _auth(self, query: dict) -> None:
        want = self.server.token
        if not want:
            return
        header = self.headers.get("Authorization", "")
        got = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not got and query.get("token"):
            got = query["token"][0]
        # unread request bodies make the connection unusable: close it
        if not got:
            raise HTTPError(401, "missing token: send the header `Authorization: Bearer TOKEN`", close=True)
        if not hmac.compare_digest(got.encode(), want.encode()):
            raise HTTPError(401, "wrong token", close=True)

    def _body(self) -> dict:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HTTPError(411, "send the body with a Content-Length (chunked bodies are not accepted)", close=True)
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HTTPError(400, "bad Content-Length", close=True) from None
        limit = self.server.max_request_bytes
        if n > limit:
            raise HTTPError(413, f"request body of {n} bytes is over the limit of {limit} bytes "
                                 f"({limit / 2**20:g} MB; --max-request-mb)", close=True)
        raw = self.rfile.read(n) if n > 0 else b""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return body

    # -- routes ------------------------------------------------------------------------
    def _health(self) -> None:
        svc = self.server.service
        q = svc.queue_info()
        self._send(200, {"ok": q["workers_alive"] == len(svc.gpus), "gpus": svc.gpus, "version": version(),
                         "tasks": len(svc.tasks), "reward": svc.default_reward})

    def _job(self, job_id: str) -> None:
        svc = self.server.service
        job = svc.get_job(job_id)
        if job is None:
            raise HTTPError(404, f"no job {job_id!r} (jobs are kept in memory: a restarted server forgets them)")
        self._send(200, _clean(svc.job_view(job)))

    def _submit(self, items: list[Item], body: dict):
        svc = self.server.service
        reward = body.get("reward")
        if reward is not None and not isinstance(reward, str):
            raise RequestError("\"reward\" must be a reward name (a string)")
        return svc.submit(items, reward, body.get("reward_kwargs"))

    def _score(self, body: dict) -> None:
        svc = self.server.service
        wait = body.get("wait", True)
        if not isinstance(wait, bool):
            raise RequestError("\"wait\" must be true or false")
        items = svc.parse_items(body.get("items"), self.server.max_items)
        job = self._submit(items, body)
        if not wait:
            return self._send(202, {"job_id": job.id, "status": job.status(), "items": len(items)})
        svc.wait(job, self.server.wait_timeout)
        view = _clean(svc.job_view(job))
        status = 200 if view["status"] == "done" else 500 if view["status"] == "failed" else 202
        self._send(status, view)

    def _openrlhf(self, body: dict) -> None:
        svc = self.server.service
        queries, labels = body.get("query"), body.get("labels")
        prompts = body.get("prompts") or []
        if not isinstance(queries, list) or not queries:
            raise RequestError("\"query\" must be a non-empty list of texts (prompt + response)")
        if not isinstance(labels, list) or len(labels) != len(queries):
            raise RequestError("\"labels\" must be a list of task names, one per query")
        raw = []
        for i, q in enumerate(queries):
            p = prompts[i] if i < len(prompts) and isinstance(prompts[i], str) else ""
            text = q if isinstance(q, str) else ""
            if p and p in text:  # score only the response, never an example in the prompt
                text = text[text.find(p) + len(p):]
            raw.append({"task": labels[i], "completion": text})
        items = svc.parse_items(raw, self.server.max_items)
        job = self._submit(items, body)
        svc.wait(job, self.server.wait_timeout)
        view = svc.job_view(job)
        if view["status"] != "done":
            raise HTTPError(500 if job.error else 504, job.error or "evaluation did not finish in time")
        res = view["results"]
        rewards = [0.0 if r["reward"] is None else r["reward"] for r in res]
        self._send(200, {"rewards": rewards, "scores": rewards, "extra_logs": {
            "correct": [float(r["correct"]) for r in res], "compiled": [float(r["compiled"]) for r in res],
            "speedup": [r["speedup"] or 0.0 for r in res]}})


def _clean(obj):
    """JSON has no NaN/Infinity: send null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
