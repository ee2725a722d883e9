"""Alembic environment: run with the connection ``kernelsmith.store.db.migrate`` passes in.

No alembic.ini and no logging setup: the Config is built in code
(``kernelsmith.store.db.alembic_config``). Without a connection (a developer generating
a revision), an engine is made from the config's ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from kernelsmith.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    from kernelsmith.store.db import make_engine, resolve_url

    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
