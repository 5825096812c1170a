"""Whether the roster can complete each chain (SPEC §10): the pure check (a matching of steps
to distinct signers), its warnings after a roster load, ``branch check``, and the commands
that start a chain refusing before anything is written."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlmodel import select

from brokerflow.approvals.chain import ATTRIBUTION_CHAIN, FILING_CHAIN, PAYROLL_CHAIN
from brokerflow.approvals.staffing import CHAINS, chain_gaps, staffing_gaps
from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import Filing, SerialRecord
from tests.support.paths import DATA, ROSTER_CSV

HEADER = "user_id,name,roles,branch,team,supervisor_id,secret\n"


def sample_users(*, without: tuple[str, ...] = ()) -> list[UserView]:
    with (DATA / "roster.csv").open(encoding="utf-8") as handle:
        return [UserView(r["user_id"], r["name"], r["branch"], r["team"],
                         r["supervisor_id"] or None, frozenset(r["roles"].split(";")))
                for r in csv.DictReader(handle) if r["user_id"] not in without]


def person(user_id: str, *roles: str, branch: str = "SZ01") -> UserView:
    return UserView(user_id, user_id, branch, roles=frozenset(roles))


def roster_without(tmp_path: Path, *user_ids: str) -> Path:
    lines = ROSTER_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "roster.csv"
    path.write_text("".join(line for line in lines if line.split(",")[0] not in user_ids),
                    encoding="utf-8")
    return path


def test_the_sample_roster_staffs_every_chain_of_sz01_and_head_office() -> None:
    users = sample_users()
    assert staffing_gaps(users, branches=["SZ01"]) == []
    # GZ02 has a branch manager and one CM only: its branch chains are reported, by role
    gz = staffing_gaps(users, branches=["GZ02"])
    assert {g.branch for g in gz} == {"GZ02"}
    assert {(g.chain, g.step) for g in gz} >= {("payroll", "chief_accountant"),
                                               ("payroll", "deputy_manager")}
    assert "filing" not in {g.chain for g in gz}  # signed at head office: staffed there
    assert set(CHAINS) >= {"filing", "payroll", "attribution", "promotion", "demotion",
                           "risk_fund_deduction", "risk_fund_refund"}


def test_one_brokerage_office_user_cannot_sign_two_filing_steps() -> None:
    gaps = staffing_gaps(sample_users(without=("bo2",)), branches=["SZ01"])
    assert len(gaps) == 1
    (gap,) = gaps
    assert (gap.branch, gap.chain, gap.step) == ("HQ", "filing", "office_complete")
    assert gap.roles == ("brokerage_office",)
    text = gap.describe()
    assert "经纪业务综合室 brokerage_office" in text and "second person" in text
    assert "bo1 already signs step office_receive" in text
    # one person holding two roles is still one person
    both = [person("x", "brokerage_office", "channel_dept", branch="HQ"),
            person("y", "brokerage_office", branch="HQ"), person("c", "risk", branch="HQ"),
            person("v", "vp", branch="HQ")]
    assert [g.step for g in chain_gaps(FILING_CHAIN, both, branch="SZ01")] == [
        "office_complete"]


def test_a_countersign_named_at_run_time_needs_a_department_holder() -> None:
    users = sample_users(without=("comp1", "risk1"))
    (gap,) = chain_gaps(FILING_CHAIN, users, branch="SZ01")
    assert gap.step == "countersign" and "countersign department" in gap.problem
    assert "nobody at head office (HQ)" in gap.problem


def test_fixed_countersign_roles_need_two_people_and_the_submitter_signs_none() -> None:
    staff = [person("cc", "counter_clerk"), person("tm", "trading_manager"),
             person("fb", "finance_manager", "branch_manager")]
    (gap,) = chain_gaps(ATTRIBUTION_CHAIN, staff, branch="SZ01")
    assert gap.step == "finance_and_branch" and "fb already signs" in gap.problem
    # the trading manager signs two steps by design: not a gap
    staff[2:] = [person("fm", "finance_manager"), person("bm", "branch_manager")]
    assert chain_gaps(ATTRIBUTION_CHAIN, staff, branch="SZ01") == []
    (alone,) = chain_gaps(ATTRIBUTION_CHAIN, [*staff[1:], person("bk", "backoffice")],
                          branch="SZ01", submitter_id="bk")
    assert alone.step == "first_review" and "only the submitter bk" in alone.problem
    # another branch's staff do not count
    assert [g.step for g in chain_gaps(PAYROLL_CHAIN, [
        person("ca", "chief_accountant", branch="GZ02"), person("dm", "deputy_manager"),
        person("bm", "branch_manager")], branch="SZ01")] == ["chief_accountant"]


def test_roster_load_warns_and_branch_check_fails_for_a_registered_branch(
    cli, tmp_path: Path
) -> None:
    loaded = cli("roster", "load", str(roster_without(tmp_path, "bo2")))
    assert loaded.code == 0, loaded.err
    assert "warning: HQ: filing chain" in loaded.err and "brokerage_office" in loaded.err
    assert "warning: GZ02: payroll chain" in loaded.err and "chief_accountant" in loaded.err
    checked = cli("branch", "check", user="admin1")
    assert checked.code == 1 and "office_complete" in checked.out  # head office lacks one
    own = cli("branch", "check", user="bm1")  # a branch sees its own branch and head office
    assert own.code == 1 and "GZ02" not in own.out and "HQ: filing chain" in own.out


def test_branch_check_counts_registered_branches_only(cli, tmp_path: Path) -> None:
    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    unregistered = cli("branch", "check", user="admin1")
    assert unregistered.code == 0 and "GZ02: payroll chain" in unregistered.out
    registry = tmp_path / "branches.csv"
    registry.write_text("code,name\nSZ01,深圳福田证券营业部\n", encoding="utf-8")
    assert cli("branch", "load", str(registry), user="admin1").code == 0
    assert cli("branch", "check", user="admin1").code == 0  # SZ01 is fully staffed
    registry.write_text("code,name\nGZ02,广州天河证券营业部\n", encoding="utf-8")
    assert cli("branch", "load", str(registry), user="admin1").code == 0
    registered = cli("branch", "check", user="admin1")
    assert registered.code == 1 and "chief_accountant" in registered.out


def test_starting_a_chain_that_cannot_complete_is_refused_before_anything_is_written(
    cli, archive: Archive, tmp_path: Path
) -> None:
    assert cli("roster", "load", str(roster_without(tmp_path, "bo2"))).code == 0
    refused = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                  "--subject", "2027年度人员招聘计划", "--body", "拟招聘客户经理十名。",
                  "--no-start", user="bk1")
    assert refused.code == 2 and "Traceback" not in refused.err
    assert "filing chain" in refused.err and "SZ01" in refused.err
    assert "brokerage_office" in refused.err and "office_complete" in refused.err
    with new_session(archive.engine) as session:
        assert session.exec(select(Filing)).first() is None
        assert session.exec(select(SerialRecord)).first() is None
    closing = cli("payroll", "close", "--branch", "GZ02", "--month", "2026-10", user="gzbm")
    assert closing.code == 2 and "payroll chain" in closing.err
    assert "chief_accountant" in closing.err and "GZ02" in closing.err
