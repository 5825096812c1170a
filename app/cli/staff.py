"""``brokerflow staff``: a CM's working life (SPEC §8): show, investigations, notices."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.app.cli.archive_holds import report_hold
from brokerflow.archive.holds import close_case_hold, cm_case_key, open_case_hold
from brokerflow.kernel.db import new_session, read_session
from brokerflow.kernel.errors import NotFound

app = typer.Typer(no_args_is_help=True)
case_app = typer.Typer(no_args_is_help=True)
app.add_typer(case_app, name="case", help="malicious-account investigations (第二十七条4)")


def staff_record(session: Any, *, branch: str, cm_id: str) -> dict[str, Any]:
    """Everything the database knows about ``cm_id``'s working life (SPEC §8)."""
    from sqlmodel import col, select

    from brokerflow.kernel.models import LevelChange, PayrollCarry, PayrollRun, TitleRecord
    from brokerflow.payroll.cases import cases_of
    from brokerflow.payroll.notices import KIND_LABELS, notices_of
    from brokerflow.payroll.records import run_lines

    titles = session.exec(select(TitleRecord).where(
        TitleRecord.branch == branch, TitleRecord.cm_id == cm_id)
        .order_by(col(TitleRecord.effective_month), col(TitleRecord.id))).all()
    carry = session.exec(select(PayrollCarry).where(
        PayrollCarry.branch == branch, PayrollCarry.cm_id == cm_id)
        .order_by(col(PayrollCarry.month).desc())).first()
    latest_line: dict[str, Any] | None = None
    if carry is not None:
        run = session.get(PayrollRun, carry.run_id)
        if run is not None and run.id is not None:
            latest_line = next((line for line in run_lines(session, run_id=run.id)
                                if line["cm_id"] == cm_id), None)
    changes = session.exec(select(LevelChange).where(
        LevelChange.branch == branch, LevelChange.cm_id == cm_id)
        .order_by(col(LevelChange.id))).all()
    return {
        "cm_id": cm_id, "branch": branch,
        "titles": [{"title": t.title, "effective_month": t.effective_month, "kind": t.kind,
                    "document": t.document, "approved_by": t.approved_by} for t in titles],
        "latest_month": None if carry is None else {
            "month": carry.month, "level": carry.level, "asset_level": carry.asset_level,
            "score": carry.score, "title": carry.title,
            "ytd_absent_half_days": carry.ytd_absent_half_days,
            "ytd_personal_leave_days": carry.ytd_personal_leave_days,
            "withheld_fixed_pay": carry.withheld_fixed_pay,
            "risk_fund_balance": carry.risk_fund_balance,
            "flags": latest_line["flags"] if latest_line else [],
            "title_next": latest_line.get("title_next") if latest_line else None},
        "level_changes": [{"id": c.id, "kind": c.kind, "from": c.from_title, "to": c.to_title,
                           "status": c.status, "effective_month": c.effective_month,
                           "document": c.lvl_serial} for c in changes],
        "notices": [{"id": n.id, "kind": n.kind, "label": KIND_LABELS.get(n.kind, n.kind),
                     "month": n.month, "due": n.due.isoformat() if n.due else None,
                     "status": n.status} for n in notices_of(session, branch=branch,
                                                             cm_id=cm_id)],
        "cases": [{"id": c.id, "status": c.status, "opened_at": c.opened_at.isoformat(),
                   "outcome": c.outcome, "confirmed_accounts": c.confirmed_accounts,
                   "fine_month": c.fine_month} for c in cases_of(session, branch=branch,
                                                                 cm_id=cm_id)],
    }


