"""Titles, levels, investigations and year-to-date attendance in ``payroll compute`` (SPEC §8.1).

Policy tests/data/policy_simple.toml: assistant from 0, manager from 1,000,000, senior from
5,000,000, chief from 20,000,000 average assets; fixed pay trainee 1500, assistant 2000,
manager 3000, senior 4500; transport 120/120/200/300.  A CM without clients scores 0.5 (the
clamp), below 60.  Every expected figure is worked out in the comment beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokerflow.app.cli import main
from brokerflow.kernel.calendar import Month
from tests.support.payroll_data import POLICY, client_row, staff_row, write_export

OCT = "2026-10"


def assets(cm_id: str, amount: str, month: str = OCT) -> list[dict[str, Any]]:
    """An old client of ``cm_id`` holding ``amount`` at the end of ``month`` and the two
    months before it: avg_assets_3m = amount."""
    m = Month.parse(month)
    return [client_row(f"{cm_id}-old", cm_id, month=str(m.minus(k)), assets=amount)
            for k in range(3)]


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
        ) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def compute(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    counter = iter(range(1000))

    def go(staff: list[dict[str, Any]], clients: list[dict[str, Any]],
           state: dict[str, Any] | None = None, month: str = OCT,
           state_out: Path | None = None) -> dict[str, dict[str, Any]]:
        data = write_export(tmp_path / f"export{next(counter)}", staff=staff, clients=clients,
                            state=state)
        extra = ["--state-out", str(state_out)] if state_out else []
        code, out, err = run(tmp_path, capsys, "payroll", "compute", "--month", month,
                             "--data", str(data), "--policy", str(POLICY), *extra)
        assert code == 0, err
        return {line["cm_id"]: line for line in json.loads(out)["lines"]}

    return go


def test_a_title_caps_the_level_and_two_months_above_it_make_promotion_eligible(
        compute) -> None:  # type: ignore[no-untyped-def]
    # assets 6,000,000 → asset_level senior; title manager → level manager (3000 + 200)
    line = compute([staff_row("cm1")], assets("cm1", "6000000"), state={"cm1": {
        "as_of": "2026-09", "title": "manager", "prev_asset_level": "senior",
        "prev_score": "0.9000"}})["cm1"]
    assert (line["asset_level"], line["title"], line["level"]) == ("senior", "manager",
                                                                    "manager")
    assert (line["fixed_pay"], line["transport_allowance"], line["gross"]) == (
        "3000.00", "200.00", "3200.00")
    assert line["flags"] == ["promotion_eligible", "score_below_60"]
    assert line["title_next"] == "manager"  # titles change only by an approved level change


def test_without_a_title_the_asset_level_is_paid(compute) -> None:  # type: ignore[no-untyped-def]
    line = compute([staff_row("cm1")], assets("cm1", "6000000"))["cm1"]
    # senior 4500 + 300; no title and no target: title_next null
    assert (line["level"], line["gross"], line["title"], line["title_next"]) == (
        "senior", "4800.00", None, None)
    assert line["flags"] == ["score_below_60"]


def test_an_early_conversion_title_overrides_the_trainee_months(
        compute) -> None:  # type: ignore[no-untyped-def]
    hired = {"hire_date": "2026-09-01"}  # months_since_hire = 1 < 3
    plain = compute([staff_row("cm1", **hired)], [])["cm1"]
    assert (plain["level"], plain["asset_level"], plain["fixed_pay"]) == (
        "trainee", "trainee", "1500.00")
    assert "trainee" in plain["flags"]
    converted = compute([staff_row("cm1", **hired)], [], state={"cm1": {
        "title": "assistant"}})["cm1"]
    assert (converted["level"], converted["asset_level"], converted["fixed_pay"]) == (
        "assistant", "assistant", "2000.00")
    assert "trainee" not in converted["flags"]


def test_a_trainee_title_after_three_months_stays_trainee_and_is_due_for_conversion(
        compute) -> None:  # type: ignore[no-untyped-def]
    line = compute([staff_row("cm1", hire_date="2026-06-15")], [], state={"cm1": {
        "title": "trainee"}})["cm1"]  # months_since_hire 4 ≥ 3
    assert (line["asset_level"], line["level"], line["fixed_pay"]) == (
        "assistant", "trainee", "1500.00")
    assert line["flags"] == ["score_below_60", "trainee", "trainee_conversion_due"]
    assert line["title_next"] == "trainee"


def test_two_months_below_the_title_make_a_demotion_to_the_asset_level(
        compute) -> None:  # type: ignore[no-untyped-def]
    line = compute([staff_row("cm1")], assets("cm1", "2000000"), state={"cm1": {
        "as_of": "2026-09", "title": "senior", "prev_asset_level": "manager",
        "prev_score": "0.8000"}})["cm1"]
    assert (line["asset_level"], line["level"], line["title_next"]) == (
        "manager", "manager", "manager")
    assert line["flags"] == ["demotion_due", "score_below_60"]


def test_two_scores_below_60_demote_one_level_and_reaching_trainee_gives_the_right_to_end(
        compute) -> None:  # type: ignore[no-untyped-def]
    state = {"as_of": "2026-09", "prev_score": "0.5500"}
    untitled = compute([staff_row("cm1")], [], state={"cm1": state})["cm1"]
    # no title: one below the level (assistant) is trainee → termination_right
    assert untitled["title_next"] == "trainee"
    assert untitled["flags"] == ["score_below_60", "score_demotion_due", "termination_right"]
    titled = compute([staff_row("cm1")], assets("cm1", "1500000"), state={"cm1": {
        **state, "title": "manager", "prev_asset_level": "manager"}})["cm1"]
    assert titled["title_next"] == "assistant"  # one below the title
    assert titled["flags"] == ["score_below_60", "score_demotion_due"]


def test_history_counts_only_for_the_month_before(compute) -> None:  # type: ignore[no-untyped-def]
    line = compute([staff_row("cm1")], assets("cm1", "6000000"), state={"cm1": {
        "as_of": "2026-08", "title": "manager", "prev_asset_level": "chief",
        "prev_score": "0.5000"}})["cm1"]
    assert line["flags"] == ["score_below_60"]  # neither promotion nor score demotion
    assert line["title_next"] == "manager"


def test_year_to_date_absence_and_leave_limits(compute) -> None:  # type: ignore[no-untyped-def]
    carried = {"as_of": "2026-09", "ytd_absent_half_days": 8,
               "ytd_personal_leave_days": "19.50"}
    line = compute([staff_row("cm1", absent_half_days=2, personal_leave_days="1")], [],
                   state={"cm1": carried})["cm1"]
    # 8 + 2 = 10 half days ≥ 10 → deemed_resigned; 19.5 + 1 = 20.5 > 20 → over the limit
    assert (line["ytd_absent_half_days"], line["ytd_personal_leave_days"]) == (10, "20.50")
    assert {"deemed_resigned", "personal_leave_over_limit"} <= set(line["flags"])
    # an as_of earlier in the year (not the month before) still carries the YTD figures
    earlier = compute([staff_row("cm1", absent_half_days=2)], [],
                      state={"cm1": {**carried, "as_of": "2026-03"}})["cm1"]
    assert earlier["ytd_absent_half_days"] == 10


def test_january_starts_the_year_from_zero(compute) -> None:  # type: ignore[no-untyped-def]
    carried = {"as_of": "2026-12", "ytd_absent_half_days": 9,
               "ytd_personal_leave_days": "20.00"}
    line = compute([staff_row("cm1", month="2027-01", absent_half_days=2,
                              personal_leave_days="1")], [],
                   state={"cm1": carried}, month="2027-01")["cm1"]
    assert (line["ytd_absent_half_days"], line["ytd_personal_leave_days"]) == (2, "1.00")
    assert "deemed_resigned" not in line["flags"]
    # a hand-made state without as_of means the month before: December, not this year
    handmade = compute([staff_row("cm1", month="2027-01")], [], month="2027-01",
                       state={"cm1": {"ytd_absent_half_days": 9}})["cm1"]
    assert handmade["ytd_absent_half_days"] == 0


def test_fixed_pay_is_withheld_during_an_investigation_and_released_after(
        compute) -> None:  # type: ignore[no-untyped-def]
    # assistant 2000 + transport 120 = 2120 before the investigation
    held = compute([staff_row("cm1", under_investigation="true")], [])["cm1"]
    assert (held["fixed_pay_withheld"], held["gross"], held["risk_fund_withheld"],
            held["net_pay"], held["withheld_fixed_pay"]) == (
        "2000.00", "120.00", "6.00", "114.00", "2000.00")
    # still open next month: withheld again, nothing released, 2000 + 2000 carried
    again = compute([staff_row("cm1", under_investigation="true")], [],
                    state={"cm1": {"withheld_fixed_pay": "2000.00"}})["cm1"]
    assert (again["fixed_pay_released"], again["withheld_fixed_pay"]) == ("0.00", "4000.00")
    # cleared: 4000 released into gross (2120 + 4000), the risk fund takes 5% of it
    released = compute([staff_row("cm1", under_investigation="false")], [],
                       state={"cm1": {"withheld_fixed_pay": "4000.00"}})["cm1"]
    assert (released["fixed_pay_released"], released["gross"], released["risk_fund_withheld"],
            released["withheld_fixed_pay"]) == ("4000.00", "6120.00", "306.00", "0.00")


def test_withholding_never_exceeds_what_is_left_and_malicious_accounts_are_fined(
        compute) -> None:  # type: ignore[no-untyped-def]
    # 2120 − fines 500 − 2 accounts × 500 = 620 left: only 620 can be held; gross 0
    line = compute([staff_row("cm1", under_investigation="true", fines="500",
                              confirmed_malicious_accounts="2")], [])["cm1"]
    assert (line["malicious_fine"], line["fixed_pay_withheld"], line["gross"],
            line["withheld_fixed_pay"]) == ("1000.00", "620.00", "0.00", "620.00")
    assert "shortfall" not in line["flags"]
    # empty cells in the optional columns mean false and 0
    plain = compute([staff_row("cm1", under_investigation="", confirmed_malicious_accounts="")],
                    [])["cm1"]
    assert (plain["fixed_pay_withheld"], plain["malicious_fine"], plain["gross"]) == (
        "0.00", "0.00", "2120.00")


def test_state_out_chains_two_months_like_a_direct_computation(
        tmp_path: Path, compute) -> None:  # type: ignore[no-untyped-def]
    staff = [staff_row("cm1", month=m, absent_half_days=1, personal_leave_days="0.5",
                       under_investigation="true" if m == "2026-09" else "false")
             for m in ("2026-08", "2026-09", OCT)]
    staff += [staff_row("sm1", month=m, position="stationed") for m in ("2026-09", OCT)]
    clients = assets("cm1", "2000000") + [
        client_row("new1", "cm1", month=OCT, open_date="2026-10-03", purchases="9000",
                   assets="800000", gross_commission="3000", turnover="100000")]
    opening = {"cm1": {"as_of": "2026-08", "title": "senior", "prev_asset_level": "manager",
                       "prev_score": "0.5000", "ytd_personal_leave_days": "3.00",
                       "ytd_absent_half_days": 1, "risk_fund_balance": "100.00"},
               "gone": {"excess_carry": "7.00", "risk_fund_balance": "900.00"}}
    chained = tmp_path / "state-09.json"

    def upto(rows: list[dict[str, Any]], month: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["month"] <= month]

    september = compute(upto(staff, "2026-09"), upto(clients, "2026-09"), state=opening,
                        month="2026-09", state_out=chained)["cm1"]
    state = json.loads(chained.read_text(encoding="utf-8"))
    assert state["gone"] == opening["gone"]  # no staff row: carried on unchanged
    assert state["cm1"] == {
        "as_of": "2026-09", "excess_carry": september["excess_carry_out"],
        "risk_fund_balance": september["risk_fund_balance"], "title": "senior",
        "prev_asset_level": "manager", "prev_score": september["score"],
        "ytd_absent_half_days": 2, "ytd_personal_leave_days": "3.50",
        "withheld_fixed_pay": september["fixed_pay_withheld"],
    }
    assert september["fixed_pay_withheld"] != "0.00"
    assert state["sm1"]["title"] is None
    # October from the chained file equals October from the same state written by hand
    by_hand = {"cm1": {**state["cm1"]}, "gone": opening["gone"], "sm1": state["sm1"]}
    october = compute(staff, clients, state=state, month=OCT)
    direct = compute(staff, clients, state=by_hand, month=OCT)
    assert october == direct
    line = october["cm1"]
    assert line["fixed_pay_released"] == september["fixed_pay_withheld"]
    assert (line["ytd_absent_half_days"], line["ytd_personal_leave_days"]) == (3, "4.00")
    # September and October both below the title: demotion to the asset level (manager)
    assert "demotion_due" in line["flags"] and line["title_next"] == "manager"


@pytest.mark.parametrize("entry,key", [
    ({"title": "director"}, "cm1.title"),
    ({"title": "principal"}, "cm1.title"),  # above chief: no such level
    ({"prev_asset_level": "Manager"}, "cm1.prev_asset_level"),
    ({"ytd_absent_half_days": -1}, "cm1.ytd_absent_half_days"),
    ({"ytd_absent_half_days": 2.5}, "cm1.ytd_absent_half_days"),
    ({"ytd_absent_half_days": True}, "cm1.ytd_absent_half_days"),
    ({"ytd_personal_leave_days": "-1"}, "cm1.ytd_personal_leave_days"),
    ({"prev_score": "0.5x"}, "cm1.prev_score"),
    ({"withheld_fixed_pay": "NaN"}, "cm1.withheld_fixed_pay"),
    ({"as_of": "2026/09"}, "cm1.as_of"),
    ({"titel": "manager"}, "cm1.titel"),
])
def test_bad_state_exits_2_naming_the_cm_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, Any],
        key: str) -> None:
    data = write_export(tmp_path / "export", staff=[staff_row("cm1")], clients=[],
                        state={"cm1": entry})
    out = tmp_path / "next.json"
    code, stdout, err = run(tmp_path, capsys, "payroll", "compute", "--month", OCT, "--data",
                            str(data), "--policy", str(POLICY), "--state-out", str(out))
    assert code == 2, err
    assert f"column {key}" in err and "state.json" in err and "Traceback" not in err
    assert not out.exists() and stdout == ""


@pytest.mark.parametrize("column,value", [
    ("under_investigation", "maybe"), ("confirmed_malicious_accounts", "-1"),
    ("confirmed_malicious_accounts", "1.5"),
])
def test_bad_optional_staff_columns_exit_2_naming_row_and_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], column: str, value: str) -> None:
    data = write_export(tmp_path / "export", staff=[staff_row("cm0"), staff_row("cm1", **{
        column: value})], clients=[])
    code, _, err = run(tmp_path, capsys, "payroll", "compute", "--month", OCT, "--data",
                       str(data), "--policy", str(POLICY))
    assert code == 2
    assert f"row 3, column {column}" in err


LEVEL = st.sampled_from(["trainee", "assistant", "manager", "senior", "chief", None])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=LEVEL, prev=LEVEL, prev_score=st.sampled_from([None, "0.5000", "0.7000"]),
       amount=st.sampled_from(["0", "1500000", "6000000", "30000000"]),
       hire=st.sampled_from(["2026-09-01", "2026-07-20", "2020-01-15"]),
       investigated=st.booleans(), withheld=st.sampled_from(["0", "1234.56"]),
       fines=st.sampled_from(["0", "5000"]))
def test_invariants_for_any_state(tmp_path_factory: pytest.TempPathFactory,
                                  title: str | None, prev: str | None, prev_score: str | None,
                                  amount: str, hire: str, investigated: bool, withheld: str,
                                  fines: str) -> None:
    from decimal import Decimal

    from brokerflow.payroll.compute import compute_from_directory
    from brokerflow.payroll.lifecycle import rank

    state = {"cm1": {"as_of": "2026-09", "title": title, "prev_asset_level": prev,
                     "prev_score": prev_score, "withheld_fixed_pay": withheld}}
    data = write_export(tmp_path_factory.mktemp("x"), staff=[staff_row(
        "cm1", hire_date=hire, under_investigation=str(investigated).lower(), fines=fines)],
        clients=assets("cm1", amount), state=state)
    line = compute_from_directory(month=OCT, data_dir=data, policy=POLICY).lines[0]
    if title not in (None, "trainee"):
        assert rank(line.level) <= rank(title)
    if title == "trainee":
        assert line.level == "trainee"
    assert line.gross >= 0 and line.net_pay == line.gross - line.risk_fund_withheld
    assert 0 <= line.fixed_pay_withheld <= line.fixed_pay
    if investigated:  # held on top of what was held
        assert line.withheld_fixed_pay == Decimal(withheld) + line.fixed_pay_withheld
        assert line.fixed_pay_released == 0
    else:  # everything held is released into this month's gross
        assert line.fixed_pay_released == Decimal(withheld) and line.withheld_fixed_pay == 0
    assert ("termination_right" in line.flags) == (
        line.title_next == "trainee" and bool({"demotion_due", "score_demotion_due"}
                                              & set(line.flags)))
    if line.title_next is not None and title is not None:
        assert rank(line.title_next) <= rank(title)
