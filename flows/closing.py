"""The monthly closing (seed 001 第十二条–第三十条; seed 002 第十五条) as a Prefect flow.

Load the month's CRM export (a directory, or ``crm/<branch>/<YYYY-MM>/`` in the bucket),
compute every CM's pay, store lines and carried state in one transaction, render and archive
《营业部客户经理薪酬月报表》 (PAY), collect the sign-off chief accountant → deputy manager →
branch manager through the approval engine, then archive the signed report (PAS) as filed with
the brokerage business office.  A closed month is refused until a branch manager reopens it.
The closing checks its counts against the CRM export, the roster and the order of months
(``payroll.closing_checks``) and shows every discrepancy on PAY and in the sign-off form; a
rejected or returned sign-off ends the run as ``Rejected`` / ``Returned``, its PAY superseded.
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.

import hashlib
import json
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectException
from prefect.states import Completed, State
from sqlmodel import Session, select

from brokerflow.approvals.attributions import EffectiveAttributions, effective_attributions
from brokerflow.approvals.chain import PAYROLL_CHAIN, Finished, Waiting, progress
from brokerflow.approvals.decisions import clear_waiting, load_decisions
from brokerflow.approvals.level_records import propose_demotions
from brokerflow.approvals.run_labels import payroll_run_name
from brokerflow.approvals.signing import SigningRequest, claim_on, take_signature, user_names
from brokerflow.approvals.waiting import ANSWER_HOOKS, WaitMode, current_flow_run_id
from brokerflow.archive.index import mark_superseded
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.business_report import archive_business_reports
from brokerflow.flows.confirmation_lists import archive_confirmation_lists
from brokerflow.flows.leases import held_lease
from brokerflow.flows.payslips import archive_payslips
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, month_end, previous_month, utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import PayrollRun, User, UserRole
from brokerflow.kernel.ordering import natural_key
from brokerflow.kernel.roster import branch_staff, get_user_view
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.vocabulary import ClosingStatus
from brokerflow.payroll.cases import investigation_figures
from brokerflow.payroll.closing_checks import ClientTally, closing_discrepancies
from brokerflow.payroll.closing_report import discrepancy_notes, line_totals, run_discrepancies
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.inputs import ClientRow
from brokerflow.payroll.notices import raise_notices
from brokerflow.payroll.pay_rules import PolicyChoice, choose_policy
from brokerflow.payroll.policy import parse_policy
from brokerflow.payroll.records import (
    MonthClosed,
    later_months,
    latest_run,
    month_statuses,
    opening_state,
    record_run,
    reopen_chain_after,
    run_lines,
    set_status,
    stale_previous_month,
)
from brokerflow.payroll.risk_fund import apply_movements
from brokerflow.payroll.risk_fund_records import (
    mark_applied,
    movement_rows,
    movements_for_closing,
)
from brokerflow.payroll.starts import DEVELOPMENT, SYSTEM, redeem_start_ticket, ticket_policy
from brokerflow.payroll.state_file import read_state

AttributionSource = Literal["database", "crm"]
CRM_FILES = ("staff.csv", "clients.csv", "state.json", "staff.xlsx", "clients.xlsx")
#: Roster roles paid by the closing (staff file positions cm, stationed, regional).
PAID_ROLES = ("cm", "stationed_manager", "regional_manager")
#: The flow run's end state when the sign-off does not approve (the Prefect UI shows it).
UNSIGNED_STATES = {"rejected": "Rejected", "returned": "Returned"}


def request_key(branch: str, month: str) -> str:
    return f"payroll:{branch}:{month}"


def branch_preparer(archive: Archive, branch: str) -> UserView:
    """Who the PAY is archived as: the branch's chief accountant (财务部 prepares it)."""
    with new_session(archive.engine) as session:
        user_id = session.exec(
            select(User.user_id).join(UserRole, UserRole.user_id == User.user_id)  # type: ignore[arg-type]
            .where(User.branch == branch, UserRole.role == "chief_accountant")
            .order_by(User.user_id)
        ).first()
        view = get_user_view(session, user_id) if user_id else None
    if view is None:
        raise NotFound(f"branch {branch} has no chief_accountant on the roster")
    return view


