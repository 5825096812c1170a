"""Database engine and schema.

SQLite (the default) is opened in WAL mode with a busy timeout, and every transaction begins
``IMMEDIATE`` so that concurrent writers queue instead of failing on lock upgrade.  Nothing
else assumes SQLite: PostgreSQL works through ``BROKERFLOW_DATABASE_URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect
from sqlmodel import Session, SQLModel, create_engine

from brokerflow.kernel import models  # noqa: F401  (registers the tables)
from brokerflow.kernel.errors import SchemaError

SQLITE_BUSY_TIMEOUT_MS = 60_000


def make_engine(database_url: str) -> Engine:
    """Create an engine for ``database_url``; SQLite files get their directory created."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True)


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def init_schema(engine: Engine) -> list[str]:
    """Create every table that does not exist yet and add the columns a newer release added.

    Idempotent.  Only additive changes are made on start: a column missing from an existing
    table is added when it may be NULL or has a default; anything else (a new NOT NULL column
    without default, a changed type) stops with ``SchemaError`` naming table and column
    instead of starting on a schema the code does not match.  Returns what it added.
    """
    SQLModel.metadata.create_all(engine)
    return _add_missing_columns(engine)


def _add_missing_columns(engine: Engine) -> list[str]:
    present = inspect(engine)
    statements: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        existing = {c["name"] for c in present.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            default = _literal_default(column)
            if not column.nullable and default is None:
                raise SchemaError(
                    f"table {table.name} lacks column {column.name}, which may not be NULL and "
                    "has no default: migrate this database by hand")
            type_sql = column.type.compile(dialect=engine.dialect)
            statements.append(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {type_sql}'
                              + ("" if default is None else f" NOT NULL DEFAULT {default}"))
    if statements:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    return statements


def _literal_default(column: Any) -> str | None:
    """The column's scalar Python default as SQL, when it has a plain one."""
    default = getattr(column.default, "arg", None)
    if default is None or callable(default):
        return None
    if isinstance(default, bool):
        return "TRUE" if default else "FALSE"
    if isinstance(default, int | float):
        return str(default)
    if isinstance(default, str):
        return "'" + default.replace("'", "''") + "'"
    return None


def open_database(database_url: str) -> Engine:
    """Engine with the schema in place."""
    engine = make_engine(database_url)
    init_schema(engine)
    return engine


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
