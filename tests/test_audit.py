"""The hash-chained audit log detects edited, deleted, reordered and truncated rows."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from brokerflow.kernel.audit import append_audit, verify_audit
from brokerflow.kernel.db import new_session, open_database
from brokerflow.kernel.models import AuditEvent


@pytest.fixture
def engine(own_database_url: str) -> Engine:
    engine = open_database(own_database_url)
    with new_session(engine) as session:
        for i in range(5):
            append_audit(session, actor_id=f"u{i}", action="decision", request_key="filing:1",
                         details={"n": i, "opinion": "同意"})
        session.commit()
    return engine


def _problems(engine: Engine) -> list[str]:
    with new_session(engine) as session:
        return verify_audit(session)


def test_an_untouched_log_verifies(engine: Engine) -> None:
    assert _problems(engine) == []
    with new_session(engine) as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))


def test_an_edited_column_is_detected(engine: Engine) -> None:
    with new_session(engine) as session:
        row = session.get(AuditEvent, 3)
        assert row is not None
        row.actor_id = "someone-else"
        session.add(row)
        session.commit()
    assert any("row 3" in p and "edited" in p for p in _problems(engine))


def test_a_deleted_middle_row_is_detected(engine: Engine) -> None:
    with new_session(engine) as session:
        session.delete(session.get(AuditEvent, 2))
        session.commit()
    assert any("row 3" in p and "deleted" in p for p in _problems(engine))


def test_a_cut_off_tail_is_detected(engine: Engine) -> None:
    with new_session(engine) as session:
        session.delete(session.get(AuditEvent, 5))
        session.commit()
    assert any("removed from the end" in p for p in _problems(engine))
