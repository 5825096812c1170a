"""Level changes (职级变动, SPEC §8.3) end to end on the real Prefect test server, S3 endpoint and
database: applications and their kinds, the three chains, LVL archived, titles effective from
the month after approval, demotions the closing proposes, HR notices."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from brokerflow.approvals.chain import EXCEPTIONAL_PROMOTION_CHAIN, PROMOTION_CHAIN
from brokerflow.approvals.level_changes import (
    chain_for,
    classify_application,
    effective_month,
)
from brokerflow.approvals.level_records import (
    current_title,
    propose_cm_conversions,
    propose_demotions,
    request_key,
    title_history,
)
from brokerflow.archive.service import Archive
from brokerflow.flows.level_change import level_change
from brokerflow.kernel.calendar import Month, previous_month, utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import (
    AccessLogEntry,
    ApprovalDecision,
    ArchiveEntry,
    AuditEvent,
    LevelChange,
    PayrollLineRecord,
    PayrollRun,
    StaffNotice,
    TitleRecord,
    User,
)
from brokerflow.payroll.notices import KIND_LABELS, raise_notices
from tests.support.chain_driver import ChainDriver
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>
#: The closing the applications rest on: last month, so that a change approved now takes effect
#: after it (the branch's default zone).
MONTH = previous_month(utcnow(), ZoneInfo("Asia/Shanghai"))


def _line(cm_id: str, **values: Any) -> dict[str, Any]:
    """A stored closing line (SPEC §6.3 + §8.1 keys the level change reads)."""
    return {"cm_id": cm_id, "name": "客户经理", "level": "manager", "asset_level": "manager",
            "title": "manager", "title_next": "manager", "avg_assets_3m": "3200000.00",
            "valid_accounts": 30, "new_value": "180000.00", "net_revenue": "52000.00",
            "score": "0.9100", "flags": [], **values}


def _closing(archive: Archive, lines: list[dict[str, Any]], *, month: str = MONTH) -> None:
    """A closed month of SZ01 with these lines, as the closing stores them."""
    with new_session(archive.engine) as session:
        run = PayrollRun(branch="SZ01", month=month, status="closed")
        session.add(run)
        session.flush()
        assert run.id is not None
        for line in lines:
            session.add(PayrollLineRecord(run_id=run.id, cm_id=line["cm_id"],
                                          line=json.dumps(line, ensure_ascii=False)))
        session.commit()


def _title(archive: Archive, cm_id: str, title: str, month: str = "2026-01") -> None:
    """An opening title (聘任职级) effective from ``month``."""
    with new_session(archive.engine) as session:
        session.add(TitleRecord(branch="SZ01", cm_id=cm_id, title=title, effective_month=month,
                                kind="opening", document="opening roster"))
        session.commit()


def _change(archive: Archive, change_id: int) -> LevelChange:
    with new_session(archive.engine) as session:
        change = session.get(LevelChange, change_id)
        assert change is not None
        return change


def _apply(cli, *args: str, user: str) -> int:  # type: ignore[no-untyped-def]
    result = cli("level", "apply", *args, "--no-start", user=user)
    assert result.code == 0, result.err
    found = re.search(r"level change (\d+) submitted", result.out)
    assert found, result.out
    return int(found.group(1))


def _drive(archive: Archive, change_id: int) -> ChainDriver:
    driver = ChainDriver(
        lambda: level_change(change_id=change_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _change(archive, change_id).flow_run_id,
        attempts=lambda: _change(archive, change_id).form_attempts,
    ).start()
    driver.wait_paused()
    return driver


def _steps(archive: Archive, change_id: int) -> list[tuple[str, str, str]]:
    with new_session(archive.engine) as session:
        rows = session.exec(select(ApprovalDecision).where(
            ApprovalDecision.request_key == request_key(change_id))
            .order_by(col(ApprovalDecision.id)))
        return [(r.step, r.signer_id, r.decision) for r in rows]


def _approved_month(archive: Archive, change_id: int) -> str:
    """The month (as the branch reads it) of the change's last signature."""
    with new_session(archive.engine) as session:
        last = session.exec(select(ApprovalDecision).where(
            ApprovalDecision.request_key == request_key(change_id))
            .order_by(col(ApprovalDecision.id).desc())).first()
    assert last is not None
    return last.decided_at.astimezone(archive.zone).strftime("%Y-%m")


# --------------------------------------------------------------------------- pure rules


