"""Who starts a monthly closing (SPEC §2.1 least privilege).

Prefect records nobody behind a flow run, and anyone with access to its API can start a
deployment with any parameters.  So a closing is started either by its schedule (the system)
or by ``brokerflow payroll close``, which checks the user and their role, then writes a
single-purpose start ticket into the audit log and hands the flow only the ticket.  The flow
redeems it: the closing, and the documents it archives, record who really started it.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

from sqlmodel import Session, col, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import AuditEvent

#: Roles that may start a branch's monthly closing (财务 prepares it; the manager may too).
CLOSING_ROLES = frozenset({"chief_accountant", "finance_manager", "branch_manager"})
TICKET_LIFETIME = timedelta(hours=1)  # from 'payroll close' to the run starting
SYSTEM = "system"  # the starter of a run the deployment's schedule made
DEVELOPMENT = "(development)"  # a run started without a ticket in development mode


def closing_refusal(actor: UserView, *, branch: str,
                    explicit_policy: bool = False) -> str | None:
    """None when ``actor`` may start ``branch``'s closing; else why not.  Pure.

    With an explicit policy (pay rules nobody approved) only an admin of the branch or of
    head office may start it (SPEC §8.3)."""
    if explicit_policy:
        if "admin" in actor.roles and actor.branch in (branch, "HQ"):
            return None
        return ("closing with an explicit policy (pay rules nobody approved) needs the role "
                f"admin in branch {branch} or HQ")
    if actor.branch == branch and actor.roles & CLOSING_ROLES:
        return None
    return (f"starting {branch}'s monthly closing needs one of the roles "
            f"{', '.join(sorted(CLOSING_ROLES))} in branch {branch}")


def _ticket_key(ticket: str) -> str:
    return "closing-ticket:" + hashlib.sha256(ticket.encode("utf-8", "replace")).hexdigest()[:40]


def issue_start_ticket(session: Session, *, actor: UserView, branch: str, month: str,
                       policy_text: str | None = None) -> str:
    """A ticket for one closing start by ``actor`` (checked by the caller); only its hash is
    kept (in the audit log, as ``closing-requested``), with the explicit policy an admin
    closes with (its text is in the audit trail: what was paid on can always be shown)."""
    ticket = secrets.token_urlsafe(24)
    details: dict[str, str] = {"branch": branch, "month": month}
    if policy_text is not None:
        details |= {"policy": policy_text,
                    "policy_sha256": hashlib.sha256(policy_text.encode()).hexdigest()}
    append_audit(session, actor_id=actor.user_id, action="closing-requested",
                 request_key=_ticket_key(ticket), details=details)
    return ticket


def redeem_start_ticket(session: Session, *, ticket: str, branch: str,
                        month: str) -> str | None:
    """Who issued ``ticket`` for this branch and month within its lifetime; None else."""
    found = _ticket_details(session, ticket=ticket, branch=branch, month=month)
    return found[0] if found else None


def ticket_policy(session: Session, *, ticket: str, branch: str, month: str) -> str | None:
    """The explicit policy the ticket's issuer (an admin) closes with; None when none."""
    found = _ticket_details(session, ticket=ticket, branch=branch, month=month)
    policy = found[1].get("policy") if found else None
    return policy if isinstance(policy, str) else None


def _ticket_details(session: Session, *, ticket: str, branch: str,
                    month: str) -> tuple[str, dict[str, object]] | None:
    event = session.exec(select(AuditEvent).where(
        AuditEvent.request_key == _ticket_key(ticket),
        AuditEvent.action == "closing-requested").order_by(col(AuditEvent.id))).first()
    if event is None or utcnow() - event.at > TICKET_LIFETIME:
        return None
    details = json.loads(event.content).get("details", {})
    if details.get("branch") != branch or details.get("month") != month:
        return None
    return event.actor_id, details
