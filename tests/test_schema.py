"""Start-up brings an older database up to the code's schema (additive changes only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, inspect
from sqlmodel import SQLModel

from brokerflow.kernel.db import (
    _literal_default,
    init_schema,
    make_engine,
    new_session,
    open_database,
)
from brokerflow.kernel.errors import SchemaError
from brokerflow.kernel.roster import get_user_view, load_roster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.sqlite'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


def _droppable(column: Column) -> bool:  # type: ignore[type-arg]
    """A column an older release may have lacked: no key, index or constraint on it."""
    table = column.table
    constrained = {c.name for constraint in table.constraints
                   for c in getattr(constraint, "columns", [])}
    indexed = {c.name for index in table.indexes for c in index.columns}
    return not (column.primary_key or column.foreign_keys or column.name in constrained
                or column.name in indexed)


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_start_adds_the_columns_an_older_database_lacks(database_url: str) -> None:
    engine = open_database(database_url)
    dropped = [(t.name, c.name) for t in SQLModel.metadata.sorted_tables for c in t.columns
               if _droppable(c) and (c.nullable or _literal_default(c) is not None)]
    assert len(dropped) >= 5, dropped  # enough of the schema to mean something
    with engine.begin() as connection:
        for table, column in dropped:
            connection.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    engine.dispose()
    assert all(column not in _columns(database_url, table) for table, column in dropped)

    engine = make_engine(database_url)
    added = init_schema(engine)
    assert len(added) == len(dropped)
    assert init_schema(engine) == []  # idempotent
    engine.dispose()
    assert all(column in _columns(database_url, table) for table, column in dropped)
    # the code works on the migrated database: the roster loads and reads back
    engine = open_database(database_url)
    with new_session(engine) as session:
        load_roster(session, path=Path(__file__).parent / "data" / "roster.csv", actor=None)
        session.commit()
    with new_session(engine) as session:
        view = get_user_view(session, "bm1")
    assert view is not None and view.branch == "SZ01"
    engine.dispose()


def test_a_column_start_cannot_add_stops_with_the_table_and_column_named(
    database_url: str,
) -> None:
    engine = open_database(database_url)
    required = next((t.name, c.name) for t in SQLModel.metadata.sorted_tables for c in t.columns
                    if _droppable(c) and not c.nullable and _literal_default(c) is None)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER TABLE "{required[0]}" DROP COLUMN "{required[1]}"')
    engine.dispose()
    with pytest.raises(SchemaError, match=f"table {required[0]} lacks column {required[1]}"):
        open_database(database_url)
