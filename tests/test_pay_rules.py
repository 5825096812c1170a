"""Pay rules take effect only after approval (seed 002 第二条; SPEC §8.3): a ``pay_rules``
filing carries a policy, the real filing chain approves it, and the next closing uses the
version in force — or refuses, and says how to file one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.flows.closing import monthly_closing
from brokerflow.flows.filing import filing_chain
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.models import Filing, PayrollRun
from brokerflow.kernel.staff_models import PayRulesVersion
from brokerflow.payroll.records import run_lines
from brokerflow.payroll.starts import issue_start_ticket
from tests.support.chain_driver import ChainDriver
from tests.support.closings import close_month
from tests.support.payroll_data import MONTH, POLICY, client_row, staff_row, write_export
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")

FILING_SIGNERS = (("bo1", {}), ("ch1", {"departments": ["compliance"]}), ("comp1", {}),
                  ("bo2", {}), ("vp1", {}))
STAFF = [staff_row("cm1", name="杨帆")]
CLIENTS = [client_row("c1", "cm1", assets="1000", gross_commission="100")]


def _policy(tmp_path: Path, name: str, fixed_pay: str = "2000") -> Path:
    """The simple policy with the assistant's fixed pay set to ``fixed_pay``."""
    text = POLICY.read_text(encoding="utf-8")
    head, tail = text.split("[levels.assistant]", 1)
    tail = tail.replace('fixed_pay = "2000"', f'fixed_pay = "{fixed_pay}"', 1)
    path = tmp_path / name
    path.write_text(head + "[levels.assistant]" + tail, encoding="utf-8")
    return path


def _filing(archive: Archive, filing_id: int) -> Filing:
    with new_session(archive.engine) as session:
        filing = session.get(Filing, filing_id)
        assert filing is not None
        return filing


def _file_pay_rules(archive: Archive, cli, policy: Path, month: str,  # type: ignore[no-untyped-def]
                    *, decision: str = "approve") -> int:
    done = cli("filing", "submit", "--branch", "SZ01", "--kind", "pay_rules", "--subject",
               "营销团队薪酬办法", "--policy", str(policy), "--effective-month", month,
               "--no-start", user="bk1")
    assert done.code == 0, done.err
    filing_id = int(done.out.split()[1])
    chain = ChainDriver(
        lambda: filing_chain(filing_id=filing_id, wait="pause", poll_interval=0.1),
        run_id=lambda: _filing(archive, filing_id).flow_run_id,
        attempts=lambda: _filing(archive, filing_id).form_attempts,
    ).start()
    chain.wait_paused()
    for signer, extra in FILING_SIGNERS:
        last = signer == "vp1"
        chain.sign(signer, decision=decision if last else "approve",
                   opinion="不同意：超出总部薪酬指引" if last and decision == "reject" else "",
                   **extra)
    assert chain.join().startswith("SZ01-FOP-")
    return filing_id


def _lines(archive: Archive, run: PayrollRun) -> list[dict[str, object]]:
    assert run.id is not None
    with new_session(archive.engine) as session:
        return run_lines(session, run_id=run.id)


BAD_POLICIES = [
    ("[levels.chief]", "[levels.unknown]", "levels.unknown"),  # a level missing, one unknown
    ('tax_surcharge_rate = "0.05"', 'tax_surcharge_rate = "-0.05"', "-0.05"),
    ('risk_fund_cap = "10000"', 'risk_fund_cap = "-1"', "risk_fund_cap"),
    ("retention_years = 20", 'retention_years = 20\nbonus_rate = "0.5"', "bonus_rate"),
]


@pytest.mark.parametrize(("old", "new", "named"), BAD_POLICIES)
def test_a_bad_policy_is_refused_at_submission_and_nothing_is_written(
        archive: Archive, roster: None, cli, tmp_path: Path,  # type: ignore[no-untyped-def]
        old: str, new: str, named: str) -> None:
    text = POLICY.read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    done = cli("filing", "submit", "--branch", "SZ01", "--kind", "pay_rules", "--subject",
               "薪酬办法", "--policy", str(bad), "--effective-month", "2026-11", "--no-start",
               user="bk1")
    assert done.code == 2, done.err
    assert named in done.err and str(bad) in done.err and "Traceback" not in done.err
    with new_session(archive.engine) as session:
        assert session.exec(select(Filing)).all() == []
        assert session.exec(select(PayRulesVersion)).all() == []


def test_pay_rules_options_are_checked(archive: Archive, roster: None, cli,  # type: ignore[no-untyped-def]
                                       tmp_path: Path) -> None:
    good = _policy(tmp_path, "good.toml")
    base = ("filing", "submit", "--branch", "SZ01", "--subject", "薪酬办法", "--no-start")
    no_month = cli(*base, "--kind", "pay_rules", "--policy", str(good), user="bk1")
    assert no_month.code == 2 and "--effective-month" in no_month.err
    bad_month = cli(*base, "--kind", "pay_rules", "--policy", str(good), "--effective-month",
                    "2026/11", user="bk1")
    assert bad_month.code == 2 and "--effective-month" in bad_month.err
    other_kind = cli(*base, "--kind", "recruitment", "--body", "招聘", "--policy", str(good),
                     user="bk1")
    assert other_kind.code == 2 and "pay_rules only" in other_kind.err
    with new_session(archive.engine) as session:
        assert session.exec(select(Filing)).all() == []


