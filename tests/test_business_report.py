"""The branch business report (营业部业务月报 RPT, seed 002 第六条, 第二十二条; SPEC §8.3): pure
figures per team, half-year sums, and the closing that archives RPT after PAS, with
``brokerflow report show`` under SPEC §5 access."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from brokerflow.archive.index import SearchFilter
from brokerflow.archive.service import Archive
from brokerflow.flows.business_report import archive_business_reports, report_key
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import AuditEvent, LevelChange, TitleRecord
from brokerflow.payroll.business_report import (
    StaffChange,
    build_month_report,
    document_data,
    parse_period,
    periods_ending,
    report_json,
    report_refusal,
    sum_reports,
)
from brokerflow.payroll.records import run_lines
from brokerflow.payroll.report_records import closed_month_report, period_report
from tests.support.closings import close_month
from tests.support.payroll_data import client_row, staff_row, write_export
from tests.support.pdf import pdf_text


def _line(cm_id: str, site: str, **values: Any) -> dict[str, Any]:
    """A stored closing line: SPEC §6.3 keys and what the closing keeps for the report."""
    return {"cm_id": cm_id, "name": f"姓名{cm_id}", "position": "cm", "site": site,
            "valid_accounts": 1, "accounts_opened": 2, "new_value": "10000.00",
            "net_revenue": "100.00", "gross": "2000.00", "net_pay": "1900.00",
            "risk_fund_withheld": "100.00", "hire_date": "2020-01-15", "leave_date": None,
            **values}


# --------------------------------------------------------------------------- pure


def test_teams_are_in_natural_order_and_sum_their_lines_against_last_month() -> None:
    lines = [_line("cm10", "网点10", net_revenue="300.50"),
             _line("cm2", "网点2", hire_date="2026-10-08", valid_accounts=3),
             _line("cm3", "网点2", leave_date="2026-10-31", new_value="0.00"),
             _line("cm4", "", accounts_opened=0)]
    previous = [_line("cm2", "网点2", net_revenue="150.00"),
                _line("cm9", "网点9", net_revenue="80.00")]  # a team gone this month
    level = StaffChange(month="", cm_id="cm10", kind="promotion", from_title="assistant",
                        to_title="manager", lvl_serial="SZ01-LVL-2026-000004")
    report = build_month_report(branch="SZ01", month="2026-10", lines=lines,
                                previous_lines=previous, level_changes=[level],
                                pas_serial="SZ01-PAS-2026-000002")
    data = report_json(report)
    assert [t["team"] for t in data["teams"]] == ["网点2", "网点9", "网点10", "（未填网点）"]
    two, nine, ten, none = data["teams"]
    assert (two["staff"], two["accounts_opened"], two["valid_accounts"], two["new_value"],
            two["net_revenue"], two["gross"], two["net_pay"]) == (
        2, 4, 4, "10000.00", "200.00", "4000.00", "3800.00")
    assert (two["net_revenue_last"], two["net_revenue_change"],
            two["net_revenue_change_rate"]) == ("150.00", "50.00", "+33.33%")
    assert (nine["staff"], nine["net_revenue"], nine["net_revenue_change"]) == (
        0, "0.00", "-80.00")
    assert (ten["net_revenue"], ten["net_revenue_last"], ten["net_revenue_change_rate"]) == (
        "300.50", "0.00", None)  # no base: no rate
    assert none["accounts_opened"] == 0
    total = data["total"]
    assert (total["team"], total["staff"], total["accounts_opened"], total["net_revenue"],
            total["net_revenue_last"], total["gross"]) == (
        "合计", 4, 6, "600.50", "230.00", "8000.00")
    assert data["payroll"] == {"gross": "8000.00", "net_pay": "7600.00",
                               "risk_fund_withheld": "400.00"}
    assert [(c["cm_id"], c["date"]) for c in data["joins"]] == [("cm2", "2026-10-08")]
    assert [(c["cm_id"], c["date"]) for c in data["leaves"]] == [("cm3", "2026-10-31")]
    (change,) = data["level_changes"]
    assert (change["cm_id"], change["team"], change["name"], change["kind_label"],
            change["from_label"], change["to_label"], change["lvl_serial"]) == (
        "cm10", "网点10", "姓名cm10", "晋升", "助理", "经理", "SZ01-LVL-2026-000004")
    assert data["pas_serial"] == "SZ01-PAS-2026-000002" and data["previous_closed"] is True


def test_money_is_rounded_half_up_and_a_month_without_last_month_shows_none() -> None:
    lines = [_line("cm1", "A", new_value="0.005"), _line("cm2", "A", new_value="0.01")]
    data = report_json(build_month_report(branch="SZ01", month="2026-10", lines=lines,
                                          previous_lines=None))
    assert data["teams"][0]["new_value"] == "0.02"  # 0.015 half-up, not to even
    assert data["previous_closed"] is False
    assert data["total"]["net_revenue_last"] is None
    assert data["total"]["net_revenue_change"] is None
    assert "上月未结账，无环比数据。" in data["notes"]
    lines = [{"cm_id": "cm1", "net_revenue": "12.00"}]  # a line stored before the new keys
    old = report_json(build_month_report(branch="SZ01", month="2026-10", lines=lines,
                                         previous_lines=None))
    assert (old["teams"][0]["team"], old["teams"][0]["accounts_opened"], old["joins"]) == (
        "（未填网点）", 0, [])


def _month(month: str, lines: list[dict[str, Any]], **values: Any) -> Any:
    return build_month_report(branch="SZ01", month=month, lines=lines, previous_lines=None,
                              pas_serial=f"SZ01-PAS-2026-{month[5:]}", **values)


def test_a_half_year_sums_its_closed_months_and_names_the_missing_ones() -> None:
    march = _month("2026-03", [_line("cm1", "网点1"), _line("cm2", "网点2")])
    may = _month("2026-05", [_line("cm1", "网点1", hire_date="2026-05-02",
                                   net_revenue="50.25")],
                 level_changes=[StaffChange(month="", cm_id="cm1", kind="demotion",
                                            from_title="manager", to_title="assistant",
                                            lvl_serial="SZ01-LVL-2026-000009")])
    half = sum_reports("SZ01", "2026H1", [may, march])
    data = report_json(half)
    assert (data["kind"], data["period"], data["period_label"]) == ("half", "2026H1",
                                                                   "2026年上半年")
    assert data["months"] == ["2026-03", "2026-05"]
    assert data["missing_months"] == ["2026-01", "2026-02", "2026-04", "2026-06"]
    assert [c["pas_serial"] for c in data["closings"]] == ["SZ01-PAS-2026-03",
                                                            "SZ01-PAS-2026-05"]
    one, two = data["teams"]
    # counts and money summed over the months; staff at the period's last closed month
    assert (one["team"], one["staff"], one["accounts_opened"], one["net_revenue"],
            one["gross"]) == ("网点1", 1, 4, "150.25", "4000.00")
    assert (two["team"], two["staff"], two["accounts_opened"], two["net_revenue"]) == (
        "网点2", 0, 2, "100.00")
    assert (data["total"]["staff"], data["total"]["valid_accounts"],
            data["total"]["net_revenue"], data["payroll"]["net_pay"]) == (
        1, 3, "250.25", "5700.00")
    assert [(c["month"], c["cm_id"]) for c in data["joins"]] == [("2026-05", "cm1")]
    assert [c["lvl_serial"] for c in data["level_changes"]] == ["SZ01-LVL-2026-000009"]
    assert "未结账 4 个月" in data["notes"][0]
    assert document_data(half)["title"] == "营业部半年度业务报告"
    year = report_json(sum_reports("SZ01", "2026", [march]))
    assert len(year["missing_months"]) == 11 and year["total"]["net_revenue"] == "200.00"
    with pytest.raises(ValueError, match="not of SZ01 2026H2"):
        sum_reports("SZ01", "2026H2", [march])
    with pytest.raises(ValueError, match="given twice"):
        sum_reports("SZ01", "2026H1", [march, march])


def test_periods_parse_or_name_the_option() -> None:
    assert parse_period("2026-10").months == ("2026-10",)
    assert parse_period("2026H2").months == tuple(f"2026-{m:02d}" for m in range(7, 13))
    assert len(parse_period("2026").months) == 12
    for bad in ("2026-13", "2026H3", "26-10", "2026Q1", ""):
        with pytest.raises(BadInput, match="--period"):
            parse_period(bad)
    assert [p.text for p in periods_ending("2026-06")] == ["2026H1"]
    assert [p.text for p in periods_ending("2026-12")] == ["2026H2", "2026"]
    assert periods_ending("2026-07") == []


def test_who_may_read_a_branch_report() -> None:
    def person(branch: str, *roles: str) -> UserView:
        return UserView(user_id="u", name="u", branch=branch, roles=frozenset(roles))

    assert report_refusal(person("HQ", "compliance"), branch="SZ01") is None
    for role in ("branch_manager", "deputy_manager", "finance_manager", "chief_accountant",
                 "stationed_manager", "regional_manager", "project_director"):
        assert report_refusal(person("SZ01", role), branch="SZ01") is None, role
    assert report_refusal(person("SZ01", "cm"), branch="SZ01") is not None
    assert report_refusal(person("SZ01", "counter_clerk"), branch="SZ01") is not None
    assert report_refusal(person("GZ02", "branch_manager"), branch="SZ01") is not None


# --------------------------------------------------------------------------- with the closing


MAY, JUNE = "2026-05", "2026-06"


def _exports(root: Path) -> tuple[Path, Path]:
    """May and June of SZ01: teams 网点2 (cm1, sm1) and 网点10 (cm2; cm3 joins in June);
    cm1 leaves in June."""
    may = write_export(root / MAY, staff=[
        staff_row("cm1", month=MAY, name="杨帆", site="网点2", supervisor_id="sm1"),
        staff_row("cm2", month=MAY, name="朱琳", site="网点10", supervisor_id="sm1"),
        staff_row("sm1", month=MAY, name="韩梅", site="网点2", position="stationed")],
        clients=[
        client_row("a1", "cm1", month=MAY, open_date="2026-05-10", assets="10000",
                   gross_commission="1000"),
        client_row("a2", "cm2", month=MAY, gross_commission="2000"),
        client_row("a3", "sm1", month=MAY, open_date="2026-05-03", assets="100")])
    june = write_export(root / JUNE, staff=[
        staff_row("cm1", month=JUNE, name="杨帆", site="网点2", supervisor_id="sm1",
                  leave_date="2026-06-20"),
        staff_row("cm2", month=JUNE, name="朱琳", site="网点10", supervisor_id="sm1"),
        staff_row("cm3", month=JUNE, name="尤佳", site="网点10", hire_date="2026-06-08"),
        staff_row("sm1", month=JUNE, name="韩梅", site="网点2", position="stationed")],
        clients=[
        client_row("b1", "cm1", month=JUNE, open_date="2026-06-02", assets="20000",
                   gross_commission="3000"),
        client_row("b2", "cm2", month=JUNE, open_date="2026-06-05", assets="8000",
                   gross_commission="500"),
        client_row("b4", "cm2", month=JUNE, open_date="2026-06-06", purchases="6000"),
        client_row("b3", "cm3", month=JUNE, open_date="2026-06-09", assets="3000")])
    return may, june


def _approved_changes(archive: Archive) -> None:
    """Level changes as the level-change flow leaves them (its chain: test_level_change.py):
    cm2's, approved in May, takes effect in June; one approved in June (effective July) and
    one still waiting are not June's."""
    with new_session(archive.engine) as session:
        session.add(LevelChange(branch="SZ01", cm_id="cm2", kind="promotion",
                                from_title="assistant", to_title="manager", month="2026-04",
                                reason="资产达标", proposed_by="cm2", status="approved",
                                effective_month=JUNE, lvl_serial="SZ01-LVL-2026-000003"))
        session.add(TitleRecord(branch="SZ01", cm_id="cm2", title="manager",
                                effective_month=JUNE, kind="promotion",
                                document="SZ01-LVL-2026-000003", request_key="level:1"))
        session.add(LevelChange(branch="SZ01", cm_id="sm1", kind="promotion",
                                from_title="manager", to_title="senior", month=MAY,
                                reason="x", proposed_by="sm1", status="approved",
                                effective_month="2026-07", lvl_serial="SZ01-LVL-2026-000005"))
        session.add(LevelChange(branch="SZ01", cm_id="cm1", kind="promotion",
                                to_title="senior", month=MAY, reason="x", proposed_by="cm1"))
        session.commit()


