"""Optional persistence of the server's result cache (`--db URL`).

One table of its own, `serve_results` (task hash, code hash) -> EvalResult JSON, created if
absent. It sits beside the run database's tables without touching them (no migration: it is
a cache, safe to drop).
"""

from __future__ import annotations

import datetime as dt
import json
import threading

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError

from kernelsmith.store.db import make_engine, resolve_url

_meta = MetaData()
serve_results = Table(
    "serve_results", _meta,
    Column("task_hash", String(64), primary_key=True),
    Column("code_hash", String(64), primary_key=True),
    Column("result_json", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)


class ResultStore:
    def __init__(self, url: str | None = None):
        self.url = resolve_url(url)
        self.engine = make_engine(self.url)
        _meta.create_all(self.engine)
        self._lock = threading.Lock()  # in-memory SQLite shares one connection

    def get(self, task_hash: str, code_hash: str) -> dict | None:
        with self._lock, self.engine.connect() as c:
            row = c.execute(select(serve_results.c.result_json).where(
                serve_results.c.task_hash == task_hash, serve_results.c.code_hash == code_hash)).first()
        return json.loads(row[0]) if row else None

    def put(self, task_hash: str, code_hash: str, result: dict) -> None:
        try:
            with self._lock, self.engine.begin() as c:
                c.execute(insert(serve_results).values(
                    task_hash=task_hash, code_hash=code_hash, result_json=json.dumps(result),
                    created_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
        except IntegrityError:  # another server stored it first: results are idempotent
            pass

    def close(self) -> None:
        self.engine.dispose()
