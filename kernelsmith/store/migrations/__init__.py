"""Alembic migrations of the run store (run in code by ``kernelsmith.store.db.migrate``)."""
