"""Hand-computed payroll lines (policy: tests/data/policy_simple.toml, month 2026-10).

Each expected figure is worked out in the comment above it from SPEC §4, not read back from
the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export


@pytest.fixture
def compute(tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    from brokerflow.app.cli import main

    def run(staff, clients, state=None) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
        data = write_export(tmp_path / "export", staff=staff, clients=clients, state=state)
        capsys.readouterr()
        code = main(["payroll", "compute", "--month", MONTH, "--data", str(data),
                     "--policy", str(POLICY), "--format", "json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        result = json.loads(out.out)
        assert result["month"] == MONTH
        return {line["cm_id"]: line for line in result["lines"]}

    return run


def test_a_manager_line_by_hand(compute) -> None:  # type: ignore[no-untyped-def]
    lines = compute(
        [staff_row("cm1")],
        [
            # valid: purchases 6000 > 5000; new_value 300000
            client_row("c1", "cm1", open_date="2026-10-05", purchases="6000", assets="300000",
                       turnover="1000000", gross_commission="2000", fund_sales_commission="100"),
            # institution, assets 5000.01 > 5000 (strictly): counts 3
            client_row("c2", "cm1", client_type="institution", open_date="2026-10-10",
                       assets="5000.01"),
            # exactly 5000 is not more than 5000: not valid
            client_row("c3", "cm1", open_date="2026-10-12", purchases="5000", assets="5000"),
            client_row("c4", "cm1", assets="3000000", turnover="2000000",
                       gross_commission="5000"),
            client_row("c4", "cm1", month="2026-09", assets="2000000"),
            client_row("c4", "cm1", month="2026-08", assets="1000000"),
            # malicious and not-effective clients never count
            client_row("c5", "cm1", open_date="2026-10-02", purchases="9000", assets="9000",
                       gross_commission="999", malicious="true"),
            client_row("c6", "cm1", open_date="2026-10-03", purchases="9000", assets="9000",
                       gross_commission="999", attribution_effective="false"),
        ],
    )
    line = lines["cm1"]
    assert line["valid_accounts"] == 4
    assert line["new_value"] == "305000.01"
    # c1: 2000*0.95 - 1000000*0.0001 = 1800; c4: 5000*0.95 - 2000000*0.0001 = 4550
    assert line["net_revenue"] == "6350.00"
    # (3310000.01 + 2000000 + 1000000) / 3 = 2103333.3366…
    assert line["avg_assets_3m"] == "2103333.34"
    assert line["level"] == "manager"
    assert line["mgmt_score"] == "100.00"
    # 0.4*4/5 + 0.4*305000.01/1000000 + 0.2*6350/10000 = 0.569000004
    assert line["score"] == "0.5690"
    assert line["fixed_pay"] == "3000.00"
    # 6350 * 0.3 * 0.5690 = 1083.945 -> half-up
    assert line["commission"] == "1083.95"
    assert line["opening_bonus"] == "400.00"
    assert (line["excess_value_award"], line["excess_carry_out"]) == ("0.00", "0.00")
    assert line["fund_commission"] == "30.00"
    assert (line["management_commission"], line["management_allowance"]) == ("0.00", "0.00")
    assert line["transport_allowance"] == "200.00"
    assert (line["attendance_deduction"], line["fines"]) == ("0.00", "0.00")
    # 3000 + 1083.95 + 400 + 30 + 200
    assert line["gross"] == "4713.95"
    # 4713.95 * 5% = 235.6975
    assert line["risk_fund_withheld"] == "235.70"
    assert line["risk_fund_balance"] == "235.70"
    assert line["net_pay"] == "4478.25"
    assert line["flags"] == ["score_below_60"]


def test_trainee_scores_on_two_parts_and_is_clamped(compute) -> None:  # type: ignore[no-untyped-def]
    lines = compute(
        [staff_row("t1", hire_date="2026-09-01")],  # 1 month since hire < 3
        [client_row("x1", "t1", open_date="2026-10-08", purchases="20000", assets="200000",
                    turnover="100000", gross_commission="500")],
    )
    line = lines["t1"]
    assert line["level"] == "trainee"
    # 0.5*1/2 + 0.5*200000/100000 = 1.25 -> upper limit 1.2
    assert line["score"] == "1.2000"
    assert line["net_revenue"] == "465.00"  # 500*0.95 - 100000*0.0001
    assert line["commission"] == "111.60"  # 465 * 0.2 * 1.2
    assert line["excess_value_award"] == "10.00"  # (200000-100000) * 0.0001
    assert line["transport_allowance"] == "120.00"
    assert line["gross"] == "1841.60"  # 1500 + 111.60 + 100 + 10 + 120
    assert line["flags"] == ["trainee"]


@pytest.mark.parametrize(("hire_date", "commission", "flags"), [
    ("2024-10-01", "950.00", ["score_below_60", "unqualified_reduction"]),  # 24 months
    ("2024-11-01", "1187.50", ["score_below_60"]),                          # 23 months
])
def test_unqualified_after_24_months(compute, hire_date, commission, flags) -> None:  # type: ignore[no-untyped-def]
    lines = compute(
        [staff_row("u1", hire_date=hire_date, qualified="false")],
        [client_row("y1", "u1", assets="500000", gross_commission="10000")],
    )
    line = lines["u1"]
    assert line["level"] == "assistant"  # 500000/3 = 166666.67 < 1000000
    assert line["net_revenue"] == "9500.00"
    assert line["score"] == "0.5000"  # 0.2*9500/4000 = 0.475 -> lower limit 0.5
    # 9500 * 0.25 * 0.5 = 1187.50; * 0.8 = 950.00
    assert line["commission"] == commission
    assert line["flags"] == flags


def test_excess_award_cap_carry_in_and_out_and_ipo_flag(compute) -> None:  # type: ignore[no-untyped-def]
    lines = compute(
        [staff_row("e1"), staff_row("e2", mainly_ipo_or_fund="true")],
        [client_row("z1", "e1", open_date="2026-10-01", assets="41000000"),
         client_row("z2", "e2", open_date="2026-10-01", assets="41000000")],
        state={"e1": {"excess_carry": "500", "risk_fund_balance": "0"},
               "e2": {"excess_carry": "500"}},
    )
    e1, e2 = lines["e1"], lines["e2"]
    assert e1["level"] == "senior"  # 41000000/3 = 13666666.67
    # earned (41000000 - 2000000) * 0.0001 = 3900; 500 + 3900 = 4400 -> pay 3000, carry 1400
    assert (e1["excess_value_award"], e1["excess_carry_out"]) == ("3000.00", "1400.00")
    assert "excess_carried" in e1["flags"]
    # new money mainly to IPO/funds: nothing earned, the carry-in is still paid
    assert (e2["excess_value_award"], e2["excess_carry_out"]) == ("500.00", "0.00")
    assert "excess_carried" not in e2["flags"]


def test_earned_excess_is_not_rounded_before_the_carry_is_added(compute) -> None:  # type: ignore[no-untyped-def]
    # SPEC §4: only line items and reported quantities are rounded; `earned` is neither
    lines = compute(
        [staff_row("t2", hire_date="2026-09-01")],  # trainee: value standard 100000
        [client_row("x2", "t2", open_date="2026-10-08", purchases="20000", assets="100045")],
        state={"t2": {"excess_carry": "10.001"}},
    )
    line = lines["t2"]
    # earned (100045 - 100000) * 0.0001 = 0.0045; paid = 10.001 + 0.0045 = 10.0055 -> 10.01
    # (rounding earned first would pay 10.001 + 0.00 -> 10.00)
    assert line["excess_value_award"] == "10.01"
    # carry 10.0055 - 10.01 = -0.0045 -> 0.00, never "-0.00"
    assert line["excess_carry_out"] == "0.00"
    assert "excess_carried" not in line["flags"]


def test_a_zero_amount_prints_as_0_00_not_minus_0_00(compute) -> None:  # type: ignore[no-untyped-def]
    lines = compute(
        [staff_row("n1")],
        # net revenue 0 * 0.95 - 40 * 0.0001 = -0.004 -> 0.00; commission -0.004*... -> 0.00
        [client_row("y9", "n1", turnover="40", gross_commission="0")],
    )
    line = lines["n1"]
    assert (line["net_revenue"], line["commission"]) == ("0.00", "0.00")


@pytest.mark.parametrize(("absence", "deduction", "mgmt", "flags"), [
    ({"sick_leave_days": "3"}, "0.00", "85.00", []),           # ≤ 3 sick days: no pay lost
    ({"sick_leave_days": "4"}, "367.82", "80.00", []),         # 2000/21.75 * 4 = 367.816…
    ({"personal_leave_days": "1.5"}, "137.93", "85.00", []),   # 2000/21.75 * 1.5 = 137.931…
    ({"late_count": "2"}, "100.00", "90.00", []),               # 50 per late/early
    ({"absent_half_days": "1"}, "183.91", "100.00", []),       # 2 days' pay = 183.908…
    ({"absent_half_days": "2"}, "459.77", "100.00", []),       # 5 days' pay = 459.770…
    ({"absent_half_days": "3"}, "459.77", "100.00", []),
    ({"absent_half_days": "4"}, "2000.00", "100.00", []),      # the month's fixed pay
    ({"absent_half_days": "6"}, "2000.00", "100.00", ["deemed_resigned"]),
])
def test_attendance_deductions(compute, absence, deduction, mgmt, flags) -> None:  # type: ignore[no-untyped-def]
    lines = compute([staff_row("a1", **absence)],
                    [client_row("w1", "a1", assets="300000", gross_commission="1000")])
    line = lines["a1"]
    assert line["level"] == "assistant"
    assert line["mgmt_score"] == mgmt
    assert line["attendance_deduction"] == deduction
    assert [f for f in line["flags"] if f != "score_below_60"] == flags


def test_negative_gross_is_zero_and_flagged_shortfall(compute) -> None:  # type: ignore[no-untyped-def]
    lines = compute([staff_row("s9", absent_half_days="4", fines="500")], [])
    line = lines["s9"]
    # 2000 fixed + 120 transport - 2000 absence - 500 fines = -380 -> 0
    assert (line["gross"], line["risk_fund_withheld"], line["net_pay"]) == ("0.00", "0.00",
                                                                            "0.00")
    assert "shortfall" in line["flags"]


def test_risk_fund_is_cut_at_each_positions_cap(compute) -> None:  # type: ignore[no-untyped-def]
    staff = [staff_row("r1", position="regional"),
             staff_row("s1", position="stationed", supervisor_id="r1"),
             staff_row("c1", supervisor_id="s1"), staff_row("c2", supervisor_id="s1")]
    lines = compute(staff, [], state={
        "r1": {"risk_fund_balance": "29990"}, "s1": {"risk_fund_balance": "19990"},
        "c1": {"risk_fund_balance": "9990"}, "c2": {"risk_fund_balance": "10000"},
    })
    # every gross is far above 200, so 5% would exceed the 10 yuan left under each cap
    for cm_id, cap in (("r1", "30000.00"), ("s1", "20000.00"), ("c1", "10000.00")):
        assert lines[cm_id]["risk_fund_withheld"] == "10.00", cm_id
        assert lines[cm_id]["risk_fund_balance"] == cap
    assert lines["c2"]["risk_fund_withheld"] == "0.00"
    assert lines["c2"]["net_pay"] == lines["c2"]["gross"]


def test_stationed_and_regional_management_commission(compute) -> None:  # type: ignore[no-untyped-def]
    staff = [staff_row("r1", position="regional"),
             staff_row("s1", position="stationed", supervisor_id="r1"),
             staff_row("a", supervisor_id="s1"), staff_row("b", supervisor_id="s1"),
             staff_row("c", supervisor_id="r1")]
    clients = [client_row("k1", "a", gross_commission="1000"),   # net 950
               client_row("k2", "b", gross_commission="3000"),   # net 2850
               client_row("k3", "s1", gross_commission="2000"),  # net 1900
               client_row("k4", "c", gross_commission="500")]    # net 475
    lines = compute(staff, clients)
    # stationed: 5% of its cm staff (950 + 2850) = 190
    assert lines["s1"]["management_commission"] == "190.00"
    assert lines["s1"]["management_allowance"] == "300.00"
    # regional: 5% of its stationed staff (1900) + 5% of its own cm staff (475) = 118.75
    assert lines["r1"]["management_commission"] == "118.75"
    assert lines["r1"]["management_allowance"] == "900.00"
    assert lines["a"]["management_commission"] == "0.00"
