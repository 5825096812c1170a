"""Start-up brings a database to the code's schema with Alembic migrations, or refuses it
naming what is wrong (exit 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, inspect
from sqlmodel import SQLModel

from brokerflow.kernel.db import _alembic_config, make_engine, migrate, new_session, open_database
from brokerflow.kernel.errors import SchemaError
from brokerflow.kernel.roster import get_user_view, load_roster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


def _droppable(column: Column) -> bool:  # type: ignore[type-arg]
    """A column nothing else hangs on: no key, index or constraint."""
    table = column.table
    constrained = {c.name for constraint in table.constraints
                   for c in getattr(constraint, "columns", [])}
    indexed = {c.name for index in table.indexes for c in index.columns}
    return not (column.primary_key or column.foreign_keys or column.name in constrained
                or column.name in indexed)


def _at_revision(url: str, revision: str) -> None:
    """A database made by the migrations up to ``revision`` only."""
    engine = make_engine(url)
    with engine.connect() as connection:
        command.upgrade(_alembic_config(connection), revision)
        connection.commit()
    engine.dispose()


def _schema(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def test_an_older_database_is_migrated_on_start(database_url: str) -> None:
    _at_revision(database_url, "0001")  # the first landed release
    before = _schema(database_url)
    assert "runlease" not in before and "owner" not in before["serialrecord"]

    engine = open_database(database_url)
    after = _schema(database_url)
    assert {"runlease", "runrecovery"} <= set(after) and "owner" in after["serialrecord"]
    assert migrate(engine) == []  # nothing left to do
    # the code works on the migrated database: the roster loads and reads back
    with new_session(engine) as session:
        load_roster(session, path=Path(__file__).parent / "data" / "roster.csv", actor=None)
        session.commit()
    with new_session(engine) as session:
        view = get_user_view(session, "bm1")
    assert view is not None and view.branch == "SZ01"
    engine.dispose()


def test_a_database_made_before_migrations_existed_is_recognised(database_url: str) -> None:
    _at_revision(database_url, "0001")
    engine = make_engine(database_url)
    with engine.begin() as connection:  # what create_all left: the tables, no version
        connection.exec_driver_sql("DROP TABLE alembic_version")
    every = ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()  # type: ignore[arg-type]
    assert migrate(engine) == sorted(r.revision for r in every if r.revision != "0001")
    engine.dispose()
    assert "owner" in _schema(database_url)["serialrecord"]


def test_a_column_start_cannot_add_stops_with_the_table_and_column_named(
    database_url: str,
) -> None:
    engine = open_database(database_url)
    table, column = next((t.name, c.name) for t in SQLModel.metadata.sorted_tables
                         for c in t.columns if _droppable(c) and not c.nullable)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    engine.dispose()
    with pytest.raises(SchemaError, match=f"table {table} lacks column {column}") as raised:
        open_database(database_url)
    assert raised.value.exit_code == 6


def test_a_database_of_a_newer_release_is_refused(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(SchemaError, match="revision 9999, which this release does not know"):
        open_database(database_url)