def _team_sums(lines: list[dict[str, Any]], site: str) -> dict[str, Any]:
    mine = [line for line in lines if line["site"] == site]
    return {"staff": len(mine),
            "accounts_opened": sum(int(line["accounts_opened"]) for line in mine),
            "valid_accounts": sum(int(line["valid_accounts"]) for line in mine),
            **{key: f"{sum(Decimal(line[key]) for line in mine):.2f}"
               for key in ("new_value", "net_revenue", "gross", "net_pay")}}


@pytest.mark.usefixtures("development")
def test_the_closing_archives_rpt_after_pas_and_june_archives_the_half_year(
        prefect_api: None, archive: Archive, roster: None, cli, user,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    _approved_changes(archive)
    may_export, june_export = _exports(tmp_path / "crm")
    may, june = close_month(archive, may_export, MAY), close_month(archive, june_export, JUNE)
    assert may.rpt_serial.startswith("SZ01-RPT-2026-") and june.rpt_serial.startswith(
        "SZ01-RPT-2026-")
    found = archive.search(SearchFilter(doc_type="RPT", branch="SZ01"), actor=user("comp1"))
    assert len(found) == 3  # May's, June's and the first half year's
    by_subject = {entry.subject: entry for entry in found}
    assert set(by_subject) == {"2026-05 营业部业务月报", "2026-06 营业部业务月报",
                               "2026H1 营业部半年度业务报告（2026年上半年）"}
    assert by_subject["2026-06 营业部业务月报"].serial == june.rpt_serial
    half_serial = by_subject["2026H1 营业部半年度业务报告（2026年上半年）"].serial
    assert by_subject["2026H1 营业部半年度业务报告（2026年上半年）"].month == JUNE
    with new_session(archive.engine) as session:
        audited = {(e.request_key, json.loads(e.content)["details"]["rpt"]) for e in session.exec(
            select(AuditEvent).where(AuditEvent.action == "report-archived"))}
        june_lines = run_lines(session, run_id=june.id)  # type: ignore[arg-type]
        may_lines = run_lines(session, run_id=may.id)  # type: ignore[arg-type]
        report = report_json(closed_month_report(session, branch="SZ01", month=JUNE))
    assert audited == {(report_key("SZ01", MAY), may.rpt_serial),
                       (report_key("SZ01", JUNE), june.rpt_serial),
                       (report_key("SZ01", "2026H1"), half_serial)}

    # June's figures: per team the sums of the closing's lines, against May's
    assert report["pas_serial"] == june.signed_serial and report["pay_serial"] == june.pay_serial
    assert [t["team"] for t in report["teams"]] == ["网点2", "网点10"]
    for row in report["teams"]:
        assert {k: row[k] for k in _team_sums(june_lines, row["team"])} == _team_sums(
            june_lines, row["team"])
        assert row["net_revenue_last"] == _team_sums(may_lines, row["team"])["net_revenue"]
    two, ten = report["teams"]
    assert (two["accounts_opened"], two["valid_accounts"], ten["accounts_opened"],
            ten["valid_accounts"]) == (1, 1, 3, 2)
    # 3000 × 0.95 against May's 1000 × 0.95; 500 × 0.95 against 2000 × 0.95
    assert (two["net_revenue"], two["net_revenue_last"], two["net_revenue_change_rate"]) == (
        "2850.00", "950.00", "+200.00%")
    assert (ten["net_revenue"], ten["net_revenue_change"], ten["net_revenue_change_rate"]) == (
        "475.00", "-1425.00", "-75.00%")
    assert report["payroll"] == {key: json.loads(june.totals)[key]
                                 for key in ("gross", "net_pay", "risk_fund_withheld")}
    assert [(c["cm_id"], c["date"], c["team"]) for c in report["joins"]] == [
        ("cm3", "2026-06-08", "网点10")]
    assert [(c["cm_id"], c["date"]) for c in report["leaves"]] == [("cm1", "2026-06-20")]
    assert [(c["cm_id"], c["name"], c["to_title"], c["lvl_serial"])
            for c in report["level_changes"]] == [
        ("cm2", "朱琳", "manager", "SZ01-LVL-2026-000003")]

    # the archived PDF reads the same: the PAS serial, the teams, the LVL serial
    _, pdf = archive.get(june.rpt_serial, actor=user("bm1"))
    text = pdf_text(pdf, tmp_path)
    for expected in ("营业部业务月报", june.signed_serial, june.pay_serial, "网点10", "2850.00",
                     "950.00", "-75.00%", "尤佳", "SZ01-LVL-2026-000003", "晋升"):
        assert expected in text, expected
    _, pdf = archive.get(half_serial, actor=user("bm1"))
    text = pdf_text(pdf, tmp_path)
    for expected in ("营业部半年度业务报告", may.signed_serial, june.signed_serial,
                     may.rpt_serial, "2026-01", "2026-04"):
        assert expected in text, expected

    # archiving again (a re-run) makes no second document and no second audit row
    again = archive_business_reports(archive, june, pas_serial=june.signed_serial)
    assert again == [june.rpt_serial, half_serial]
    assert len(archive.search(SearchFilter(doc_type="RPT"), actor=user("comp1"))) == 3
    with new_session(archive.engine) as session:
        assert len(session.exec(select(AuditEvent).where(
            AuditEvent.action == "report-archived")).all()) == 3
        half = report_json(period_report(session, branch="SZ01", period=parse_period("2026H1")))

    # brokerflow report show: the half year summed, for the branch's management and leaders
    shown = cli("report", "show", "--branch", "SZ01", "--period", "2026H1", "--format", "json",
                user="bm1")
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    assert data == half
    assert data["months"] == [MAY, JUNE] and data["missing_months"] == [
        "2026-01", "2026-02", "2026-03", "2026-04"]
    assert [c["pas_serial"] for c in data["closings"]] == [may.signed_serial,
                                                            june.signed_serial]
    assert data["total"]["net_revenue"] == "6175.00"  # May 950 + 1900, June 2850 + 475
    assert data["total"]["accounts_opened"] == 2 + 4  # May: a1, a3; June: b1, b2, b3, b4
    assert [c["cm_id"] for c in data["joins"]] == ["cm3"]
    text = cli("report", "show", "--branch", "SZ01", "--period", JUNE, user="sm1")
    assert text.code == 0, text.err
    assert june.signed_serial in text.out and "SZ01-LVL-2026-000003" in text.out
    assert cli("report", "show", "--branch", "SZ01", "--period", "2026", user="comp1").code == 0
    refused = cli("report", "show", "--branch", "SZ01", "--period", "2026H1", user="cm1")
    assert refused.code == 3 and "may not show business report" in refused.err
    assert cli("report", "show", "--branch", "SZ01", "--period", JUNE, user="gzbm").code == 3
    bad = cli("report", "show", "--branch", "SZ01", "--period", "2026H3", user="bm1")
    assert bad.code == 2 and "--period" in bad.err
    assert cli("report", "show", "--branch", "SZ01", "--period", "2026-03",
               user="bm1").code == 4  # not closed