def test_an_application_is_classified_from_the_title_and_the_closing_flags() -> None:
    assert classify_application(title="manager", asset_level="senior",
                                flags={"promotion_eligible"}, to_title="senior") == "promotion"
    assert classify_application(title="manager", asset_level="senior", flags=set(),
                                to_title="senior") == "exceptional_promotion"
    assert classify_application(title="assistant", asset_level="senior",
                                flags={"promotion_eligible"},
                                to_title="senior") == "exceptional_promotion"  # two levels
    assert classify_application(title="trainee", asset_level="trainee",
                                flags={"trainee_conversion_due"},
                                to_title="assistant") == "conversion"
    assert classify_application(title="trainee", asset_level="trainee", flags=set(),
                                to_title="assistant") == "exceptional_promotion"  # month 3
    assert classify_application(title=None, asset_level="assistant", flags=set(),
                                to_title="manager") == "exceptional_promotion"
    for title, to in (("manager", "director"), ("manager", "manager"), ("senior", "assistant"),
                      ("chief", "chief"), ("boss", "chief")):
        with pytest.raises(BadInput):
            classify_application(title=title, asset_level="manager", flags=set(), to_title=to)
    assert chain_for("conversion") is PROMOTION_CHAIN
    assert [s.name for s in chain_for("exceptional_promotion").steps] == [
        "supervisor", "project_director", "general_manager"]
    assert effective_month("2026-12") == "2027-01" and effective_month("2026-10") == "2026-11"


# --------------------------------------------------------------------------- (a) promotion