def test_approved_pay_rules_are_used_by_the_next_closing_and_rejected_ones_never(
        prefect_api: None, archive: Archive, roster: None, cli, user,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    export = write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS)
    refused = pytest.raises(BadInput, monthly_closing, branch="SZ01", month=MONTH,
                            data_dir=str(export), wait="pause", attribution_source="crm")
    assert "no approved pay rules" in str(refused.value)
    assert "--kind pay_rules" in str(refused.value)  # says how to file them
    with new_session(archive.engine) as session:
        assert session.exec(select(PayrollRun)).all() == []  # nothing started

    approved_id = _file_pay_rules(archive, cli, _policy(tmp_path, "v1.toml", "2600"), MONTH)
    rejected_id = _file_pay_rules(archive, cli, _policy(tmp_path, "v2.toml", "9999"), MONTH,
                                  decision="reject")
    with new_session(archive.engine) as session:
        versions = {r.filing_id: r for r in session.exec(select(PayRulesVersion))}
    approved, rejected = versions[approved_id], versions[rejected_id]
    assert (approved.status, approved.version) == ("active", 1)
    assert (rejected.status, rejected.version) == ("rejected", None)
    fil = _filing(archive, approved_id).current_serial
    assert approved.filing_serial == fil and approved.result_serial.startswith("SZ01-FOP-")
    _, fil_pdf = archive.get(fil, actor=user("bm1"))
    assert 'fixed_pay = "2600"' in pdf_text(fil_pdf, tmp_path)  # reviewers see the rules

    run = close_month(archive, export, policy=None)
    lines = _lines(archive, run)
    assert (run.policy_version, run.policy_filing, run.policy_note) == (1, fil, "")
    # the assistant's fixed pay of version 1 (2600 at a management score of 100)
    assert lines[0]["level"] == "assistant" and lines[0]["fixed_pay"] == "2600.00"
    _, pay = archive.get(run.pay_serial, actor=user("bm1"))
    text = pdf_text(pay, tmp_path)
    assert "第 1 版" in text and fil in text

    listed = cli("policy", "list", "--branch", "SZ01", "--format", "json", user="ca1")
    assert listed.code == 0, listed.err
    assert [(v["version"], v["status"]) for v in json.loads(listed.out)] == [
        (1, "active"), (None, "rejected")]
    shown = cli("policy", "show", "--branch", "SZ01", "--version", "1", user="bm1")
    assert shown.code == 0 and 'fixed_pay = "2600"' in shown.out and fil in shown.out
    assert cli("policy", "list", "--branch", "SZ01", user="gzcm").code == 3  # another branch


def test_pay_rules_take_effect_from_their_month(prefect_api: None, archive: Archive,  # type: ignore[no-untyped-def]
                                               roster: None, cli, tmp_path: Path) -> None:
    later = "2026-11"
    _file_pay_rules(archive, cli, _policy(tmp_path, "nov.toml", "2600"), later)
    export = write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS)
    with pytest.raises(BadInput, match="no approved pay rules in force for 2026-10"):
        monthly_closing(branch="SZ01", month=MONTH, data_dir=str(export), wait="pause",
                        attribution_source="crm")


def test_an_explicit_policy_is_marked_not_approved(prefect_api: None, archive: Archive,  # type: ignore[no-untyped-def]
                                                  roster: None, cli, user,
                                                  tmp_path: Path) -> None:
    export = write_export(tmp_path / "crm", staff=STAFF, clients=CLIENTS)
    policy = _policy(tmp_path, "admin.toml", "2100")
    denied = cli("payroll", "close", "--branch", "SZ01", "--month", MONTH, "--policy",
                 str(policy), user="ca1")
    assert denied.code == 3 and "admin" in denied.err  # only an admin closes on unapproved rules
    with new_session(archive.engine) as session:
        ticket = issue_start_ticket(session, actor=user("admin1"), branch="SZ01", month=MONTH,
                                    policy_text=policy.read_text(encoding="utf-8"))
        session.commit()
    run = close_month(archive, export, policy=None, ticket=ticket)
    lines = _lines(archive, run)
    assert (run.policy_version, run.policy_note, run.started_by) == (
        None, "policy not approved", "admin1")
    assert lines[0]["fixed_pay"] == "2100.00"
    _, pay = archive.get(run.pay_serial, actor=user("bm1"))
    assert "薪酬办法未经批准" in pdf_text(pay, tmp_path)
