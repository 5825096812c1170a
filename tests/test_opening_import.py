"""Going live at a branch (SPEC §10): the branch's existing attributions and opening carried
state imported once as a batch, on the real Prefect test server, S3 endpoint and database --
the import list archived, the trading dept manager and the branch manager signing through the
real forms, the attributions counted by the closing's rule, the state read by the first
closing; bad files refused naming every row at once, nothing written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from openpyxl import Workbook
from sqlmodel import col, select

from brokerflow.approvals.attributions import effective_attributions, make_effective, preregister
from brokerflow.archive.service import Archive
from brokerflow.flows.opening_import import attribution_import
from brokerflow.kernel.calendar import month_end
from brokerflow.kernel.db import new_session
from brokerflow.kernel.idnumbers import check_digit
from brokerflow.kernel.models import (
    AccessLogEntry,
    Attribution,
    AuditEvent,
    PayrollRun,
    SerialRecord,
    TitleRecord,
)
from brokerflow.kernel.opening_models import OpeningCarry, OpeningImport
from brokerflow.payroll.records import opening_state
from tests.support.chain_driver import ChainDriver
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>

CHINESE = "资金账号,客户经理工号,生效日期,依据,客户姓名,证件号码"


def _id_number(first17: str) -> str:
    return first17 + check_digit(first17)


ZHAO = _id_number("11010519491231002")  # a valid resident ID (GB 11643)
QIAN = _id_number("44030419850612301")


def _gbk(path: Path, lines: list[str]) -> Path:
    """A CSV as Excel on Chinese Windows saves it (GBK)."""
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return path


def _import(cli, path: Path, *args: str, user: str = "tm1"):  # type: ignore[no-untyped-def]
    return cli("attribution", "import", str(path), "--branch", "SZ01", *args, user=user)


def _batch_id(out: str) -> int:
    found = re.search(r"opening import (\d+) waiting", out)
    assert found, out
    return int(found.group(1))


def _batch(archive: Archive, import_id: int) -> OpeningImport:
    with new_session(archive.engine) as session:
        batch = session.get(OpeningImport, import_id)
        assert batch is not None
        return batch


def _drive(archive: Archive, import_id: int) -> ChainDriver:
    driver = ChainDriver(
        lambda: attribution_import(import_id=import_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _batch(archive, import_id).flow_run_id,
        attempts=lambda: _batch(archive, import_id).form_attempts,
    ).start()
    driver.wait_paused()
    return driver


def _actions(archive: Archive, prefix: str) -> list[str]:
    with new_session(archive.engine) as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))
                if e.action.startswith(prefix)]


def _attributions(archive: Archive) -> list[Attribution]:
    with new_session(archive.engine) as session:
        return list(session.exec(select(Attribution).order_by(col(Attribution.id))))


def test_existing_attributions_are_imported_as_a_signed_batch_and_counted(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    path = _gbk(tmp_path / "归属.csv", [
        CHINESE,
        f"880010,cm3,2025年7月1日,2025年纸质客户确认登记表,钱多,{QIAN}",
        f"880002,cm1,2024/6/1,2024年纸质客户确认登记表,赵丽,{ZHAO}",
        "880001,cm1,2025-03-15,旧CRM系统归属记录,孙悦,",
    ])
    imported = _import(cli, path, "--no-start")
    assert imported.code == 0, imported.err
    import_id = _batch_id(imported.out)
    batch = _batch(archive, import_id)
    assert (batch.status, batch.kind, batch.row_count, batch.submitted_by) == (
        "waiting", "attributions", 3, "tm1")
    assert ZHAO not in batch.rows and ZHAO[:-4] not in batch.rows  # hash + last 4 only
    assert _attributions(archive) == []  # nothing counts before both signatures

    chain = _drive(archive, import_id)
    batch = _batch(archive, import_id)
    assert batch.list_serial.startswith("SZ01-CNF-")
    described = chain.description()
    for expected in ("期初客户归属导入清单 SZ01（3 户）", "杨帆（cm1）2 户", "尤佳（cm3）1 户",
                     batch.list_serial, "交易部经理 审核"):
        assert expected in described, expected
    chain.sign("bm1")                        # the branch manager approves after the review
    assert "holds none of the roles" in chain.description()
    chain.sign("tm1", opinion="与纸质登记表核对一致")
    chain.sign("tm1")                        # nobody signs two steps
    chain.sign("bm1", opinion="同意导入")
    assert chain.join() == "approved"

    batch = _batch(archive, import_id)
    assert batch.status == "approved" and batch.record_serial.startswith("SZ01-CNF-")
    rows = sorted(_attributions(archive), key=lambda a: a.client_id or "")
    assert [(a.client_id, a.cm_id, a.status, a.team, a.registered_by, a.confirmation_serial)
            for a in rows] == [
        ("880001", "cm1", "effective", "T1", "tm1", batch.list_serial),
        ("880002", "cm1", "effective", "T1", "tm1", batch.list_serial),
        ("880010", "cm3", "effective", "T2", "tm1", batch.list_serial)]
    # effective from 00:00 of the day in the branch's zone (Asia/Shanghai: UTC+8)
    assert rows[2].effective_at == datetime(2025, 6, 30, 16, 0, tzinfo=UTC)
    with new_session(archive.engine) as session:
        effective = effective_attributions(session, branch="SZ01")
    june, july = month_end("2025-06", archive.zone), month_end("2025-07", archive.zone)
    assert effective.counts(client_id="880010", cm_id="cm3", at=july)
    assert not effective.counts(client_id="880010", cm_id="cm3", at=june)
    assert effective.counts(client_id="880002", cm_id="cm1", at=month_end("2024-06",
                                                                           archive.zone))
    assert not effective.counts(client_id="880002", cm_id="cm3", at=july)
    assert _actions(archive, "attribution-imported") == ["attribution-imported"] * 3
    assert _actions(archive, "opening-import") == [
        "opening-import-submitted", "opening-import-applied", "opening-import-approved"]

    listed = pdf_text(archive.get(batch.list_serial, actor=user("bm1"))[1], tmp_path)
    for expected in ("期初客户归属导入清单", "880001", "880002", "880010", "赵丽",
                     "**************" + ZHAO[-4:], "（未提供）", "2025-07-01", "杨帆（cm1）",
                     "旧CRM系统归属记录"):
        assert expected in listed, expected
    assert ZHAO not in listed and QIAN not in listed
    assert listed.index("880001") < listed.index("880002") < listed.index("880010")
    signed = pdf_text(archive.get(batch.record_serial, actor=user("tm1"))[1], tmp_path)
    for expected in ("期初客户归属导入清单（签批生效）", "与纸质登记表核对一致", "同意导入",
                     "陈杰", "周涛", batch.list_serial):
        assert expected in signed, expected

    # the same clients again: refused row by row (the account; the person by ID number)
    again = _gbk(tmp_path / "again.csv", [
        CHINESE, "880003,cm2,2025-01-02,纸质登记表,新客户,",
        "880002,cm2,2025-01-02,纸质登记表,赵丽,",
        f"880099,cm2,2025-01-02,纸质登记表,赵丽,{ZHAO}"])
    refused = _import(cli, again, "--no-start")
    assert refused.code == 2, refused.out + refused.err
    assert "2 problems" in refused.err and "row 3, column client_id" in refused.err
    assert "account 880002 already has a effective attribution to cm1" in refused.err
    assert "row 4, column id_number" in refused.err and "…" + ZHAO[-4:] in refused.err
    listing = cli("attribution", "imports", "--format", "json", user="bm1")
    assert [(b["id"], b["status"], b["rows"]) for b in json.loads(listing.out)] == [
        (import_id, "approved", 3)]
    assert json.loads(cli("attribution", "imports", "--format", "json", user="cm1").out) == []


def _inbox(cli, user: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    result = cli("inbox", "--format", "json", user=user)
    assert result.code == 0, (result.out, result.err)
    rows: list[dict[str, str]] = json.loads(result.out)
    return rows


def test_a_waiting_batch_is_in_its_signers_inboxes(
    prefect_api: None, archive: Archive, roster: None, cli, tmp_path: Path
) -> None:
    path = _gbk(tmp_path / "归属.csv", [CHINESE, "880001,cm1,2025-03-15,纸质登记表,孙悦,",
                                       "880002,cm1,2025-04-01,纸质登记表,周敏,",
                                       "880003,cm3,2025-05-06,纸质登记表,吴昊,"])
    imported = _import(cli, path, "--no-start")
    assert imported.code == 0, imported.err
    import_id = _batch_id(imported.out)
    chain = _drive(archive, import_id)
    serial = _batch(archive, import_id).list_serial
    mine = _inbox(cli, "tm1")  # the importing trading manager reviews it
    assert [(r["kind"], r["subject"], r["serial"], r["branch"], r["step"], r["request_key"])
            for r in mine] == [("期初导入", "期初客户归属导入清单 SZ01（3 户）", serial, "SZ01",
                                "trading_manager", f"opening-import:{import_id}")]
    assert mine[0]["pdf_url"] == archive.document_link(serial)
    assert mine[0]["run_url"].endswith(f"/runs/flow-run/{chain.flow_run_id()}")
    assert _inbox(cli, "cm1") == [] and _inbox(cli, "bm1") == []  # not theirs (yet)
    chain.sign("tm1")
    assert _inbox(cli, "tm1") == []
    assert [r["step"] for r in _inbox(cli, "bm1")] == ["branch_manager"]
    assert _inbox(cli, "gzbm") == []  # another branch's manager
    chain.sign("bm1")
    assert chain.join() == "approved"
    assert _inbox(cli, "bm1") == []


def test_a_bad_file_names_every_bad_row_at_once_and_writes_nothing(
    archive: Archive, roster: None, cli, tmp_path: Path
) -> None:
    bad = _gbk(tmp_path / "bad.csv", [
        CHINESE,
        "880001,cm1,2025-03-15,纸质登记表,孙悦,",
        "880002,cm9,2025-03-15,纸质登记表,周敏,",            # not a CM of SZ01
        f"880003,cm2,2099-01-01,纸质登记表,吴昊,{ZHAO[:-1]}0",  # future, wrong check digit
        "880001,gzcm,2025-03-15,纸质登记表,孙悦,",          # repeated account, other branch
    ])
    refused = _import(cli, bad)
    assert refused.code == 2, refused.out + refused.err
    err = refused.err
    assert "bad.csv" in err and "5 problems" in err
    for expected in ("row 3, column cm_id: 'cm9' is not a CM of branch SZ01",
                     "row 4, column effective_date: 2099-01-01 is in the future",
                     "row 4, column id_number: the ID number the check digit",
                     "row 5, column client_id: account 880001 repeats row 2",
                     "row 5, column cm_id: 'gzcm'"):
        assert expected in err, expected
    assert "Traceback" not in err
    missing = _gbk(tmp_path / "missing.csv", ["资金账号,客户姓名", "880001,孙悦"])
    headers = _import(cli, missing)
    assert headers.code == 2 and "row 1" in headers.err
    for column in ("cm_id (客户经理工号)", "effective_date (生效日期)", "source (依据)"):
        assert column in headers.err, column
    empty = _gbk(tmp_path / "empty.csv", [CHINESE])
    assert _import(cli, empty).code == 2
    assert _import(cli, bad, "--kind", "clients").code == 2
    with new_session(archive.engine) as session:  # nothing written, no serial reserved
        assert session.exec(select(OpeningImport)).all() == []
        assert session.exec(select(SerialRecord)).all() == []
    assert _actions(archive, "opening-import") == []

    good = _gbk(tmp_path / "good.csv", [CHINESE, "880001,cm1,2025-03-15,纸质登记表,孙悦,"])
    for who in ("cm1", "bm1", "fm1", "gzbm"):  # only the branch's trading manager, or admin
        denied = _import(cli, good, "--no-start", user=who)
        assert denied.code == 3, (who, denied.out, denied.err)
    with new_session(archive.engine) as session:
        logged = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.allowed == False)).all()  # noqa: E712
        assert session.exec(select(OpeningImport)).all() == []
    assert {e.user_id for e in logged} >= {"cm1", "bm1", "fm1", "gzbm"}
    by_admin = _import(cli, good, "--no-start", user="admin1")
    assert by_admin.code == 0, by_admin.err
    twice = _import(cli, good, "--no-start")  # waiting in the admin's batch
    assert twice.code == 2 and "waiting for its signatures" in twice.err


def test_a_rejected_batch_applies_nothing_and_a_late_conflict_refuses_the_batch(
    prefect_api: None, archive: Archive, roster: None, cli, settings, user, tmp_path: Path
) -> None:
    deployment_id = attribution_import.to_deployment(name="attribution-import").apply()
    path = _gbk(tmp_path / "a.csv", [CHINESE, "880001,cm1,2025-03-15,纸质登记表,孙悦,",
                                     "880002,cm2,2025-04-01,纸质登记表,周敏,"])
    started = _import(cli, path, "--no-wait")  # no worker here: fire and forget
    assert started.code == 0, started.err
    import_id = _batch_id(started.out)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # started by deployment name
        run = client.read_flow_run(UUID(started.out.split()[-1]))
    assert run.deployment_id == deployment_id and run.parameters == {"import_id": import_id}
    chain = _drive(archive, import_id)  # the run the deployment made has no worker here
    chain.sign("tm1")
    chain.sign("bm1", decision="reject", opinion="需补充纸质登记表")
    assert chain.join() == "rejected"
    batch = _batch(archive, import_id)
    assert batch.status == "rejected" and _attributions(archive) == []
    record = pdf_text(archive.get(batch.record_serial, actor=user("bm1"))[1], tmp_path)
    assert "期初客户归属导入清单（未通过）" in record and "需补充纸质登记表" in record

    # imported again; while it waits the account is attributed through the verification chain
    again = _import(cli, path, "--no-start")
    assert again.code == 0, again.err
    second = _batch_id(again.out)
    chain = _drive(archive, second)
    with new_session(archive.engine) as session:
        claim = preregister(session, registrar=user("bk1"), cm_id="cm3", client_name="周敏",
                            id_number=ZHAO, asset_size="1000", hash_key=settings.id_hash_key)
        make_effective(session, attribution=claim, client_id="880002", actor_id="tm1")
        session.commit()
    chain.sign("tm1")
    chain.sign("bm1")
    assert chain.join() == "rejected"
    batch = _batch(archive, second)
    assert "row 3, column client_id: account 880002 already has a effective" in batch.note
    assert [(a.client_id, a.cm_id) for a in _attributions(archive)] == [("880002", "cm3")]
    assert _actions(archive, "opening-import-refused") == ["opening-import-refused"]
    record = pdf_text(archive.get(batch.record_serial, actor=user("bm1"))[1], tmp_path)
    assert "（未生效：与系统已有数据冲突）" in record and "880002" in record


def test_opening_state_is_imported_for_the_first_closing(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["工号", "截至月份", "超额奖励结转", "风险基金余额", "聘任职级",
                  "本年旷工半天数", "本年事假天数"])
    sheet.append(["cm3", datetime(2026, 9, 1), 0, 0, "高级", 0, 0])
    sheet.append(["cm1", "2026-09", 300, 1200.5, "经理", 1, 2.5])
    path = tmp_path / "state.xlsx"
    book.save(path)
    bad = tmp_path / "bad_state.csv"
    bad.write_text("cm_id,as_of,risk_fund_balance,title\ncm1,2026-13,-5,组长\n"
                   "cm2,2099-01,1.005,\n", encoding="utf-8-sig")
    refused = _import(cli, bad, "--kind", "state", "--no-start")
    assert refused.code == 2
    for expected in ("row 2, column as_of", "row 2, column risk_fund_balance",
                     "row 2, column title: '组长' is not a level",
                     "row 3, column as_of: 2099-01 is not over yet",
                     "row 3, column risk_fund_balance"):
        assert expected in refused.err, expected

    imported = _import(cli, path, "--kind", "state", "--no-start")
    assert imported.code == 0, imported.err
    import_id = _batch_id(imported.out)
    chain = _drive(archive, import_id)
    assert "期初结转状态导入清单 SZ01（2 人）" in chain.description()
    chain.sign("tm1")
    chain.sign("bm1")
    assert chain.join() == "approved"
    batch = _batch(archive, import_id)
    listed = pdf_text(archive.get(batch.list_serial, actor=user("bm1"))[1], tmp_path)
    for expected in ("期初结转状态导入清单", "1200.50", "300.00", "经理", "高级", "合计"):
        assert expected in listed, expected
    with new_session(archive.engine) as session:
        first = opening_state(session, branch="SZ01", month="2026-10", exported={})
        before = opening_state(session, branch="SZ01", month="2026-09", exported={})
        carries = session.exec(select(OpeningCarry)).all()
        titles = session.exec(select(TitleRecord).order_by(col(TitleRecord.cm_id))).all()
    cm1 = first["cm1"]
    assert (cm1.risk_fund_balance, cm1.excess_carry, cm1.title, cm1.as_of,
            cm1.ytd_absent_half_days, cm1.ytd_personal_leave_days) == (
        Decimal("1200.50"), Decimal("300.00"), "manager", "2026-09", 1, Decimal("2.50"))
    assert first["cm3"].title == "senior" and before == {}
    assert len(carries) == 2
    assert [(t.cm_id, t.title, t.effective_month, t.kind, t.approved_by) for t in titles] == [
        ("cm1", "manager", "2026-10", "opening", "tm1;bm1"),
        ("cm3", "senior", "2026-10", "opening", "tm1;bm1")]

    again = _import(cli, path, "--kind", "state", "--no-start")
    assert again.code == 2 and "has opening state already" in again.err
    with new_session(archive.engine) as session:  # after the first closing: no more imports
        session.add(PayrollRun(branch="SZ01", month="2026-10", status="closed"))
        session.commit()
    closed = _import(cli, path, "--kind", "state", "--no-start")
    assert closed.code == 2 and "before the first closing" in closed.err