def test_an_eligible_promotion_is_signed_in_order_archives_lvl_and_takes_effect_next_month(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _title(archive, "cm1", "manager")
    _closing(archive, [_line("cm1", name="杨帆", asset_level="senior",
                             flags=["promotion_eligible"])])
    change_id = _apply(cli, "--cm", "cm1", "--to", "senior", "--reason",
                       "连续两个月资产达到高级标准，申请晋升", user="cm1")
    change = _change(archive, change_id)
    assert (change.kind, change.from_title, change.to_title, change.month, change.status) == (
        "promotion", "manager", "senior", MONTH, "waiting")
    chain = _drive(archive, change_id)
    form = chain.description()
    assert "职级变动 cm1 经理→高级" in form and "stationed_manager" in form
    chain.sign("cm1")                      # the applicant, and the CM, never signs
    chain.sign("sm2")                      # a stationed manager outside cm1's reporting line
    assert "reporting line" in chain.description()
    chain.sign("sm1", opinion="业绩属实，同意晋升")
    chain.sign("pd1", opinion="考核合格")
    chain.sign("bm1", opinion="同意")
    serial = chain.join()
    assert serial.startswith("SZ01-LVL-")
    assert _steps(archive, change_id) == [("supervisor", "sm1", "approve"),
                                          ("project_director", "pd1", "approve"),
                                          ("branch_manager", "bm1", "approve")]
    approved = _approved_month(archive, change_id)
    effective = str(Month.parse(approved).minus(-1))
    change = _change(archive, change_id)
    assert (change.status, change.lvl_serial, change.effective_month) == (
        "approved", serial, effective)
    _, pdf = archive.get(serial, actor=user("cm1"))  # the CM reads their own notice
    text = pdf_text(pdf, tmp_path)
    for expected in ("职级变动通知", "杨帆", "cm1", "晋升", "经理", "高级", "韩梅", "卫东", "周涛",
                     "业绩属实，同意晋升", "考核合格", effective, "可申请晋升"):
        assert expected in text, expected
    with new_session(archive.engine) as session:
        records = title_history(session, branch="SZ01", cm_id="cm1")
        assert [(r.title, r.effective_month) for r in records] == [
            ("manager", "2026-01"), ("senior", effective)]
        assert records[-1].document == serial and records[-1].approved_by == "sm1;pd1;bm1"
        assert current_title(session, branch="SZ01", cm_id="cm1", month=approved) == "manager"
        assert current_title(session, branch="SZ01", cm_id="cm1", month=effective) == "senior"
        refused = session.exec(select(AuditEvent).where(
            AuditEvent.request_key == request_key(change_id),
            AuditEvent.action == "refused")).all()
    assert len(refused) == 2
    again = cli("level", "apply", "--cm", "cm1", "--to", "chief", "--reason", "再次申请",
                "--no-start", user="cm1")
    assert again.code == 2 and effective in again.err  # flags predate the new title


# --------------------------------------------------------------------------- (b) 破格


def test_an_exceptional_promotion_ends_with_the_general_manager(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _title(archive, "cm2", "assistant")
    _closing(archive, [_line("cm2", name="朱琳", title="assistant", level="assistant",
                             asset_level="senior", flags=[])])
    change_id = _apply(cli, "--cm", "cm2", "--to", "senior", "--reason", "业绩突出，破格晋升",
                       user="sm1")  # the supervisor applies
    change = _change(archive, change_id)
    assert change.kind == "exceptional_promotion" and change.proposed_by == "sm1"
    steps = chain_for(change.kind).steps
    assert len(steps) == 3 and steps[-1].name == "general_manager"
    assert steps[-1] is EXCEPTIONAL_PROMOTION_CHAIN.steps[-1]
    chain = _drive(archive, change_id)
    chain.sign("sm1")                      # the applicant may not sign
    chain.sign("rm1", opinion="同意")       # the regional manager above cm2's supervisor
    chain.sign("pd1", opinion="考核优秀")
    assert "营业部总经理 批准（破格晋升）" in chain.description()
    chain.sign("bm1", opinion="同意破格晋升")
    serial = chain.join()
    assert [s for s, _, _ in _steps(archive, change_id)] == [
        "supervisor", "project_director", "general_manager"]
    text = pdf_text(archive.get(serial, actor=user("bm1"))[1], tmp_path)
    for expected in ("破格晋升", "助理", "高级", "营业部总经理", "沈亮", "同意破格晋升"):
        assert expected in text, expected


# --------------------------------------------------------------------------- (c) demotion


def test_a_demotion_the_closing_proposes_is_confirmed_by_the_branch_manager(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    lines = [_line("cm3", name="尤佳", level="manager", title="manager",
                   title_next="assistant", score="0.5000",
                   flags=["score_below_60", "score_demotion_due"]),
             _line("cm1", flags=["promotion_eligible"])]
    _closing(archive, lines)
    with new_session(archive.engine) as session:
        (proposed,) = propose_demotions(session, branch="SZ01", month=MONTH, lines=lines)
        session.commit()
        assert propose_demotions(session, branch="SZ01", month=MONTH, lines=lines) == []
    assert (proposed.kind, proposed.from_title, proposed.to_title, proposed.status,
            proposed.proposed_by) == ("demotion", "manager", "assistant", "proposed", "system")
    assert proposed.reason == "score_demotion_due: 连续两个月月度绩效考核得分低于60分（第十八条2）"
    assert proposed.id is not None
    change_id = proposed.id
    assert cli("level", "start", str(change_id), user="dm1").code == 3
    assert cli("level", "start", str(change_id), user="gzbm").code == 3
    deployment_id = level_change.to_deployment(name="level-change").apply()
    started = cli("level", "start", str(change_id), "--no-wait", user="bm1")
    assert started.code == 0, started.err
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(started.out.split()[-1]))
    assert run.deployment_id == deployment_id and run.parameters == {"change_id": change_id}
    listed = cli("level", "list", "--format", "json", user="bm1")
    assert [(r["id"], r["status"]) for r in json.loads(listed.out)] == [(change_id, "proposed")]
    assert json.loads(cli("level", "list", "--format", "json", user="cm1").out) == []
    chain = _drive(archive, change_id)     # the run the deployment made has no worker here
    assert "营业部经理 确认降级" in chain.description()
    chain.sign("bm1", opinion="确认降级")
    serial = chain.join()
    assert _steps(archive, change_id) == [("branch_manager", "bm1", "approve")]
    effective = str(Month.parse(_approved_month(archive, change_id)).minus(-1))
    with new_session(archive.engine) as session:
        before = str(Month.parse(effective).minus(1))
        assert current_title(session, branch="SZ01", cm_id="cm3", month=before) is None
        assert current_title(session, branch="SZ01", cm_id="cm3", month=effective) == "assistant"
    text = pdf_text(archive.get(serial, actor=user("cm3"))[1], tmp_path)
    for expected in ("降级", "经理", "助理", "连续两个月月度绩效考核得分低于60分", "确认降级",
                     "周涛", "尤佳", "系统"):
        assert expected in text, expected
    assert "score_demotion_due" not in text and "manager" not in text  # labels, never codes


# --------------------------------------------------------------------------- (d) rejected


def test_a_rejected_change_records_no_title(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    _title(archive, "cm1", "manager")
    _closing(archive, [_line("cm1", asset_level="senior", flags=["promotion_eligible"])])
    change_id = _apply(cli, "--cm", "cm1", "--to", "senior", "--reason", "申请晋升", user="cm1")
    chain = _drive(archive, change_id)
    chain.sign("sm1")
    chain.sign("pd1", decision="reject", opinion="客户质量待观察")
    assert chain.join() == "rejected"
    change = _change(archive, change_id)
    assert (change.status, change.lvl_serial, change.effective_month) == ("rejected", "", "")
    with new_session(archive.engine) as session:
        assert [r.title for r in session.exec(select(TitleRecord))] == ["manager"]
        # the chain's end is archived all the same: the record of the decisions, no dates
        [record] = session.exec(select(ArchiveEntry)).all()
        audited = session.exec(select(AuditEvent).where(
            AuditEvent.action == "level-change-rejected")).one()
    assert record.doc_type == "LVL" and record.cm_id == "cm1"
    assert json.loads(audited.content)["details"]["record"] == record.serial
    text = pdf_text(archive.get(record.serial, actor=user("cm1"))[1], tmp_path)
    assert "职级变动审批记录（未通过）" in text and "客户质量待观察" in text
    assert "生效月份" not in text and "未同意" in text
    listed = cli("level", "list", user="sm1")  # the supervisor sees their team member's
    assert listed.code == 0 and f"{change_id} cm1 promotion manager→senior [rejected]" in listed.out


# --------------------------------------------------------------------------- (e) refusals


def test_bad_applications_exit_2_and_someone_elses_exit_3(
    archive: Archive, roster: None, cli
) -> None:
    no_closing = cli("level", "apply", "--cm", "cm1", "--to", "senior", "--reason", "x",
                     "--no-start", user="cm1")
    assert no_closing.code == 2 and "closing" in no_closing.err
    _title(archive, "cm1", "manager")
    _closing(archive, [_line("cm1", asset_level="senior", flags=["promotion_eligible"]),
                       _line("cm2", title="chief", level="chief", asset_level="chief")])
    base = ["level", "apply", "--cm", "cm1", "--reason", "申请", "--no-start"]
    unknown = cli(*base, "--to", "director", user="cm1")
    assert unknown.code == 2 and "unknown level" in unknown.err and "--to" in unknown.err
    for level in ("manager", "assistant"):
        same = cli(*base, "--to", level, user="cm1")
        assert same.code == 2 and "not above" in same.err, level
    top = cli("level", "apply", "--cm", "cm2", "--to", "chief", "--reason", "x", "--no-start",
              user="cm2")
    assert top.code == 2 and "no level above" in top.err
    for stranger in ("cm2", "sm2", "gzbm"):
        denied = cli(*base, "--to", "senior", user=stranger)
        assert denied.code == 3, stranger
    assert cli(*base, "--to", "senior", user="cm1", secret="wrong").code == 3
    assert cli("level", "apply", "--cm", "nobody", "--to", "senior", "--reason", "x",
               "--no-start", user="cm1").code == 4
    assert cli("level", "list", "--branch", "SZ01", user="gzbm").code == 3
    with new_session(archive.engine) as session:
        assert session.exec(select(LevelChange)).all() == []
        denied_rows = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.action == "apply", col(AccessLogEntry.allowed).is_(False))).all()
    assert {r.user_id for r in denied_rows} == {"cm2", "sm2", "gzbm"}


# --------------------------------------------------------------------------- (f) HR notices


def test_hr_notices_are_raised_once_and_change_nothing_else(
    archive: Archive, roster: None
) -> None:
    lines = [_line("cm3", title="assistant", title_next="trainee",
                   flags=["score_demotion_due", "termination_right"]),
             _line("cm1", flags=["promotion_eligible"])]
    with new_session(archive.engine) as session:
        (notice,) = raise_notices(session, branch="SZ01", month=MONTH, lines=lines)
        session.commit()
        assert raise_notices(session, branch="SZ01", month=MONTH, lines=lines) == []
        session.commit()
        notices = session.exec(select(StaffNotice)).all()
        cm3 = session.get(User, "cm3")
        assert session.exec(select(LevelChange)).all() == []
        assert session.exec(select(TitleRecord)).all() == []
    assert [(n.branch, n.cm_id, n.kind, n.month, n.status) for n in notices] == [
        ("SZ01", "cm3", "termination_right", MONTH, "open")]
    assert notice.id == notices[0].id
    assert "人事通知" in KIND_LABELS[notice.kind]
    assert cm3 is not None and cm3.left_on is None  # nobody's status changes


def test_the_evaluation_proposes_a_conversion_to_sales_cm_beside_a_closing_demotion(
    archive: Archive, roster: None
) -> None:
    _title(archive, "rm1", "senior")
    lines = [_line("rm1", title="senior", level="senior", title_next="manager",
                   flags=["score_demotion_due"])]
    results = [{"evaluatee_id": "rm1", "role": "regional", "total": "55.00",
                "flags": ["below_60", "convert_to_cm"]},
               {"evaluatee_id": "sm1", "role": "regional", "total": "80.00", "flags": []}]
    with new_session(archive.engine) as session:
        (demotion,) = propose_demotions(session, branch="SZ01", month=MONTH, lines=lines)
        (conversion,) = propose_cm_conversions(session, branch="SZ01", month=MONTH,
                                               results=results)
        assert propose_cm_conversions(session, branch="SZ01", month=MONTH,
                                      results=results) == []
        session.commit()
    assert (demotion.from_title, demotion.to_title) == ("senior", "manager")
    assert (conversion.kind, conversion.from_title, conversion.to_title, conversion.status) == (
        "demotion", "senior", "senior", "proposed")
    assert conversion.reason.startswith("convert_to_cm: ")
