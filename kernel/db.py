"""Database engine and schema (Alembic migrations, applied on start).

SQLite (the default) is opened in WAL mode with a busy timeout, and a writing transaction
begins ``IMMEDIATE`` so that concurrent writers queue instead of failing on lock upgrade.  A
session for reading only (``read_session``) begins deferred: it never takes the write lock, so
a long writer does not block the login page or a search.  Waiting longer than the busy timeout
for the lock is ``DatabaseBusy`` (exit 7).  Nothing else assumes SQLite: PostgreSQL works
through ``BROKERFLOW_DATABASE_URL``.  A database that cannot be reached (server down, wrong
password, no such database, connection lost) raises SQLAlchemy's ``OperationalError`` carrying
a ``DatabaseUnavailable`` (``unavailable``): the command line exits 8 with it, naming the
database without its password and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from brokerflow.kernel import branch_models, models, opening_models, staff_models  # noqa: F401  (registers the tables)
from brokerflow.kernel.errors import BadInput, DatabaseUnavailable, SchemaError

SQLITE_BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "brokerflow_read_only"  # execution option of ``read_session``'s connections


def make_engine(database_url: str, *, busy_timeout_ms: int | None = None) -> Engine:
    """Create an engine for ``database_url``; SQLite files get their directory created.

    ``busy_timeout_ms`` (default ``BROKERFLOW_DATABASE_BUSY_MS`` or 60 s): how long SQLite
    waits for another writer before ``DatabaseBusy``."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        timeout = busy_timeout_ms or int(os.environ.get("BROKERFLOW_DATABASE_BUSY_MS",
                                                        SQLITE_BUSY_TIMEOUT_MS))
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": timeout / 1000},
        )
        _make_sqlite_transactions_immediate(engine, timeout)
    else:
        try:
            engine = create_engine(database_url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise BadInput(f"BROKERFLOW_DATABASE_URL is not a database URL brokerflow can use "
                           f"({exc}): correct it") from exc
    _report_unreachable(engine, database_url)
    return engine


def describe_url(database_url: str) -> str:
    """``database_url`` as messages show it: without its password."""
    try:
        return unquote(make_url(database_url).render_as_string(hide_password=True))
    except ArgumentError:
        return "(a URL that does not parse)"


_HINTS = (
    (("password authentication failed", "no password supplied", "role \""),
     "check the user and password in {setting}"),
    (("database \"",), "create the database (createdb NAME, or CREATE DATABASE NAME) or "
                        "correct its name in {setting}"),
    (("unable to open database file",), "make its directory writable or correct {setting}"),
)


def database_unavailable(database_url: str, error: BaseException, *,
                         setting: str = "BROKERFLOW_DATABASE_URL",
                         what: str = "the database") -> DatabaseUnavailable:
    """The error saying that ``database_url`` (named by ``setting``) cannot be reached, why,
    and how to fix it."""
    reason = " ".join(str(getattr(error, "orig", None) or error).split())
    reason = reason.split("(Background on this error", 1)[0].strip()
    hint = next((h for markers, h in _HINTS if any(m in reason for m in markers)),
                "start PostgreSQL (the local stack's: 'brokerflow up --postgres'), or correct "
                "host and port in {setting}")
    return DatabaseUnavailable(f"cannot reach {what} {describe_url(database_url)}: {reason}; "
                               + hint.format(setting=setting))


_UNAVAILABLE = "brokerflow_unavailable"  # attribute of a driver error: its explanation


def _report_unreachable(engine: Engine, database_url: str) -> None:
    """Connecting failed or the connection was lost: the ``OperationalError`` carries the
    ``DatabaseUnavailable`` that explains it (``unavailable``).  It stays an
    ``OperationalError``, so code that waits out an outage still recognises it; a pre-ping's
    failure is SQLAlchemy's to handle, a busy lock stays busy."""
    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.sqlalchemy_exception
        if (context.is_pre_ping or not isinstance(error, OperationalError) or is_busy(error)
                or not (context.connection is None or context.is_disconnect)):
            return
        setattr(error, _UNAVAILABLE, database_unavailable(database_url,
                                                          context.original_exception))


def unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """What an engine's failure to reach its database means (None: not such a failure)."""
    explained = getattr(error, _UNAVAILABLE, None)
    return explained if isinstance(explained, DatabaseUnavailable) else None


def _make_sqlite_transactions_immediate(engine: Engine, timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def read_session(engine: Engine) -> Session:
    """A session that only reads: on SQLite it begins deferred and never waits for, or
    blocks, a writer (WAL readers see the last committed state).  Writing in it is a bug."""
    return Session(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is the database's lock wait running out (SQLite ``database is
    locked``/``busy``, PostgreSQL lock timeout)."""
    text = str(getattr(error, "orig", error)).lower()
    return isinstance(error, OperationalError) and any(
        marker in text for marker in ("database is locked", "database is busy",
                                      "lock timeout", "could not obtain lock"))


#: The revision a database made by ``create_all`` before migrations existed is at: the
#: first landed release, or the development schema that already had issue 9's tables.
LEGACY_MARKERS = (("runlease", "0002"), ("user", "0001"))
MIGRATION_LOCK_ID = 7_420_531  # a PostgreSQL advisory lock of brokerflow's own


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "brokerflow.kernel:migrations")
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> list[str]:
    """Bring the database to the code's schema; the revisions applied.

    A new database gets every migration; one made before migrations existed (tables but no
    ``alembic_version``) is first marked at the revision its tables show.  Then what the
    code needs is checked: a table or column still missing (a database changed by hand, or
    newer than this release) stops with ``SchemaError`` naming table and column, rather than
    running on a schema the code does not match.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":  # one migrating process at a time
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        tables = set(inspect(connection).get_table_names())
        before = MigrationContext.configure(connection).get_current_revision()
        config = _alembic_config(connection)
        script = ScriptDirectory.from_config(config)
        head = script.get_current_head()
        if before is not None and not _known(script, before):
            raise SchemaError(f"the database is at schema revision {before}, which this "
                              "release does not know: it was written by a newer brokerflow")
        if before is None and tables:
            before = next(rev for marker, rev in LEGACY_MARKERS if marker in tables)
            command.stamp(config, before)
        applied = [] if before == head else [
            r.revision for r in script.iterate_revisions(head, before or "base")
            if r.revision != before]
        if applied:
            command.upgrade(config, "head")
        connection.commit()
        _check_nothing_missing(connection)
    return sorted(applied)


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _check_nothing_missing(connection: Connection) -> None:
    for diff in compare_metadata(MigrationContext.configure(connection), SQLModel.metadata):
        if isinstance(diff, tuple) and diff[0] == "add_table":
            raise SchemaError(f"the database lacks table {diff[1].name}: migrate it by hand")
        if isinstance(diff, tuple) and diff[0] == "add_column":
            _, _, table, column = diff
            raise SchemaError(f"table {table} lacks column {column.name}, which the migrations "
                              "made: this database was changed by hand; restore it")


def open_database(database_url: str) -> Engine:
    """Engine with the schema migrated to the code's (``migrate``)."""
    engine = make_engine(database_url)
    migrate(engine)
    return engine


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
