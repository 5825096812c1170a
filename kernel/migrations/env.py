"""Alembic's entry point: migrate the connection ``open_database`` hands over, or (for the
``alembic`` command) the database of ``BROKERFLOW_DATABASE_URL``."""

from alembic import context
from sqlmodel import SQLModel

from brokerflow.kernel import branch_models, models, opening_models, staff_models  # noqa: F401  (registers the tables)

OPTIONS = {"target_metadata": SQLModel.metadata, "render_as_batch": True,
           "compare_type": False}


def _migrate(connection: object) -> None:
    context.configure(connection=connection, **OPTIONS)  # type: ignore[arg-type]
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _migrate(connection)
else:
    from brokerflow.kernel.db import make_engine
    from brokerflow.kernel.settings import load_settings

    engine = make_engine(load_settings(check_secrets=False).database_url)
    with engine.connect() as connection:
        _migrate(connection)