@app.command("show", help="a CM's titles, flags, notices and cases (a CM sees only themself)")
def show(cm: Annotated[str, typer.Argument(metavar="CM")],
         output: Annotated[Format, typer.Option("--format")] = Format.text,
         as_user: AsUser = None) -> None:
    """SPEC §5 access: the CM, their managers up the reporting line, the branch's management
    and head office; anyone else is refused (exit 3, logged)."""
    from brokerflow.archive.access import DocumentScope, decide_read
    from brokerflow.kernel.roster import get_user_view, subordinate_ids

    archive = the_archive()
    actor = signed_in(archive, as_user)
    with new_session(archive.engine) as session:
        person = get_user_view(session, cm)
        subordinates = frozenset(subordinate_ids(session, actor.user_id))
    if person is None:
        # the same answer as a refusal for those who may not know whether someone exists
        if not actor.is_head_office and "branch_manager" not in actor.roles:
            raise archive.deny(actor, "show", f"staff {cm}", "not on the roster or not yours")
        raise NotFound(f"no staff member {cm} on the roster")
    decision = decide_read(actor, DocumentScope(branch=person.branch, team=person.team,
                                                cm_id=person.user_id),
                           subordinates=subordinates)
    if not decision.allowed:
        raise archive.deny(actor, "show", f"staff {cm}", decision.reason)
    with new_session(archive.engine) as session:
        record = staff_record(session, branch=person.branch, cm_id=person.user_id)
    record["name"] = person.name
    if output == Format.json:
        print_json(record)
        return
    print(f"{person.name} ({cm}), {person.branch}")
    print("titles: " + ("; ".join(f"{t['title']} from {t['effective_month']} ({t['kind']}, "
                                   f"{t['document'] or '-'})" for t in record["titles"])
                        or "none approved"))
    latest = record["latest_month"]
    if latest:
        print(f"{latest['month']}: level {latest['level']} (assets {latest['asset_level']}), "
              f"score {latest['score']}, flags {', '.join(latest['flags']) or '-'}, next title "
              f"{latest['title_next'] or '-'}; year to date {latest['ytd_absent_half_days']} "
              f"half days absent, {latest['ytd_personal_leave_days']} days personal leave; "
              f"withheld {latest['withheld_fixed_pay']}")
    for change in record["level_changes"]:
        print(f"level change #{change['id']}: {change['kind']} {change['from']} → "
              f"{change['to']} {change['status']} {change['document']}")
    for notice in record["notices"]:
        print(f"notice #{notice['id']} {notice['month']}: {notice['label']} "
              f"[{notice['status']}]" + (f" due {notice['due']}" if notice["due"] else ""))
    for case in record["cases"]:
        print(f"case #{case['id']}: {case['status']} {case['outcome']} "
              f"{case['confirmed_accounts'] or ''}".rstrip())


