"""Results by (task hash, code hash), so that a candidate is evaluated once however often
it is submitted: an LRU in memory, the optional persistent store (--db) behind it, and the
futures of evaluations in flight, which a duplicate submitted meanwhile waits on.

Only successful results are kept: an evaluator failure is an infrastructure problem, and a
later submission must get a fresh try.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (task hash, code hash)


class ResultCache:
    def __init__(self, store=None, max_size: int = 200_000):
        self.store = store
        self.max_size = max_size
        self.memory: OrderedDict[Key, dict] = OrderedDict()  # oldest first, trimmed to max_size
        self.inflight: dict[Key, Future] = {}
        self._lock = threading.Lock()

    def claim(self, key: Key) -> tuple[Future, bool]:
        """(future, True) when the result is known or already being computed; otherwise
        (a new future, False): the caller must evaluate it and then call settle(key, ...).
        The future resolves to ("ok", result dict) or ("error", message)."""
        with self._lock:
            if key in self.memory:
                self.memory.move_to_end(key)
                return resolved(("ok", self.memory[key])), True
            if key in self.inflight:
                return self.inflight[key], True
        # The store may be slow (a database): read it without holding the lock, then look
        # again, since another thread may have claimed or finished the key meanwhile.
        stored = self._store_get(key)
        with self._lock:
            if stored is not None:
                self._remember(key, self.memory.get(key, stored))
                return resolved(("ok", self.memory[key])), True
            if key in self.memory:
                return resolved(("ok", self.memory[key])), True
            if key in self.inflight:
                return self.inflight[key], True
            fut: Future = Future()
            self.inflight[key] = fut
            return fut, False

    def settle(self, key: Key, payload: tuple) -> None:
        """Record the outcome of a claimed evaluation (resolving its future is the caller's)."""
        with self._lock:
            if payload[0] == "ok":
                self._remember(key, payload[1])
            self.inflight.pop(key, None)
        if payload[0] == "ok":
            self._store_put(key, payload[1])

    def sizes(self) -> tuple[int, int]:
        """(results in memory, evaluations in flight)."""
        with self._lock:
            return len(self.memory), len(self.inflight)

    def _remember(self, key: Key, result: dict) -> None:  # under self._lock
        self.memory[key] = result
        self.memory.move_to_end(key)
        while len(self.memory) > self.max_size:
            self.memory.popitem(last=False)

    def _store_get(self, key: Key):
        if self.store is None:
            return None
        try:
            return self.store.get(*key)
        except Exception:  # noqa: BLE001 - a broken store degrades to memory caching
            log.exception("reading the result store failed")
            return None

    def _store_put(self, key: Key, result: dict) -> None:
        if self.store is None:
            return
        try:
            self.store.put(*key, result)
        except Exception:  # noqa: BLE001
            log.exception("writing the result store failed")


def resolved(value) -> Future:
    """A future that already holds `value` (a cache hit looks like any other item)."""
    f: Future = Future()
    f.set_running_or_notify_cancel()
    f.set_result(value)
    return f
