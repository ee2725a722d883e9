"""Trainer adapters: thin clients of `kernelsmith serve` over HTTP (stdlib urllib only, so a
training job needs nothing beyond kernelsmith itself, not even that: this file stands alone).

TRL (GRPOTrainer(reward_funcs=[...])):
    fn = make_trl_reward("http://gpu-box:8000", token, task_column="task")
    TRL calls fn(prompts=..., completions=..., completion_ids=..., **columns) and reads
    fn.__name__ for its logs; None rewards become NaN (ignored by TRL's nan-aware means).

verl (custom_reward_function.path=kernelsmith/serve/adapters.py, name=compute_score):
    compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float
    The task name is ground_truth (a string) or extra_info["task"]; extra_info["language"], if
    set, goes to the reward (the rule rewards' target language); the server and reward from the
    environment: KERNELSMITH_SERVE_URL (default http://127.0.0.1:8000), KERNELSMITH_SERVE_TOKEN,
    KERNELSMITH_SERVE_REWARD.

OpenRLHF (--remote_rm_url http://host:8000/get_reward?token=TOKEN): the server itself speaks
the protocol; `openrlhf_reward` below is the same call made from Python, for tests and scripts.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"


class ServeError(RuntimeError):
    """The reward server refused a request or could not be reached."""


def _post(url: str, path: str, body: dict, token: str | None, timeout: float, retries: int = 3) -> dict:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    last: Exception | None = None
    for attempt in range(retries):
        req = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", "")
            except Exception:  # noqa: BLE001
                msg = exc.reason
            if exc.code < 500:  # the request itself is wrong: retrying cannot help
                raise ServeError(f"reward server {url} answered {exc.code}: {msg}") from None
            last = ServeError(f"reward server {url} answered {exc.code}: {msg}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = ServeError(f"cannot reach the reward server at {url}: {exc}")
        time.sleep(min(2.0 ** attempt, 10.0))
    raise last or ServeError("reward server request failed")


def _text(c: Any) -> str:
    """A completion as text: a string or a chat (the last assistant message)."""
    if isinstance(c, str):
        return c
    if isinstance(c, dict):
        return str(c.get("content") or "")
    if isinstance(c, (list, tuple)):
        msgs = [m for m in c if isinstance(m, dict)]
        asst = [m for m in msgs if m.get("role") == "assistant"] or msgs
        if asst:
            content = asst[-1].get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else ""
    return "" if c is None else str(c)


def score(url: str, token: str | None, items: list[dict], reward: str | None = None,
          timeout: float = 3600.0, **reward_kwargs) -> list[dict]:
    """POST /v1/score and wait: one result dict per item (reward, verdict, speedup, ...)."""
    body: dict = {"items": items, "wait": True}
    if reward:
        body["reward"] = reward
    if reward_kwargs:
        body["reward_kwargs"] = reward_kwargs
    out = _post(url, "/v1/score", body, token, timeout)
    if out.get("status") != "done":
        raise ServeError(f"scoring did not finish: {out.get('error') or out.get('status')} (job {out.get('job_id')})")
    return out["results"]


# --- TRL ----------------------------------------------------------------------------------

def make_trl_reward(url: str, token: str | None = None, task_column: str = "task", reward: str | None = None,
                    name: str | None = None, timeout: float = 3600.0, reward_kwargs: dict | None = None,
                    kwarg_columns: tuple[str, ...] = ()):
    """A reward function with GRPOTrainer's signature: fn(prompts, completions, **kwargs) -> list[float | None].
    kwargs[task_column] holds each completion's task name (a dataset column). `reward_kwargs` go
    to the reward as they are; each of `kwarg_columns` (e.g. "language" for the rule rewards) as
    the list of that dataset column's per-completion values."""

    def fn(prompts=None, completions=None, **kwargs) -> list[float | None]:
        completions = list(completions or [])
        tasks = kwargs.get(task_column)
        if tasks is None:
            raise ValueError(f"the dataset has no {task_column!r} column: the kernelsmith reward needs each "
                             f"prompt's task name (make_trl_reward(..., task_column=...))")
        if len(tasks) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(tasks)} values in column {task_column!r}")
        if not completions:
            return []
        items = [{"task": t, "completion": _text(c)} for t, c in zip(tasks, completions)]
        extra = dict(reward_kwargs or {})
        for col in kwarg_columns:
            if col not in kwargs:
                raise ValueError(f"the dataset has no {col!r} column (make_trl_reward(..., kwarg_columns=...))")
            extra[col] = list(kwargs[col])
        return [r["reward"] for r in score(url, token, items, reward, timeout, **extra)]

    fn.__name__ = name or f"kernelsmith_{reward or 'reward'}"
    fn.__qualname__ = fn.__name__
    return fn


# --- verl -----------------------------------------------------------------------------------

def _task_from(ground_truth: Any, extra_info: Any) -> str:
    if isinstance(extra_info, dict):
        for k in ("task", "task_name", "task_hash"):
            if isinstance(extra_info.get(k), str) and extra_info[k]:
                return extra_info[k]
    if isinstance(ground_truth, str) and ground_truth:
        return ground_truth
    if isinstance(ground_truth, dict) and isinstance(ground_truth.get("task"), str):
        return ground_truth["task"]
    raise ValueError("no task name: put it in ground_truth (reward_model.ground_truth) or extra_info['task']")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl's custom reward function. An unscorable result (evaluator failure) scores 0.0:
    verl needs a number."""
    url = os.environ.get("KERNELSMITH_SERVE_URL", DEFAULT_URL)
    token = os.environ.get("KERNELSMITH_SERVE_TOKEN")
    reward = os.environ.get("KERNELSMITH_SERVE_REWARD") or None
    extra = {"language": extra_info["language"]} if isinstance(extra_info, dict) and extra_info.get("language") else {}
    res = score(url, token, [{"task": _task_from(ground_truth, extra_info), "completion": _text(solution_str)}],
                reward, **extra)
    r = res[0]["reward"]
    return 0.0 if r is None else float(r)


# --- OpenRLHF ---------------------------------------------------------------------------------

def openrlhf_reward(url: str, queries: list[str], prompts: list[str], labels: list[str],
                    token: str | None = None, timeout: float = 3600.0) -> list[float]:
    """What OpenRLHF's remote reward client sends to --remote_rm_url: {"query", "prompts", "labels"};
    reads "rewards" from the answer."""
    out = _post(url, "/get_reward", {"query": queries, "prompts": prompts, "labels": labels}, token, timeout)
    return out["rewards"]