def _fetch_export(archive: Archive, branch: str, month: str, target: Path) -> Path:
    """Download ``crm/<branch>/<month>/`` from the bucket into ``target``."""
    prefix = f"crm/{branch}/{month}/"
    found = 0
    for name in CRM_FILES:
        try:
            data = archive.inputs.get(prefix + name)
        except NotFound:
            continue
        (target / name).write_bytes(data)
        found += 1
    if not found:
        raise BadInput(f"no CRM export under {archive.inputs.location(prefix)}",
                       file=prefix)
    return target


def counted_by_attribution(effective: EffectiveAttributions,
                            zone: ZoneInfo) -> Callable[[ClientRow], bool]:
    """Whether a CRM client row counts: its account was attributed (effective) to that CM at
    the end of the row's month, and the client is not flagged malicious."""
    ends: dict[str, datetime] = {}

    def counts(row: ClientRow) -> bool:
        if row.malicious:
            return False
        end = ends.get(row.month)
        if end is None:
            end = ends[row.month] = month_end(row.month, zone)
        return effective.counts(client_id=row.client_id, cm_id=row.cm_id, at=end)

    return counts


def paid_roster(session: Session, *, branch: str, month: str) -> set[str]:
    """The branch's CMs, stationed and regional managers on the roster who had not left
    before ``month`` began."""
    first = Month.parse(month)
    return set(branch_staff(session, branch=branch, roles=PAID_ROLES,
                            on=date(first.year, first.month, 1)))


def _compute_and_record(archive: Archive, *, branch: str, month: str, data_dir: str | None,
                        choice: PolicyChoice, run_id: str, attribution_source: AttributionSource,
                        started_by: str) -> PayrollRun:
    rules = parse_policy(choice.text, file=(f"pay rules version {choice.version}"
                                            if choice.version else "explicit policy"))
    # the month's rows tallied per CM in the pass that computes the pay (no second read)
    tally = ClientTally(month) if attribution_source == "database" else None
    with tempfile.TemporaryDirectory(prefix="brokerflow-crm-") as tmp:
        source = Path(data_dir) if data_dir else _fetch_export(archive, branch, month,
                                                                Path(tmp))
        with new_session(archive.engine) as session:
            state = opening_state(session, branch=branch, month=month,
                                  exported=read_state(source / "state.json"))
            counts = (tally.counting(counted_by_attribution(
                          effective_attributions(session, branch=branch), archive.zone))
                      if tally is not None else None)
            cases = investigation_figures(session, branch=branch, month=month)
            movements = movements_for_closing(session, branch=branch, month=month)
            state = apply_movements(state, movements)
        result = compute_from_directory(month=month, data_dir=source, policy=rules,
                                        state=state, counts=counts, investigations=cases)
    with new_session(archive.engine) as session:
        discrepancies = [d.as_dict() for d in closing_discrepancies(
            month=month, tallies=tally.by_cm if tally is not None else None,
            staff_ids=[line.cm_id for line in result.lines],
            roster_ids=paid_roster(session, branch=branch, month=month),
            history=month_statuses(session, branch=branch))]
        run = record_run(session, branch=branch, month=month, result=result, flow_run_id=run_id,
                         started_by=started_by, opening=state)
        run.policy_version, run.policy_filing = choice.version, choice.filing_serial
        run.policy_note = choice.note
        policy_record = {"version": choice.version, "filing": choice.filing_serial,
                         "approval": choice.result_serial, "note": choice.note,
                         "sha256": hashlib.sha256(choice.text.encode()).hexdigest()}
        run.figures = json.dumps({"policy": policy_record, "discrepancies": discrepancies,
                                  "attribution_source": attribution_source},
                                 ensure_ascii=False)
        session.add(run)
        mark_applied(session, branch=branch, month=month, movements=movements)
        stale = later_months(session, branch=branch, month=month)
        append_audit(session, actor_id=started_by, action="payroll-computed",
                     request_key=request_key(branch, month),
                     details={"revision": run.revision, "lines": len(result.lines),
                              "totals": json.loads(run.totals), "flow_run": run_id,
                              "policy": policy_record,
                              "later_months_to_rerun": stale,
                              "discrepancies": discrepancies})
        session.commit()
    return run


