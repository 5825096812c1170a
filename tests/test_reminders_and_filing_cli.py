"""催办 reminders, and the filing commands' bad input and access rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.approvals.decisions import mark_waiting
from brokerflow.approvals.reminders import overdue_steps
from brokerflow.archive.service import Archive
from brokerflow.flows.reminders import approval_reminders
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ApprovalDecision, Filing, Reminder, WaitingStep

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>


def test_overdue_rule_is_pure_and_does_not_repeat_within_the_limit() -> None:
    now = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    waiting = [WaitingStep(request_key="filing:1", revision=1, step="vp_instruction",
                           since=now - timedelta(days=4)),
               WaitingStep(request_key="filing:2", revision=1, step="office_receive",
                           since=now - timedelta(days=1))]
    limit = timedelta(days=3)
    due = overdue_steps(waiting, [], now=now, limit=limit)
    assert [(o.request_key, o.step) for o in due] == [("filing:1", "vp_instruction")]
    recent = Reminder(request_key="filing:1", revision=1, step="vp_instruction",
                      waiting_since=now - timedelta(days=4), reminded_at=now - timedelta(days=1))
    assert overdue_steps(waiting, [recent], now=now, limit=limit) == []
    later = overdue_steps(waiting, [recent], now=now + timedelta(days=2), limit=limit)
    assert sorted(o.request_key for o in later) == ["filing:1", "filing:2"]


def test_reminder_flow_records_reminders_and_artifacts_and_approves_nothing(
    prefect_api: None, archive: Archive, roster: None
) -> None:

    start = datetime.now(UTC)
    with new_session(archive.engine) as session:
        mark_waiting(session, request_key="filing:9", revision=1, step="vp_instruction",
                     flow_run_id="")
        session.commit()
    assert approval_reminders(now=start + timedelta(hours=1)) == 0
    assert approval_reminders(now=start + timedelta(days=4)) == 1
    assert approval_reminders(now=start + timedelta(days=4, hours=1)) == 0  # not again at once
    with new_session(archive.engine) as session:
        reminders = session.exec(select(Reminder)).all()
        assert [(r.request_key, r.step) for r in reminders] == [("filing:9", "vp_instruction")]
        assert "催办" in reminders[0].message
        assert session.exec(select(ApprovalDecision)).first() is None
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    assert any(a.key == "reminder-filing-9-vp-instruction" for a in artifacts)


def test_filing_submit_bad_input_and_access(cli, archive: Archive, roster: None,
                                            tmp_path: Path, make_pdf) -> None:
    base = ["filing", "submit", "--branch", "SZ01", "--subject", "方案", "--no-start"]
    bad_kind = cli(*base, "--kind", "party", "--body", "x", user="bk1")
    assert bad_kind.code == 2 and "--kind" in bad_kind.err
    missing = cli(*base, "--kind", "recruitment", "--file", str(tmp_path / "none.txt"),
                  user="bk1")
    assert missing.code == 2 and "no such file" in missing.err
    other_branch = cli(*base, "--kind", "recruitment", "--body", "x", user="gzbm")
    assert other_branch.code == 3
    wrong_secret = cli(*base, "--kind", "recruitment", "--body", "x", user="bk1", secret="no")
    assert wrong_secret.code == 3
    with new_session(archive.engine) as session:
        assert session.exec(select(Filing)).first() is None

    attachment = tmp_path / "plan.pdf"
    attachment.write_bytes(b"%PDF-1.4\n% a scanned plan\n")  # not a PDF a reader opens
    broken = cli(*base, "--kind", "marketing_plan", "--file", str(attachment), user="bk1")
    assert broken.code == 2 and str(attachment) in broken.err and "signed" in broken.err
    attachment.write_bytes(make_pdf("营销方案扫描件"))
    ok = cli(*base, "--kind", "marketing_plan", "--file", str(attachment), user="bk1")
    assert ok.code == 0, ok.err
    filing_id = ok.out.split()[1]
    status = cli("filing", "status", filing_id, user="bm1")
    assert status.code == 0 and "waiting" in status.out
    assert cli("filing", "status", filing_id, user="gzbm").code == 3
    listing = cli("filing", "list", user="comp1")
    assert listing.code == 0 and "方案" in listing.out
    with new_session(archive.engine) as session:
        filing = session.exec(select(Filing)).one()
        assert filing.attachments.startswith('["SZ01-EXT-')
    no_run = cli("filing", "sign", filing_id, user="bo1")
    assert no_run.code == 2 and "no running chain" in no_run.err