@app.command("notices", help="open notices of a branch (待岗培训, HR notices)")
def notices(output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    from brokerflow.kernel.identity import BRANCH_MANAGEMENT_ROLES, TEAM_LEADER_ROLES
    from brokerflow.payroll.notices import KIND_LABELS, notices_of

    archive = the_archive()
    actor = signed_in(archive, as_user)
    if not actor.has_any(BRANCH_MANAGEMENT_ROLES | TEAM_LEADER_ROLES):
        raise archive.deny(actor, "list", f"notices of {actor.branch}",
                           "needs branch management or a team leader role")
    with new_session(archive.engine) as session:
        rows = [{"id": n.id, "cm_id": n.cm_id, "kind": n.kind, "month": n.month,
                 "due": n.due.isoformat() if n.due else None, "label": KIND_LABELS[n.kind]}
                for n in notices_of(session, branch=actor.branch, status="open")]
    if output == Format.json:
        print_json(rows)
        return
    for row in rows:
        print(f"#{row['id']} {row['cm_id']} {row['month']} {row['label']}"
              + (f" due {row['due']}" if row["due"] else ""))


@app.command("notice-done", help="a notice's statement received / HR acted (audited)")
def notice_done(notice_id: Annotated[int, typer.Argument(metavar="ID")],
                note: Annotated[str, typer.Option()] = "", as_user: AsUser = None) -> None:
    from brokerflow.payroll.notices import RECEIVING_ROLES, mark_received

    archive = the_archive()
    actor = signed_in(archive, as_user)
    if not actor.roles & (RECEIVING_ROLES | {"hr"}):
        raise archive.deny(actor, "close", f"notice #{notice_id}",
                           "needs a manager role of the branch")
    with new_session(archive.engine) as session:
        notice = mark_received(session, notice_id=notice_id, actor=actor, note=note)
        session.commit()
        print(f"notice #{notice.id} done")


@case_app.command("open", help="open an investigation on a CM (trading dept manager)")
def case_open(cm: Annotated[str, typer.Option()], reason: Annotated[str, typer.Option()],
              as_user: AsUser = None) -> None:
    from brokerflow.kernel.roster import get_user_view
    from brokerflow.payroll.cases import OPENING_ROLE, case_refusal, open_case

    archive = the_archive()
    actor = signed_in(archive, as_user)
    refusal = case_refusal(actor, branch=actor.branch, role=OPENING_ROLE)
    if refusal is not None:
        raise archive.deny(actor, "open a case on", cm, refusal)
    with new_session(archive.engine) as session:
        person = get_user_view(session, cm)
        if person is None or person.branch != actor.branch:
            raise archive.deny(actor, "open a case on", cm, "not a CM of the actor's branch")
        case = open_case(session, branch=actor.branch, cm_id=cm, actor=actor, reason=reason)
        session.commit()
        print(f"case #{case.id} opened on {cm}: fixed pay is withheld from the next closing")
    assert case.id is not None  # held from opening until the sign-off (open, concluding)
    report_hold(open_case_hold(archive, case_key=cm_case_key("investigation", case.branch,
                                                             case.id),
                               kind="investigation", branch=case.branch, cm_id=cm,
                               reason=case.reason, actor_id=actor.user_id), cm_id=cm)


@case_app.command("conclude", help="conclude a case: confirmed accounts (fined) or cleared")
def case_conclude(case_id: Annotated[int, typer.Argument(metavar="ID")],
                  outcome: Annotated[str, typer.Option(help="confirmed|cleared")],
                  month: Annotated[str, typer.Option(help="the closing that applies it")],
                  reason: Annotated[str, typer.Option()],
                  accounts: Annotated[int, typer.Option(min=0)] = 0,
                  as_user: AsUser = None) -> None:
    from brokerflow.payroll.cases import OPENING_ROLE, case_refusal, conclude_case, get_case

    archive = the_archive()
    actor = signed_in(archive, as_user)
    refusal = case_refusal(actor, branch=actor.branch, role=OPENING_ROLE)
    if refusal is not None:
        raise archive.deny(actor, "conclude", f"case #{case_id}", refusal)
    with new_session(archive.engine) as session:
        case = get_case(session, case_id=case_id, branch=actor.branch)
        conclude_case(session, case=case, actor=actor, outcome=outcome, accounts=accounts,
                      month=month, reason=reason)
        session.commit()
        print(f"case #{case_id} concluded ({outcome}); waiting for the branch manager's sign-off")


@case_app.command("sign-off", help="sign a concluded case off (branch manager)")
def case_sign_off(case_id: Annotated[int, typer.Argument(metavar="ID")],
                  opinion: Annotated[str, typer.Option()] = "", as_user: AsUser = None) -> None:
    from brokerflow.payroll.cases import SIGN_OFF_ROLE, case_refusal, get_case, sign_off_case

    archive = the_archive()
    actor = signed_in(archive, as_user)
    refusal = case_refusal(actor, branch=actor.branch, role=SIGN_OFF_ROLE)
    if refusal is not None:
        raise archive.deny(actor, "sign off", f"case #{case_id}", refusal)
    key = cm_case_key("investigation", actor.branch, case_id)
    with read_session(archive.engine) as session:
        found = get_case(session, case_id=case_id, branch=actor.branch)
    if found.status == "closed":  # again: finish a release the store interrupted
        change = close_case_hold(archive, case_key=key, actor_id=actor.user_id,
                                 reason=f"case #{case_id} signed off")
        if change.released:
            report_hold(change, cm_id=found.cm_id, closed=True)
            return
    with new_session(archive.engine) as session:
        case = get_case(session, case_id=case_id, branch=actor.branch)
        sign_off_case(session, case=case, actor=actor, opinion=opinion)
        session.commit()
        print(f"case #{case_id} closed ({case.outcome}): the next closing releases the "
              "withheld fixed pay" + (f"; the closing of {case.fine_month} fines "
                                      f"{case.confirmed_accounts} account(s)"
                                      if case.confirmed_accounts else ""))
    report_hold(close_case_hold(archive, case_key=key, actor_id=actor.user_id,
                                reason=f"case #{case_id} signed off ({case.outcome})"
                                       + (f": {opinion.strip()}" if opinion.strip() else "")),
                cm_id=case.cm_id, closed=True)