def _policy_choice(archive: Archive, *, branch: str, month: str, policy: str | None,
                   ticket: str | None) -> PolicyChoice:
    """The pay rules approved for ``month``; an explicit policy (a development file on the
    worker, or an admin's in the start ticket) instead, marked as not approved."""
    explicit = None
    if policy:
        try:
            explicit = Path(policy).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read the policy: {exc.__class__.__name__}",
                           file=policy) from None
    with new_session(archive.engine) as session:
        if explicit is None and ticket:
            explicit = ticket_policy(session, ticket=ticket, branch=branch, month=month)
        return choose_policy(session, branch=branch, month=month, explicit=explicit)


def report_data(run: PayrollRun, lines: list[dict[str, Any]], *,
                signatures: list[dict[str, str]], draft_serial: str = "",
                risk_fund: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The data of the PAY report (and, with signatures, of the signed PAS): the lines, the
    pay rules used (version and the filing that approved them, or "policy not approved"),
    the closing's check against the CRM export (核对差异) and the month's risk-fund
    movements; without signatures, the sign-off's steps as 待签.
    Lines in natural id order (cm2 before cm10), with the 合计 of their counted columns."""
    lines = sorted(lines, key=lambda line: natural_key(str(line.get("cm_id", ""))))
    found = run_discrepancies(run)
    figures = json.loads(run.figures or "{}")
    return {
        "branch": run.branch,
        "subject": f"{run.month} 客户经理薪酬（第 {run.revision} 版）",
        "body": {"month": run.month, "totals": json.loads(run.totals), "draft_serial":
                 draft_serial,
                 "policy_version": run.policy_version, "policy_filing": run.policy_filing,
                 "policy_approval": figures.get("policy", {}).get("approval", ""),
                 "discrepancies": None if found is None else [
                     {"label": d.label, "cm_id": d.cm_id or "", "message": d.message_zh}
                     for d in found],
                 "attribution_checked": figures.get("attribution_source") == "database",
                 "policy_note": run.policy_note,
                 "lines": lines, "line_totals": line_totals(lines),
                 "risk_fund_movements": risk_fund or []},
        # a PAY printed before the sign-off shows the 签批单's empty boxes, as on paper
        "signatures": signatures or [{"role": step.label, "name": "", "decision": "pending"}
                                     for step in PAYROLL_CHAIN.steps],
    }


def _risk_fund_rows(archive: Archive, run: PayrollRun) -> list[dict[str, Any]]:
    with new_session(archive.engine) as session:
        return movement_rows(session, branch=run.branch, month=run.month)


def _archive_report(archive: Archive, run: PayrollRun, doc_type: str,
                    data: dict[str, Any], actor: UserView, suffix: str = "") -> str:
    spec = DocumentSpec(branch=run.branch, doc_type=doc_type, subject=data["subject"],
                        subject_key=request_key(run.branch, run.month) + suffix,
                        revision=run.revision, month=run.month,
                        source=f"closing {run.branch} {run.month}")
    return archive_step(archive, spec, data, actor=actor)


def _start_or_continue(archive: Archive, *, branch: str, month: str, data_dir: str | None,
                       policy: str | None, ticket: str | None, run_id: str,
                       attribution_source: AttributionSource,
                       starter: Callable[[], str]) -> PayrollRun:
    with new_session(archive.engine) as session:
        latest = latest_run(session, branch=branch, month=month)
    if latest is not None and latest.flow_run_id == run_id:
        return latest  # this flow run was re-executed (suspension, restart)
    started_by = starter()  # refuses (audited) a start SPEC §2.1 does not allow
    if latest is not None and latest.status == ClosingStatus.CLOSED:
        raise MonthClosed(f"{branch} {month} is closed (signed as {latest.signed_serial}); "
                          "a correction needs 'brokerflow payroll reopen' by the branch manager")
    with new_session(archive.engine) as session:
        stale = stale_previous_month(session, branch=branch, month=month)
    if stale is not None:
        raise BadInput(f"{branch} {stale} is reopened: close it again first, so that {month} "
                       "continues from its corrected state", column="month")
    choice = _policy_choice(archive, branch=branch, month=month, policy=policy, ticket=ticket)
    if latest is not None and latest.status in (ClosingStatus.DRAFT, ClosingStatus.SIGNING):
        with new_session(archive.engine) as session:
            old = session.get(PayrollRun, latest.id)
            assert old is not None
            set_status(session, run=old, status=ClosingStatus.SUPERSEDED)
            session.commit()
    archive_confirmation_lists(archive, branch=branch, month=month)  # CML, just before
    return _compute_and_record(archive, branch=branch, month=month, data_dir=data_dir,
                               choice=choice, run_id=run_id,
                               attribution_source=attribution_source, started_by=started_by)


def _starter(archive: Archive, *, branch: str, month: str, ticket: str | None,
             data_dir: str | None, policy: str | None, attribution_source: AttributionSource,
             run_id: str) -> str:
    """Who starts this closing (a user by ticket, or the schedule); what SPEC §2.1 forbids is
    refused, audited, with ``AccessDenied``."""
    settings = archive.settings
    problem, starter = "", None
    if not settings.dev and (data_dir or policy):
        problem = ("flow parameters naming files on the worker (data_dir, policy) are refused "
                   "outside development mode; the export is read from crm/<branch>/<month>/")
    elif not settings.dev and attribution_source != "database":
        problem = ("counting clients by the CRM's attribution column is refused outside "
                   "development mode")
    elif ticket:
        with new_session(archive.engine) as session:
            starter = redeem_start_ticket(session, ticket=ticket, branch=branch, month=month)
        problem = "" if starter else "the start ticket is unknown, expired or for another month"
    elif made_by_schedule(run_id):
        starter = SYSTEM
    elif settings.dev:
        starter = DEVELOPMENT
    else:
        problem = ("a closing is started by its schedule or by 'brokerflow payroll close' "
                   "(an identified user with a closing role of the branch)")
    if starter:
        return starter
    with new_session(archive.engine) as session:
        append_audit(session, actor_id="(unidentified)", action="refused",
                     request_key=request_key(branch, month),
                     details={"reason": problem, "flow_run": run_id})
        session.commit()
    raise AccessDenied(f"closing {branch} {month} refused: {problem}")


def made_by_schedule(run_id: str) -> bool:
    """Whether Prefect's scheduler made this flow run (nobody can create one so by API)."""
    try:
        with get_client(sync_client=True) as client:
            return bool(client.read_flow_run(UUID(run_id)).auto_scheduled)
    except (ValueError, PrefectException, httpx.HTTPError):
        return False  # cannot tell: not the schedule


def document_actor(archive: Archive, run: PayrollRun) -> UserView:
    """Whom the closing's documents are archived as: who started it, or the system."""
    with new_session(archive.engine) as session:
        view = get_user_view(session, run.started_by)
    return view or UserView(user_id=run.started_by, name="系统 (定时任务 scheduled)",
                            branch=run.branch, team="", supervisor_id=None, roles=frozenset())


@flow(name="monthly-closing", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def monthly_closing(
    branch: str,
    month: str | None = None,
    data_dir: str | None = None,
    policy: str | None = None,
    wait: WaitMode = "suspend",
    poll_interval: float = 10.0,
    attribution_source: AttributionSource = "database",
    ticket: str | None = None,
) -> str | State[str]:
    """Close ``branch``'s ``month`` (default: the previous month); returns the PAS serial.
    A sign-off that rejects or returns the report ends the run in a Completed state named
    ``Rejected`` / ``Returned`` (its result: ``rejected`` / ``returned``), its PAY superseded.

    Which client rows count: ``database`` — the attributions effective at each month's end
    (the CRM's attribution_effective column is ignored); ``crm`` — that column (development
    mode only, like ``data_dir`` and ``policy``).  ``ticket``: from ``brokerflow payroll
    close``; without it only the deployment's schedule starts a closing.
    """
    settings = load_settings()
    month = month or previous_month(utcnow(), ZoneInfo(settings.timezone))
    Month.parse_parameter(month)  # BadInput (exit 2) naming the parameter
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        def starter() -> str:
            return _starter(archive, branch=branch, month=month, ticket=ticket,
                            data_dir=data_dir, policy=policy,
                            attribution_source=attribution_source, run_id=run_id)

        return _close(archive, branch=branch, month=month, data_dir=data_dir, policy=policy,
                      ticket=ticket, run_id=run_id, mode=wait, poll_interval=poll_interval,
                      attribution_source=attribution_source, starter=starter)


def _close(archive: Archive, *, branch: str, month: str, data_dir: str | None,
           policy: str | None, ticket: str | None, run_id: str, mode: WaitMode,
           poll_interval: float, attribution_source: AttributionSource,
           starter: Callable[[], str]) -> str | State[str]:
    run = _start_or_continue(archive, branch=branch, month=month, data_dir=data_dir,
                             policy=policy, ticket=ticket, run_id=run_id,
                             attribution_source=attribution_source, starter=starter)
    assert run.id is not None
    run_pk = run.id
    key = request_key(branch, month)
    preparer = document_actor(archive, run)
    with new_session(archive.engine) as session:
        lines = run_lines(session, run_id=run_pk)
    if not run.pay_serial:
        data = report_data(run, lines, signatures=[],
                           risk_fund=_risk_fund_rows(archive, run))
        serial = _archive_report(archive, run, "PAY", data, preparer)
        with new_session(archive.engine) as session:
            current = session.get(PayrollRun, run_pk)
            assert current is not None
            current.pay_serial = serial
            set_status(session, run=current, status=ClosingStatus.SIGNING)
            mark_superseded(session, subject_keys=[key, key + ":signed"],
                            below_revision=run.revision)
            session.commit()
    while True:
        with new_session(archive.engine) as session:
            run = session.get(PayrollRun, run_pk)  # type: ignore[assignment]
            assert run is not None
            decisions = load_decisions(session, request_key=key, revision=run.revision,
                                       zone=archive.zone)
        if run.status == ClosingStatus.CLOSED:  # re-executed after closing: finish the RPT
            archive_business_reports(archive, run, pas_serial=run.signed_serial)
            archive_payslips(archive, run, pas_serial=run.signed_serial, actor=preparer)
            return run.signed_serial
        state = progress(PAYROLL_CHAIN, decisions)
        if isinstance(state, Waiting):
            request = SigningRequest(
                chain=PAYROLL_CHAIN, request_key=key, revision=run.revision,
                attempt=run.form_attempts,
                title=f"营业部客户经理薪酬月报表 {branch} {month} (revision {run.revision})",
                subject=f"{month} payroll: gross {json.loads(run.totals)['gross']}, net "
                        f"{json.loads(run.totals)['net_pay']}, {len(lines)} staff",
                serial=run.pay_serial, pdf_url=archive.document_link(run.pay_serial),
                submitter_id="",  # prepared by the system; the chief accountant signs first
                branch=branch, run_name=payroll_run_name(branch, month),
                notes=discrepancy_notes(run),
            )
            take_signature(archive.engine, request, state, decisions,
                           claim_attempt=claim_on(PayrollRun, run_pk), run_id=run_id, mode=mode,
                           poll_interval=poll_interval)
            continue
        return _finish(archive, run, state, decisions, lines, preparer)


def unsigned_message(run: PayrollRun, state: Finished, decisions: list[Any]) -> str:
    """Why the closing ended without a signed report, as the flow run's state says it."""
    outcome = "未同意" if state.outcome == "rejected" else "已退回"
    ending = next((d for d in reversed(decisions) if d.decision in ("reject", "return")), None)
    said = ""
    if ending is not None:
        said = f"（{PAYROLL_CHAIN.step(ending.step).label}：{ending.opinion or outcome}）"
    return (f"薪酬月报表未通过签批：{run.branch} {run.month} 第 {run.revision} 版{outcome}{said}；"
            f"PAY {run.pay_serial} 已标记为被替代，更正后重新结账 "
            f"(sign-off {state.outcome}; the PAY is superseded)")


def _unsigned(archive: Archive, run: PayrollRun, state: Finished,
              decisions: list[Any]) -> State[str]:
    """A rejected or returned sign-off: the run's status says so, its PAY is no longer
    current (audited), and the flow run ends in a state named after the outcome."""
    assert run.id is not None
    key = request_key(run.branch, run.month)
    with new_session(archive.engine) as session:
        current = session.get(PayrollRun, run.id)
        assert current is not None
        set_status(session, run=current, status=state.outcome)
        clear_waiting(session, request_key=key)
        superseded = mark_superseded(session, subject_keys=[key], below_revision=run.revision + 1)
        append_audit(session, actor_id="system", action="payroll-" + state.outcome,
                     request_key=key, details={"revision": run.revision, "pay": run.pay_serial,
                                               "pay_status": "superseded",
                                               "documents_superseded": superseded})
        session.commit()
    return Completed(name=UNSIGNED_STATES[state.outcome], data=state.outcome,
                     message=unsigned_message(run, state, decisions))


def _finish(archive: Archive, run: PayrollRun, state: Finished, decisions: list[Any],
            lines: list[dict[str, Any]], preparer: UserView) -> str | State[str]:
    assert run.id is not None
    key = request_key(run.branch, run.month)
    if state.outcome != "approved":
        return _unsigned(archive, run, state, decisions)
    names = user_names(archive.engine, [d.signer_id for d in decisions])
    signatures = [{"role": PAYROLL_CHAIN.step(d.step).label, "name": names[d.signer_id],
                   "decision": d.decision, "time": d.at, "opinion": d.opinion}
                  for d in decisions]
    data = report_data(run, lines, signatures=signatures, draft_serial=run.pay_serial,
                       risk_fund=_risk_fund_rows(archive, run))
    data["subject"] = f"{run.month} 客户经理薪酬（已签批，报经纪业务综合室备案）"
    serial = _archive_report(archive, run, "PAS", data, preparer, suffix=":signed")
    with new_session(archive.engine) as session:
        current = session.get(PayrollRun, run.id)
        assert current is not None
        current.signed_serial = serial
        set_status(session, run=current, status=ClosingStatus.CLOSED)
        clear_waiting(session, request_key=key)
        raise_notices(session, branch=run.branch, month=run.month, lines=lines)
        reopen_chain_after(session, branch=run.branch, month=run.month, revision=run.revision)
        proposed = propose_demotions(session, branch=run.branch, month=run.month, lines=lines)
        if proposed:  # confirmed by the branch manager: 'brokerflow level start ID'
            append_audit(session, actor_id="system", action="demotions-proposed",
                         request_key=key, details={"changes": [c.id for c in proposed]})
        append_audit(session, actor_id="system", action="payroll-closed", request_key=key,
                     details={"revision": run.revision, "pay": run.pay_serial, "pas": serial})
        session.commit()
    archive_business_reports(archive, run, pas_serial=serial)  # RPT, after the PAS
    archive_payslips(archive, run, pas_serial=serial, actor=preparer)  # PSL per CM
    return serial
