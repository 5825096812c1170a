"""Serial format and gap-free allocation, including under multi-process contention."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.index import allocate_serial, next_number
from brokerflow.archive.serials import Serial, format_serial, parse_serial
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import SerialRecord


def test_format_and_parse_round_trip() -> None:
    assert format_serial("SZ01", "PAY", 2026, 42) == "SZ01-PAY-2026-000042"
    serial = parse_serial("SZ01-PAY-2026-000042")
    assert serial == Serial("SZ01", "PAY", 2026, 42)
    assert serial.object_key == "SZ01/PAY/2026/SZ01-PAY-2026-000042.pdf"


@pytest.mark.parametrize("bad", ["SZ01-PAY-2026-42", "sz01-PAY-2026-000042",
                                 "SZ01-ABC-2026-000001", "SZ01-PAY-2026-000000", ""])
def test_parse_rejects_what_is_not_a_serial(bad: str) -> None:
    with pytest.raises(BadInput):
        parse_serial(bad)


def test_numbers_are_bounded() -> None:
    assert format_serial("SZ01", "EXT", 2026, 999_999).endswith("-999999")
    with pytest.raises(BadInput, match="outside 1..999999"):  # in the error tree (exit 2)
        format_serial("SZ01", "EXT", 2026, 1_000_000)


def test_counters_are_per_branch_type_and_year(own_database_url: str) -> None:
    engine = open_database(own_database_url)
    with new_session(engine) as session:
        got = [
            next_number(session, branch=b, doc_type=t, year=y)
            for b, t, y in [("SZ01", "PAY", 2026), ("SZ01", "PAY", 2026), ("SZ01", "PAS", 2026),
                            ("GZ02", "PAY", 2026), ("SZ01", "PAY", 2027), ("SZ01", "PAY", 2026)]
        ]
        session.commit()
    assert got == [1, 2, 1, 1, 1, 3]


def _allocate_many(database_url: str, worker: int, count: int) -> list[str]:
    engine = open_database(database_url)
    serials = []
    for i in range(count):
        with new_session(engine) as session:
            record = allocate_serial(session, branch="SZ01", doc_type="EXT", year=2026,
                                     subject_key=f"w{worker}-{i}", revision=1)
            session.commit()
            serials.append(record.serial)
    engine.dispose()
    return serials


@pytest.fixture(params=["sqlite", "postgresql"])
def contended_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contended.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = open_database(url)
    with engine.begin() as connection:  # a clean slate: the cluster lives for the session
        for table in ("serialrecord", "serialcounter"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()
    return url


@pytest.mark.slow
def test_eight_processes_allocate_1600_distinct_consecutive_numbers(
    contended_database: str,
) -> None:
    url = contended_database
    open_database(url).dispose()
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        results = pool.starmap(_allocate_many, [(url, w, 200) for w in range(8)])
    serials = [s for worker in results for s in worker]
    numbers = sorted(parse_serial(s).number for s in serials)
    assert numbers == list(range(1, 1601))
    for worker in results:  # each worker saw its own numbers increase
        mine = [parse_serial(s).number for s in worker]
        assert mine == sorted(mine)
    with new_session(open_database(url)) as session:
        assert len(session.exec(select(SerialRecord)).all()) == 1600
