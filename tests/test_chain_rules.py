"""The pure rules, tested on their own: chains (``progress``, ``check_form``), who may see a
request, who may reopen a month or audit, when a run is stranded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from brokerflow.app.recovery import LeaseSnapshot, RunSnapshot, stranded_reason
from brokerflow.approvals.access import attribution_readable, filing_readable
from brokerflow.approvals.chain import (
    ATTRIBUTION_CHAIN,
    FILING_CHAIN,
    PAYROLL_CHAIN,
    Decision,
    Finished,
    Form,
    Waiting,
    check_form,
    progress,
)
from brokerflow.kernel.identity import UserView, may_audit
from brokerflow.payroll.records import reopen_refusal


def person(user_id: str, *roles: str, branch: str = "HQ", team: str = "") -> UserView:
    return UserView(user_id=user_id, name=user_id, branch=branch, team=team,
                    roles=frozenset(roles))


def signed(step: str, signer: str, role: str, decision: str = "approve", *,
           department: str | None = None, departments: tuple[str, ...] = ()) -> Decision:
    return Decision(step=step, signer_id=signer, role=role, decision=decision,
                    department=department, departments=departments)


def test_progress_walks_the_filing_chain_and_its_named_countersigners() -> None:
    state = progress(FILING_CHAIN, [])
    assert isinstance(state, Waiting) and state.step.name == "office_receive"
    decisions = [signed("office_receive", "bo1", "brokerage_office"),
                 signed("channel_review", "ch1", "channel_dept",
                        departments=("compliance", "risk"))]
    state = progress(FILING_CHAIN, decisions)
    assert isinstance(state, Waiting)
    assert (state.step.name, state.may_sign) == ("countersign", ("compliance", "risk"))
    decisions.append(signed("countersign", "risk1", "risk", department="risk"))
    state = progress(FILING_CHAIN, decisions)
    assert isinstance(state, Waiting)
    assert (state.may_sign, state.done_departments) == (("compliance",), ("risk",))
    decisions += [signed("countersign", "comp1", "compliance", department="compliance"),
                  signed("office_complete", "bo2", "brokerage_office"),
                  signed("vp_instruction", "vp1", "vp")]
    assert progress(FILING_CHAIN, decisions) == Finished("approved")


def test_no_countersigners_named_skips_the_countersign_step() -> None:
    decisions = [signed("office_receive", "bo1", "brokerage_office"),
                 signed("channel_review", "ch1", "channel_dept")]
    state = progress(FILING_CHAIN, decisions)
    assert isinstance(state, Waiting) and state.step.name == "office_complete"


@pytest.mark.parametrize(("decision", "outcome"), [("reject", "rejected"),
                                                   ("return", "returned")])
def test_reject_or_return_ends_the_revision_at_that_step(decision: str, outcome: str) -> None:
    decisions = [signed("office_receive", "bo1", "brokerage_office"),
                 signed("channel_review", "ch1", "channel_dept", decision)]
    assert progress(FILING_CHAIN, decisions) == Finished(outcome, "channel_review")  # type: ignore[arg-type]


def _check(form: Form, signer: UserView | None, decisions: list[Decision], *,
           chain=FILING_CHAIN, branch: str | None = None, secret_ok: bool = True):  # type: ignore[no-untyped-def]
    state = progress(chain, decisions)
    assert isinstance(state, Waiting)
    return check_form(chain, state, form, signer=signer, secret_ok=secret_ok,
                      submitter_id="bk1", decisions=decisions, branch=branch)


def test_check_form_names_the_first_reason_a_form_may_not_count() -> None:
    bo1 = person("bo1", "brokerage_office")
    assert _check(Form("bo1", "approve"), bo1, []).ok
    assert "wrong secret" in _check(Form("bo1", "approve"), bo1, [], secret_ok=False).reason
    assert "unknown signer" in _check(Form("x", "approve"), None, []).reason
    assert "decision must be one of approve, reject, return" in _check(
        Form("bo1", "maybe"), bo1, []).reason
    assert "an opinion is required to return" in _check(Form("bo1", "return"), bo1, []).reason
    assert "holds none of the roles" in _check(
        Form("vp1", "approve"), person("vp1", "vp"), []).reason
    assert "submitted this request" in _check(
        Form("bk1", "approve"), person("bk1", "brokerage_office"), []).reason
    assert "does not name countersigners" in _check(
        Form("bo1", "approve", departments=("risk",)), bo1, []).reason


def test_nobody_signs_two_steps_of_a_filing_but_may_in_the_attribution_chain() -> None:
    after_receive = [signed("office_receive", "bo1", "brokerage_office")]
    both = person("bo1", "brokerage_office", "channel_dept")
    assert "already signed a step" in _check(Form("bo1", "approve"), both, after_receive).reason
    tm1 = person("tm1", "trading_manager", branch="SZ01")
    first_three = [signed("first_review", "cc1", "counter_clerk"),
                   signed("trading_review", "tm1", "trading_manager"),
                   signed("finance_and_branch", "fm1", "finance_manager",
                          department="finance_manager"),
                   signed("finance_and_branch", "bm1", "branch_manager",
                          department="branch_manager")]
    assert _check(Form("tm1", "approve"), tm1, first_three, chain=ATTRIBUTION_CHAIN,
                  branch="SZ01").ok


def test_the_naming_step_takes_only_known_departments_and_branch_chains_their_staff() -> None:
    ch1 = person("ch1", "channel_dept")
    after_receive = [signed("office_receive", "bo1", "brokerage_office")]
    named = _check(Form("ch1", "approve", departments=(" risk ", "compliance")), ch1,
                   after_receive)
    assert named.ok and named.departments == ("compliance", "risk")
    assert "unknown countersign department(s) tea" in _check(
        Form("ch1", "approve", departments=("tea",)), ch1, after_receive).reason
    other_branch = person("ca9", "chief_accountant", branch="GZ02")
    assert "is not staff of branch SZ01" in _check(
        Form("ca9", "approve"), other_branch, [], chain=PAYROLL_CHAIN, branch="SZ01").reason


def test_who_may_see_a_filing_or_an_attribution() -> None:
    assert filing_readable(person("comp1", "compliance"), branch="SZ01") is None
    assert filing_readable(person("cm1", "cm", branch="SZ01"), branch="SZ01") is None
    assert filing_readable(person("gzbm", "branch_manager", branch="GZ02"), branch="SZ01")
    seen = {"branch": "SZ01", "team": "T1", "cm_id": "cm1"}
    assert attribution_readable(person("bk1", "backoffice", branch="SZ01"), **seen)
    assert attribution_readable(person("sm1", "stationed_manager", branch="SZ01", team="T1"),
                                **seen)
    assert not attribution_readable(person("sm2", "stationed_manager", branch="SZ01",
                                           team="T2"), **seen)
    assert attribution_readable(person("cm1", "cm", branch="SZ01", team="T1"), **seen)
    assert not attribution_readable(person("cm2", "cm", branch="SZ01", team="T1"), **seen)
    assert not attribution_readable(person("gzbm", "branch_manager", branch="GZ02"), **seen)


def test_who_may_reopen_a_month_and_who_may_audit() -> None:
    assert reopen_refusal(person("bm1", "branch_manager", branch="SZ01"), branch="SZ01") is None
    assert reopen_refusal(person("gzbm", "branch_manager", branch="GZ02"), branch="SZ01")
    assert reopen_refusal(person("dm1", "deputy_manager", branch="SZ01"), branch="SZ01")
    assert may_audit(person("comp1", "compliance")) is None
    assert may_audit(person("admin9", "admin", branch="SZ01")) is None
    assert may_audit(person("bm1", "branch_manager", branch="SZ01")) == \
        "needs head office or role admin"


def test_a_run_is_stranded_when_no_live_process_holds_it() -> None:
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    running = RunSnapshot("r1", "RUNNING", "Running", "s1", now - timedelta(seconds=30))
    alive = {4242}

    def judge(lease: LeaseSnapshot | None, run: RunSnapshot = running) -> str | None:
        return stranded_reason(run, lease, now=now, lease_seconds=60, host="vm",
                               pid_alive=lambda pid: pid in alive)

    fresh = now - timedelta(seconds=5)
    assert judge(LeaseSnapshot("vm:4242", fresh)) is None
    assert judge(LeaseSnapshot("vm:99", fresh)) == "its process vm:99 is gone"
    assert judge(LeaseSnapshot("other:99", fresh)) is None  # another host's: trust its lease
    long_running = RunSnapshot("r1", "RUNNING", "Running", "s1", now - timedelta(minutes=5))
    assert judge(LeaseSnapshot("other:99", now - timedelta(minutes=2)), long_running) == \
        "its process other:99 stopped renewing its lease 120 s ago"
    old = LeaseSnapshot("vm:99", now - timedelta(minutes=5))  # an earlier execution's lease
    assert judge(old) is None  # ... is not evidence: the state began 30 s ago
    pending = RunSnapshot("r1", "PENDING", "Submitting", "s2", now - timedelta(seconds=90))
    assert judge(None, pending) == "Submitting for 90 s with no process holding it"
    crashed = RunSnapshot("r1", "CRASHED", "Crashed", "s3", now)
    assert judge(None, crashed) == "its process crashed (Crashed)"
    assert judge(None, RunSnapshot("r1", "PAUSED", "Suspended", "s4", now)) is None
