"""Database engine and schema.

SQLite (the default) is opened in WAL mode with a busy timeout, and every transaction begins
``IMMEDIATE`` so that concurrent writers queue instead of failing on lock upgrade.  Nothing
else assumes SQLite: PostgreSQL works through ``BROKERFLOW_DATABASE_URL``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel, create_engine

from brokerflow import models  # noqa: F401  (registers the tables)

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


def init_schema(engine: Engine) -> None:
    """Create every table that does not exist yet (idempotent)."""
    SQLModel.metadata.create_all(engine)


def open_database(database_url: str) -> Engine:
    """Engine with the schema in place."""
    engine = make_engine(database_url)
    init_schema(engine)
    return engine


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
