"""The filing chain end to end on the real Prefect test server, S3 endpoint and database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.approvals.filings import create_filing, request_key
from brokerflow.archive.service import Archive
from brokerflow.flows.filing import filing_chain
from brokerflow.kernel.audit import verify_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ApprovalDecision, AuditEvent, Filing
from tests.support.chain_driver import ChainDriver, run_found_by_name
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>


def _filing(archive: Archive, filing_id: int) -> Filing:
    with new_session(archive.engine) as session:
        filing = session.get(Filing, filing_id)
        assert filing is not None
        return filing


@pytest.fixture
def submit(archive: Archive, user, prefect_api: None):
    """Create a filing as ``bk1`` of SZ01 and start its chain (in-process pauses)."""

    def start(subject: str = "2027年度营销方案", submitter: str = "bk1") -> tuple[int, ChainDriver]:
        with new_session(archive.engine) as session:
            filing = create_filing(session, branch="SZ01", kind="marketing_plan",
                                   subject=subject, body="拟于2027年开展银行网点驻点营销。",
                                   submitter=user(submitter))
            session.commit()
            filing_id = filing.id
        assert filing_id is not None
        driver = ChainDriver(
            lambda: filing_chain(filing_id=filing_id, wait="pause", poll_interval=0.1),
            run_id=lambda: _filing(archive, filing_id).flow_run_id,
            attempts=lambda: _filing(archive, filing_id).form_attempts,
        ).start()
        driver.wait_paused()
        return filing_id, driver

    return start


def _decisions(archive: Archive, filing_id: int) -> list[tuple[int, str, str, str]]:
    with new_session(archive.engine) as session:
        rows = session.exec(select(ApprovalDecision).where(
            ApprovalDecision.request_key == request_key(filing_id)).order_by(ApprovalDecision.id))
        return [(r.revision, r.step, r.signer_id, r.decision) for r in rows]


def test_happy_path_with_two_countersigners_in_reverse_order(
    archive: Archive, submit, user, tmp_path: Path
) -> None:
    filing_id, chain = submit()
    filing = _filing(archive, filing_id)
    assert filing.current_serial.startswith("SZ01-FIL-")
    first_form = chain.description()
    assert "2027年度营销方案" in first_form and filing.current_serial in first_form
    assert "brokerage_office" in first_form
    chain.sign("bo1", opinion="转渠道管理部")
    chain.sign("ch1", opinion="请合规、风控会签", departments=["compliance", "risk"])
    waiting = chain.description()
    assert "compliance, risk" in waiting and "请合规、风控会签" in waiting
    chain.sign("risk1", opinion="风险可控")
    assert "Already countersigned: risk" in chain.description()
    chain.sign("comp1", opinion="合规无异议")
    chain.sign("bo2", opinion="已报备")
    chain.sign("vp1", opinion="同意执行")
    fop_serial = chain.join()
    assert fop_serial.startswith("SZ01-FOP-")
    assert _decisions(archive, filing_id) == [
        (1, "office_receive", "bo1", "approve"), (1, "channel_review", "ch1", "approve"),
        (1, "countersign", "risk1", "approve"), (1, "countersign", "comp1", "approve"),
        (1, "office_complete", "bo2", "approve"), (1, "vp_instruction", "vp1", "approve"),
    ]
    filing = _filing(archive, filing_id)
    assert (filing.status, filing.result_serial) == ("approved", fop_serial)
    _, pdf = archive.get(fop_serial, actor=user("bm1"))  # made available to the branch
    text = pdf_text(pdf, tmp_path)
    for expected in ("会签意见", "风险可控", "合规无异议", "同意执行", filing.current_serial,
                     "合规管理部", "风险管理部"):
        assert expected in text, expected
    assert not re.search(r"\b(compliance|risk)\b", text)  # departments by name, never by code
    with new_session(archive.engine) as session:
        assert verify_audit(session) == []


def test_reject_at_countersign_ends_the_chain(archive: Archive, submit) -> None:
    filing_id, chain = submit()
    chain.sign("bo1")
    chain.sign("ch1", departments=["compliance", "risk"])
    chain.sign("comp1", decision="reject", opinion="不符合监管要求")
    result = chain.join()
    assert result.startswith("SZ01-FOP-")
    filing = _filing(archive, filing_id)
    assert filing.status == "rejected"
    assert [d[1:] for d in _decisions(archive, filing_id)][-1] == (
        "countersign", "comp1", "reject")


def test_return_and_resubmit_starts_a_new_revision(archive: Archive, submit) -> None:
    filing_id, chain = submit()
    first_serial = _filing(archive, filing_id).current_serial
    chain.sign("bo1")
    chain.sign("ch1", decision="return", opinion="请补充预算")
    assert _filing(archive, filing_id).status == "returned"
    assert "请补充预算" in chain.description()
    chain.submit({"signer": "bo1", "secret": "pw-bo1", "action": "resubmit"})  # not the submitter
    assert _filing(archive, filing_id).revision == 1
    chain.submit({"signer": "bk1", "secret": "pw-bk1", "action": "resubmit",
                  "subject": "2027年度营销方案（修订）", "body": "补充了预算。"})
    filing = _filing(archive, filing_id)
    assert (filing.revision, filing.status) == (2, "waiting")
    assert filing.subject == "2027年度营销方案（修订）"
    assert filing.current_serial and filing.current_serial != first_serial
    chain.sign("bo1")  # the same reviewers sign the new revision
    chain.sign("ch1", departments=[])
    chain.sign("bo2")
    chain.sign("vp1", opinion="同意")
    chain.join()
    assert _filing(archive, filing_id).status == "approved"
    revisions = [d[0] for d in _decisions(archive, filing_id)]
    assert revisions == [1, 1, 2, 2, 2, 2]


def test_invalid_forms_change_nothing_and_are_audited(archive: Archive, submit) -> None:
    filing_id, chain = submit()
    chain.sign("bo1", secret="wrong")                       # wrong secret
    chain.sign("ch1")                                       # wrong role for this step
    chain.sign("bk1")                                       # the submitter
    chain.sign("bo1", decision="reject")                    # reject needs an opinion
    assert _decisions(archive, filing_id) == []
    assert "opinion is required" in chain.description()
    chain.sign("bo1")
    chain.sign("bo1", opinion="again")                      # same person, second step
    chain.sign("ch1", departments=["compliance", "astrology"])  # unknown department
    assert "astrology" in chain.description()
    chain.sign("ch1", departments=["compliance"])
    chain.sign("risk1")                                     # risk was not named
    chain.sign("comp1")
    assert [d[2] for d in _decisions(archive, filing_id)] == ["bo1", "ch1", "comp1"]
    with new_session(archive.engine) as session:
        refused = session.exec(select(AuditEvent).where(AuditEvent.action == "refused")).all()
        reasons = " | ".join(e.content for e in refused)
        assert len(refused) == 7
        assert "pw-bo1" not in reasons and "wrong" not in {e.actor_id for e in refused}
    assert _filing(archive, filing_id).form_attempts == 10


def test_audit_tamper_is_detected(archive: Archive, submit, cli) -> None:
    filing_id, chain = submit()
    chain.sign("bo1", opinion="转报")
    chain.sign("ch1", departments=[])
    assert cli("audit", "verify", user="comp1").code == 0
    with new_session(archive.engine) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.action == "decision")).first()
        assert event is not None
        event.content = event.content.replace("转报", "驳回")
        session.add(event)
        session.commit()
    result = cli("audit", "verify", user="comp1")
    assert result.code == 1 and "edited" in result.out


def test_submission_started_from_the_ui_is_confirmed_by_the_submitter(
    archive: Archive, prefect_api: None, user
) -> None:

    from sqlmodel import func

    run_name = "ui-submission-test"

    run_id = run_found_by_name(run_name)

    def audit_rows() -> int:
        with new_session(archive.engine) as session:
            return session.exec(select(func.count()).select_from(AuditEvent)).one()

    chain = ChainDriver(
        lambda: filing_chain.with_options(flow_run_name=run_name)(
            branch="SZ01", kind="assessment", subject="客户经理考核办法", body="按季度考核。",
            submitter="bk1", wait="pause", poll_interval=0.1),
        run_id=run_id, attempts=audit_rows,
    ).start()
    chain.wait_paused()
    assert "bk1" in chain.description()
    chain.submit({"signer": "bk1", "secret": "wrong"})
    chain.submit({"signer": "bo1", "secret": "pw-bo1"})  # not the named submitter
    with new_session(archive.engine) as session:
        assert session.exec(select(Filing)).first() is None
    chain.submit({"signer": "bk1", "secret": "pw-bk1"})
    chain.wait_paused()
    with new_session(archive.engine) as session:
        filing = session.exec(select(Filing)).one()
    assert (filing.submitter_id, filing.kind, filing.flow_run_id) == ("bk1", "assessment",
                                                                       run_id())
    assert filing.current_serial.startswith("SZ01-FIL-")
    assert "office_receive" in chain.description()
