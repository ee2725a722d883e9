"""Schema migrations: applied at open, at head, matching the models, safe to race; and
how the store finds its database. On SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from kernelsmith.store import RunStore, SchemaError
from kernelsmith.store import db
from kernelsmith.store.models import Base
from store_helpers import open_store

TABLES = {"runs", "tasks", "run_tasks", "candidates", "candidate_parents", "evaluations", "evaluation_stages",
          "llm_calls", "baselines", "hardware", "alembic_version"}


def test_fresh_database_is_at_head(store):
    head = db.head_revision()
    assert head and store.schema_revision() == head
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        assert TABLES <= set(inspect(conn).get_table_names())


def test_models_match_the_migrations(store):
    """Autogenerate finds nothing to do: the migrated schema is exactly the models'."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_reopening_keeps_data_and_version(store, db_url):
    rid = store.create_run("eval", "", "", {}, {})
    for _ in range(2):
        with RunStore(db_url) as again:
            assert again.get_run(rid).kind == "eval" and again.schema_revision() == db.head_revision()


def test_downgrade_and_upgrade_again(store):
    with store.engine.connect().execution_options(**{db.WRITE: True}) as conn:
        conn.begin()
        command.downgrade(db.alembic_config(connection=conn), "base")
        conn.commit()
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    db.migrate(store.engine)
    assert store.schema_revision() == db.head_revision() and store.list_runs() == []


def test_a_newer_schema_is_refused_with_a_reason(store, db_url):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="9999.*newer version"):
        RunStore(db_url)


def test_racing_openers_of_a_fresh_database(db_url):
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        revs = pool.map(open_store, [db_url] * 4)
    assert revs == [db.head_revision()] * 4


def test_revision_files_are_an_ordered_chain_in_packages():
    importlib.import_module("kernelsmith.store.migrations")
    versions = importlib.import_module("kernelsmith.store.migrations.versions")
    files = sorted(p.name for p in Path(versions.__file__).parent.glob("*.py") if p.name != "__init__.py")
    assert files and files[0].startswith("0001_")
    script = ScriptDirectory.from_config(db.alembic_config())
    chain = [s.revision for s in reversed(list(script.walk_revisions()))]
    assert chain == [re.match(r"(\d{4})_\w+\.py$", f).group(1) for f in files]  # 0001, 0002, ... no branches
    assert chain == [f"{i:04d}" for i in range(1, len(chain) + 1)] and script.get_heads() == [chain[-1]]


# --- where the database is (SQLite only: not parametrized) --------------------------------

def test_default_is_runs_db_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("KERNELSMITH_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    with RunStore() as store:
        store.create_run("bench", "m", "s", {}, {})
        assert store.url == f"sqlite:///{tmp_path / 'runs.db'}"
        with store.engine.connect() as conn:
            pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                       for p in ("journal_mode", "busy_timeout", "foreign_keys")]
        assert pragmas == ["wal", 30000, 1]
    assert (tmp_path / "runs.db").is_file()


def test_env_var_and_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERNELSMITH_DB", f"sqlite:///{tmp_path / 'from_env.db'}")
    with RunStore() as store:
        assert store.url.endswith("from_env.db")
    with RunStore(tmp_path / "sub" / "explicit.db") as store:  # a plain path wins over the env
        assert store.url == f"sqlite:///{tmp_path / 'sub' / 'explicit.db'}"
    assert (tmp_path / "sub" / "explicit.db").is_file() and not (tmp_path / "runs.db").exists()
    assert db.resolve_url("postgresql://u:p@h/d") == "postgresql+psycopg://u:p@h/d"


def test_in_memory_store_for_quick_use():
    with RunStore("sqlite://") as store:
        rid = store.create_run("eval", "m", "s", {}, {})
        assert store.get_run(rid).status == "running" and store.schema_revision() == db.head_revision()


def test_upgrading_keeps_older_evaluations_and_marks_their_harness_unknown(store):
    """Revision 0002 adds evaluations.harness: a database written at 0001 keeps its rows
    (harness NULL: unknown), and evaluations recorded after record their version."""
    import dataclasses

    from kernelsmith.search.types import Candidate
    from store_helpers import SYSTEM, code, correct_result, make_task

    task = make_task()
    rid = store.create_run("bench", "m", "s", {}, {})
    store.upsert_task(task)
    old = store.add_candidate(rid, task.hash, Candidate(code=code("old")))
    store.add_evaluation(old, correct_result(task, 1.5))
    with store.engine.connect().execution_options(**{db.WRITE: True}) as conn:
        conn.begin()
        command.downgrade(db.alembic_config(connection=conn), "0001")
        conn.commit()
        assert "harness" not in {c["name"] for c in inspect(conn).get_columns("evaluations")}
    db.migrate(store.engine)
    new = store.add_candidate(rid, task.hash, Candidate(code=code("new")))
    store.add_evaluation(new, correct_result(task, 2.0, system=dataclasses.replace(SYSTEM, harness="4")))
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT candidate_id, harness, speedup_eager FROM evaluations ORDER BY id")).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [(old, None, 1.5), (new, "4", 2.0)]
