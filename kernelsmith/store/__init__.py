"""The run store: every run, candidate, LLM call and evaluation, in one database.

    from kernelsmith.store import RunStore
    store = RunStore()            # KERNELSMITH_DB, else ./runs.db (SQLite); migrated on open
    run = store.create_run("optimize", model, strategy, config, budget)

Layout: ``models`` (tables), ``migrations`` (Alembic, applied at open), ``db`` (engines,
SQLite settings, migrating), ``queries`` (every query), ``convert`` (rows <-> the
project's dataclasses), ``runs`` (RunStore, a transaction per call).
"""

from kernelsmith.store.convert import BaselineInfo, RunInfo, RunTaskInfo
from kernelsmith.store.db import SchemaError
from kernelsmith.store.queries import NotFound
from kernelsmith.store.runs import RunStore

__all__ = ["RunStore", "RunInfo", "RunTaskInfo", "BaselineInfo", "NotFound", "SchemaError"]
