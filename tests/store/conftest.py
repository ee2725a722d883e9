"""Fixtures of the run store tests: every test runs on SQLite and on PostgreSQL.

The PostgreSQL parameter uses the server in KERNELSMITH_TEST_PG_URL (``.ci/postgres.sh``
starts one and prints the URL); each test gets its own schema there, dropped afterwards.
Without the variable the parameter is skipped, with the reason, unless CI is set: CI
must run it, so there it fails.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ENV = "KERNELSMITH_TEST_PG_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pg_base_url() -> str:
    url = os.environ.get(PG_ENV, "").strip()
    if url:
        return url
    if in_ci():
        pytest.fail(f"CI is set but {PG_ENV} is not: CI must test the store on PostgreSQL "
                    "(.ci/run should eval \"$(bash .ci/postgres.sh)\" first)", pytrace=False)
    pytest.skip(f"PostgreSQL store tests need {PG_ENV} (e.g. eval \"$(bash .ci/postgres.sh)\")")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path):
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    base = make_url(pg_base_url())
    if base.drivername in ("postgresql", "postgres"):
        base = base.set(drivername="postgresql+psycopg")
    schema = f"ks_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.fail(f"cannot use the PostgreSQL server in {PG_ENV}: {exc}", pytrace=False)
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def store(db_url):
    from kernelsmith.store import RunStore

    s = RunStore(db_url)
    yield s
    s.close()
