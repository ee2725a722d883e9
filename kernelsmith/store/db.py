"""Engines and migrations: which database, how it is opened, how its schema is brought up.

URL: an explicit argument, else ``KERNELSMITH_DB``, else ``runs.db`` in the current
directory. A bare path means a SQLite file; ``postgresql://`` means psycopg 3.

SQLite is opened for many writers in several processes: WAL journal, a 30 s busy
timeout and foreign keys, set on every new connection. Python's sqlite3 module is put in
autocommit mode and every transaction is begun by us, ``BEGIN IMMEDIATE`` for writes, so
a writer takes the lock before it reads and never dies on a stale snapshot
(SQLITE_BUSY_SNAPSHOT), which a busy timeout cannot cure. ``synchronous=NORMAL``: in WAL
mode a killed process never loses a committed transaction (a power cut may lose the
last few, never consistency).

Migrations: Alembic, run in code at open (no alembic.ini). Concurrent openers of a fresh
database are serialized (SQLite: the write lock; PostgreSQL: an advisory lock), and the
whole upgrade is one transaction on both, so a half-migrated database never exists.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE = "ks_write"  # execution option: this connection's transaction will write
_PG_MIGRATE_LOCK = 0x6B736D69  # pg_advisory_xact_lock key ("ksmi")
_heads: dict[str, str] = {}
_heads_lock = threading.Lock()


class SchemaError(RuntimeError):
    """The database's schema is not one this version of kernelsmith can use."""


def resolve_url(url: str | os.PathLike | None = None) -> str:
    """The SQLAlchemy URL to open: argument > KERNELSMITH_DB > ./runs.db (made absolute)."""
    raw = os.fspath(url) if url is not None else os.environ.get("KERNELSMITH_DB") or "runs.db"
    if "://" not in raw:  # a plain path: a SQLite file
        return "sqlite:///" + str(Path(raw).expanduser().resolve())
    u = make_url(raw)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:"):
        u = u.set(database=str(Path(u.database).expanduser().resolve()))
    return u.render_as_string(hide_password=False)


def is_memory(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:")


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_engine(u, pool_pre_ping=True, future=True)
    if is_memory(url):  # one shared connection; RunStore serializes every use of it
        engine = create_engine(u, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if u.database and not u.database.startswith("file:"):
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": 30.0})
    _sqlite_events(engine, wal=not is_memory(url))
    return engine


def _sqlite_events(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 30000")  # first: the pragmas below may wait on a lock
        if wal:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


# --- migrations -----------------------------------------------------------------------

def alembic_config(url: str | None = None, connection=None):  # noqa: ANN001
    """An Alembic Config built in code: the packaged migrations, no ini file.

    Also the way to write a new revision (the env picks the URL up when no connection is
    given): ``command.revision(alembic_config("sqlite:///dev.db"), "add x",
    autogenerate=True, rev_id="0002")`` after ``command.upgrade(..., "head")``.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    with _heads_lock:
        if "head" not in _heads:
            from alembic.script import ScriptDirectory

            _heads["head"] = ScriptDirectory.from_config(alembic_config()).get_current_head() or ""
        return _heads["head"]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to head: a no-op (one read) when it is there already."""
    from alembic import command
    from alembic.script import ScriptDirectory

    head = head_revision()
    try:
        current = current_revision(engine)
    except Exception:  # noqa: BLE001 - e.g. a locked db: the locked path below reports
        current = None
    if current == head:
        return
    with engine.connect().execution_options(**{WRITE: True}) as conn:
        conn.begin()  # SQLite: BEGIN IMMEDIATE, the one-writer lock, held to commit
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
        from alembic.runtime.migration import MigrationContext

        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if current is not None and current not in known:
            conn.rollback()
            raise SchemaError(
                f"{engine.url.render_as_string()} has schema revision {current}, unknown to this "
                f"kernelsmith (newest known: {head}): it was written by a newer version; upgrade "
                "kernelsmith or point KERNELSMITH_DB at another database")
        if current != head:
            command.upgrade(alembic_config(connection=conn), "head")
        conn.commit()
