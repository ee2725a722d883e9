"""Recorded sessions: record every model call to JSONL, replay it later without an endpoint.

One line per call:
    {"v": 1, "hash": sha256 of the messages, "model": ..., "n": ..., "sampling": {...},
     "messages": [...], "completions": [{"text", "model", "usage", "cost_usd", "latency_s",
     "call_id", "finish_reason", "price_known"}], "time": unix seconds}

Replay hands back the recorded completions in order, matched by the hash of the messages
when a recorded call has the same prompt, else the next unused call. Replayed completions
keep their recorded usage and cost (so budgets stop a replayed run where the live one
stopped) and are marked replayed=True.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import deque
from pathlib import Path

from kernelsmith.llm.types import LLM, Completion, LLMError, Sampling, Usage

log = logging.getLogger("kernelsmith.llm")
FORMAT_VERSION = 1


def messages_hash(messages: list[dict[str, str]]) -> str:
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode(c: Completion) -> dict:
    d = dataclasses.asdict(c)
    d.pop("replayed", None)
    return d


def _decode(d: dict, ref: str) -> Completion:
    usage = Usage(**{k: int(v) for k, v in (d.get("usage") or {}).items() if k in Usage.__dataclass_fields__})
    return Completion(text=str(d.get("text", "")), model=str(d.get("model", "")), usage=usage,
                      cost_usd=float(d.get("cost_usd", 0.0)), latency_s=float(d.get("latency_s", 0.0)),
                      call_id=ref, finish_reason=str(d.get("finish_reason", "")), replayed=True,
                      price_known=bool(d.get("price_known", True)))


class RecordingModel:
    """Wraps a model; appends each successful call to `path` (flushed line by line)."""

    def __init__(self, inner: LLM, path: str | Path):
        self.inner = inner
        self.name = inner.name
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]], n: int = 1,
                 sampling: Sampling | None = None) -> list[Completion]:
        out = self.inner.complete(messages, n, sampling)
        line = {"v": FORMAT_VERSION, "hash": messages_hash(messages), "model": self.inner.name, "n": n,
                "sampling": dataclasses.asdict(sampling) if sampling else None, "messages": messages,
                "completions": [_encode(c) for c in out], "time": time.time()}
        text = json.dumps(line, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(text)
        return out

    def __getattr__(self, attr):  # stats, price_known ... of the inner model
        return getattr(self.inner, attr)


class ReplayModel:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"replay:{self.path}"
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LLMError(f"cannot read the recorded session {self.path} ({exc}); record one with --record") from None
        self.calls: list[dict] = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rec["completions"] = [_decode(c, f"replay:{self.path.name}:{i}:{j}")
                                      for j, c in enumerate(rec["completions"])]
            except (ValueError, KeyError, TypeError) as exc:
                raise LLMError(f"{self.path} line {i} is not a recorded call ({exc}); "
                               "the file must be JSONL written by RecordingModel") from None
            rec["line"] = i
            self.calls.append(rec)
        self._by_hash: dict[str, deque[int]] = {}
        for idx, rec in enumerate(self.calls):
            self._by_hash.setdefault(rec.get("hash", ""), deque()).append(idx)
        self._used = [False] * len(self.calls)
        self._cursor = 0  # every call before it is used
        self._lock = threading.Lock()
        self.mismatches = 0  # calls answered next-in-order because no recorded prompt matched

    @property
    def remaining(self) -> int:
        with self._lock:
            return self._used.count(False)

    def _take(self, h: str) -> int | None:
        queue = self._by_hash.get(h)
        while queue:
            idx = queue.popleft()
            if not self._used[idx]:
                return idx
        while self._cursor < len(self.calls) and self._used[self._cursor]:
            self._cursor += 1
        if self._cursor < len(self.calls):
            self.mismatches += 1
            return self._cursor
        return None

    def complete(self, messages: list[dict[str, str]], n: int = 1,
                 sampling: Sampling | None = None) -> list[Completion]:
        h = messages_hash(messages)
        out: list[Completion] = []
        with self._lock:
            while len(out) < n:
                idx = self._take(h)
                if idx is None:
                    break
                self._used[idx] = True
                if self.calls[idx].get("hash") != h:
                    log.warning("replay %s: prompt differs from the recording; using line %d (next in order)",
                                self.path, self.calls[idx]["line"])
                out += [dataclasses.replace(c) for c in self.calls[idx]["completions"]]
        if not out and n > 0:
            raise LLMError(f"the recorded session {self.path} is exhausted: all {len(self.calls)} recorded calls "
                           "were used; record a longer session or lower the search budget")
        return out[:n]
